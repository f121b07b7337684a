"""Entry point of the ``geomshock`` command.

It lives outside the package so that ``geomshock --version`` answers without
importing ``geomshock`` (and with it JAX, diffrax and the numerics); every other
command is handed to :func:`geomshock.cli.main`.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        import importlib.metadata as md

        print(f"geomshock {md.version('geomshock')}")
        return 0
    from geomshock.cli import exit_now_if_interrupted, main as run

    code = run(argv)
    exit_now_if_interrupted(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
