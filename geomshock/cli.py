"""The ``geomshock`` command line. No numerics here: it dispatches to experiments.

Interrupts end a run cleanly: Ctrl-C (SIGINT) prints one line and exits with
130, SIGTERM with 143; the results folder stays as it was (see
:mod:`geomshock.experiments._runner`), and what a killed run (SIGKILL) left
behind is removed when the next run starts.
"""

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path

PROG = "geomshock"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM."""


# Signals received during this run. Python runs a handler wherever the main
# thread is; an exception it raises inside a gc callback or ``__del__`` is only
# printed ("Exception ignored"), so the run also checks this list between stages.
_received: list[int] = []


def _interrupt(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def on_signal(signum, frame):
    """SIGINT/SIGTERM handler: unwind (cleaning temporaries up), and remember it."""
    _received.append(signum)
    raise _interrupt(signum)


def raise_if_signalled() -> None:
    """Raise the interrupt of a signal whose first exception was swallowed."""
    if _received:
        raise _interrupt(_received[0])


def _quiet_unraisable(unraisable) -> None:
    # an interrupt swallowed in a gc callback: raised again at the next stage
    if not isinstance(unraisable.exc_value, KeyboardInterrupt | Terminated):
        sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def _interrupts():
    """Install :func:`on_signal` for SIGTERM, and for SIGINT unless it is ignored."""
    _received.clear()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) in (signal.SIG_IGN, None):
            continue  # e.g. nohup, or a background job of a shell
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread: leave signals alone
            break
    hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable
    try:
        yield
    except RuntimeError:
        # an interrupt raised inside a JAX host callback comes back wrapped
        if _received:
            raise _interrupt(_received[0]) from None
        raise
    finally:
        sys.unraisablehook = hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()


def check_message(err: BaseException) -> str | None:
    r"""The message of a failed run-time check (``eqx.error_if``) inside ``err``.

    Under ``jax.jit`` the check surfaces wrapped in an XLA runtime error with
    equinox's boilerplate; this is its first line, or None for other errors.

    >>> check_message(RuntimeError("INTERNAL: CpuCallback error: ...\n"
    ...     "_EquinoxRuntimeError: nu must be finite and > 0\n\n---- boilerplate"))
    'nu must be finite and > 0'
    >>> check_message(RuntimeError("some other failure")) is None
    True
    """
    text = str(err)
    marker = "EquinoxRuntimeError: "
    if type(err).__name__.endswith("EquinoxRuntimeError"):
        message = text
    elif marker in text:
        message = text.split(marker, 1)[1]
    else:
        return None
    return message.strip().split("\n", 1)[0]


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("geomshock")
    except md.PackageNotFoundError:  # running from a source tree
        from . import __version__

        return __version__


def _int_at_least(minimum: int, expected: str):
    """An argparse ``type`` for integers ``≥ minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer ≥ 0 (a training seed)")


def _out_folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "expected a folder, got an empty string (write --out . for the current "
            "folder)"
        )
    return Path(text)


class _HelpFormatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """Show defaults (except ``None``, explained in the help) and keep the epilog."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def _quick_epilog() -> str:
    from .experiments._registry import QUICK_CHANGES

    width = max(len(name) for name in QUICK_CHANGES)
    lines = ["--quick changes (everything else is the full setting):"]
    lines += [f"  {name:<{width}}  {text}" for name, text in QUICK_CHANGES.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from .experiments import experiment_names

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Shock-wave theory and symmetry-reduced SGD (arXiv 2606.18303): "
            "exact Hopf–Cole solvers, geometry by autodiff, quotient charts."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "reproduce",
        help="regenerate the paper's experiments (figures, JSON and markdown report)",
        description=(
            "Regenerate the paper's experiments into a folder: PNG figures, "
            "<name>.json per experiment, and report.md/report.json over every "
            "experiment in the folder (re-running one keeps the others)."
        ),
        epilog=_quick_epilog(),
        formatter_class=_HelpFormatter,
    )
    rep.add_argument(
        "what",
        choices=[*experiment_names(), "all"],
        help="which experiment; 'all' runs every one that is implemented",
    )
    rep.add_argument(
        "--out", type=_out_folder, default=Path("results"), help="output folder"
    )
    rep.add_argument(
        "--quick",
        action="store_true",
        help="smaller, faster settings (see below; default: the full settings)",
    )
    rep.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        help="number of training seeds 0..N-1 for fig2/table1 (default: 16); "
        "for geometry, the key of the random points (default: 0)",
    )
    rep.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=None,
        help="the training seed whose profiles fig2/table1 plot (default: the "
        "median seed by peak curvature, as the report states)",
    )
    return parser


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(
            f"--out {str(out)!r} is a file, not a folder; pass a folder (it is "
            "created if missing)"
        )
    target = out
    while not target.exists():
        target = target.parent
    if not target.is_dir():
        raise NotADirectoryError(
            f"output folder {str(out)!r} is not writable: {str(target)!r} is a "
            "file, not a folder; pass a folder path"
        )
    if not os.access(target, os.W_OK | os.X_OK):
        raise PermissionError(
            f"output folder {str(out)!r} is not writable: no write permission on "
            f"{str(target)!r}; pass a folder you can write to"
        )


def _reproduce(args) -> int:
    _check_writable(args.out)
    import jax

    # The experiments compare against exact answers: run them in float64.
    jax.config.update("jax_enable_x64", True)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .experiments import available_experiments, run_experiments

    names = available_experiments() if args.what == "all" else [args.what]
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("starting", total=2 * len(names))

        def advance(stage: str) -> None:
            raise_if_signalled()
            progress.update(
                task, description=stage, advance=0 if "comput" in stage else 1
            )

        run_experiments(
            names,
            args.out,
            quick=args.quick,
            seeds=args.seeds,
            seed=args.seed,
            progress=advance,
        )
        raise_if_signalled()
        progress.update(task, description="done", completed=2 * len(names))
    print(f"wrote {', '.join(names)} to {args.out}/ (report.md, report.json)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # answered without building the parser
        print(f"{PROG} {_version()}")
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "reproduce":
            with _interrupts():
                return _reproduce(args)
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; {args.out}/ holds complete runs only",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Terminated:
        print(
            f"{PROG}: terminated; {args.out}/ holds complete runs only", file=sys.stderr
        )
        return EXIT_TERMINATED
    except (ValueError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        message = check_message(err)
        if message is None:
            raise  # a bug: keep its traceback
        print(f"{PROG}: error: a run-time check failed: {message}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2


def exit_now_if_interrupted(code: int) -> None:
    """End the process at once after an interrupted run (exit code 130/143).

    The run has cleaned up and said so by then; but JAX worker threads that
    the signal caught mid-computation can keep a normal interpreter shutdown
    waiting forever (seen after SIGTERM on a loaded 2-core machine), so the
    process leaves with ``os._exit`` once the streams are flushed.
    """
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    exit_code = main()
    exit_now_if_interrupted(exit_code)
    sys.exit(exit_code)
