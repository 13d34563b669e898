"""The ``clvdrift`` command and ``python -m clvdrift``: the command line of :mod:`clvdrift.cli`, with a
Ctrl-C that comes while its libraries are still being imported ending as quietly as one that comes later."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from clvdrift.cli import main as cli_main
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()
