"""The ``geomshock`` command line. No numerics here: it dispatches to experiments."""

import argparse
import os
import sys
from pathlib import Path

from . import __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .experiments import experiment_names

    parser = argparse.ArgumentParser(
        prog="geomshock",
        description=(
            "Shock-wave theory and symmetry-reduced SGD (arXiv 2606.18303): "
            "exact Hopf–Cole solvers, geometry by autodiff, quotient charts."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "reproduce",
        help="regenerate the paper's experiments (figures, JSON and markdown report)",
    )
    rep.add_argument(
        "what",
        choices=[*experiment_names(), "all"],
        help="which experiment; 'all' runs every one that is implemented",
    )
    rep.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    rep.add_argument("--quick", action="store_true", help="smaller, faster settings")
    rep.add_argument(
        "--seeds", type=_positive_int, default=None, help="number of training seeds"
    )
    return parser


def _check_writable(out: Path) -> None:
    target = out
    while not target.exists():
        target = target.parent
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(out)!r} is not writable")


def _reproduce(args) -> int:
    import jax

    # The experiments compare against exact answers: run them in float64.
    jax.config.update("jax_enable_x64", True)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .experiments import available_experiments, run_experiments

    names = available_experiments() if args.what == "all" else [args.what]
    _check_writable(args.out)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("starting", total=2 * len(names))

        def advance(stage: str) -> None:
            progress.update(
                task, description=stage, advance=0 if "comput" in stage else 1
            )

        run_experiments(
            names, args.out, quick=args.quick, seeds=args.seeds, progress=advance
        )
        progress.update(task, description="done", completed=2 * len(names))
    print(f"wrote {', '.join(names)} to {args.out}/ (report.md, report.json)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "reproduce":
            return _reproduce(args)
    except (ValueError, PermissionError, OSError) as err:
        print(f"geomshock: error: {err}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
