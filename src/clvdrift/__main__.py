"""The ``clvdrift`` command and ``python -m clvdrift``: the command line of :mod:`clvdrift.cli`, with a
Ctrl-C that comes while its libraries are still being imported ending as quietly as one that comes later."""

from __future__ import annotations

import sys


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is a Ctrl-C, or wraps one: Python turns an exception raised while a class body's
    ``__set_name__`` runs (e.g. a dataclass field of rich, imported by the CLI) into a RuntimeError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def main() -> None:
    try:
        from clvdrift.cli import main as cli_main
    except (KeyboardInterrupt, RuntimeError) as exc:
        if not _interrupted(exc):
            raise
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()
