"""Passwords out of everything clvdrift shows: errors, log lines, the run history, metrics outcomes.

:func:`mask_url` is the one masking function. It works on any text, not only on a URL that parses: a
mistyped ``postgresql+psycopg//bob:S3cret@host/db`` (no colon) must not print ``S3cret`` either. In
every whitespace-separated word that holds an ``@``, whatever lies between the first ``:`` of the user
part (after ``//`` when there is one) and the word's *last* ``@`` is replaced by ``***``::

    postgresql+psycopg://bob:S3cret@host/db   →  postgresql+psycopg://bob:***@host/db
    postgresql+psycopg//bob:S3cret@host/db    →  postgresql+psycopg//bob:***@host/db
    http://u:p@ss@pushgateway:9091            →  http://u:***@pushgateway:9091
    'bob:S3cret@host'                         →  'bob:***@host'

A word with ``//`` and no ``@`` has no user part, but its "port" may be a password whose host was
forgotten (``postgresql://bob:S3cret/db``): a port that is not a number is hidden too
(``postgresql://bob:***/db``; ``http://pushgateway:9091`` stays as it is).

It errs on the side of hiding: an unencoded ``@`` or ``/`` in a password is hidden with the rest, and
a word that merely looks like ``x:y@z`` loses its ``y``. A password with whitespace in it (which no
URL allows unencoded) is not recognised. This module imports nothing, so settings can use it without
slowing ``clvdrift --help``.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_url"]

MASK = "***"
"""What a hidden password is shown as (the same as SQLAlchemy's ``hide_password``)."""

_WORD = re.compile(r"\S+")
_TRAILING = ":;,.)]}>'\""
_AUTHORITY = re.compile(r"//(?P<host>\[[^\]/?#]*\]|[^:/?#\[]*):(?P<port>[^/?#]*)")


def _mask_word(word: str) -> str:
    if "@" not in word:
        return _AUTHORITY.sub(_mask_port, word)
    at = word.rfind("@")
    head = word[:at]
    slashes = head.find("//")
    start = slashes + 2 if slashes >= 0 else 0
    colon = head.find(":", start)
    if colon < 0:  # user@host, no password
        return word
    return head[: colon + 1] + MASK + word[at:]


def _mask_port(match: re.Match[str]) -> str:
    port = match.group("port")
    core = port.rstrip(_TRAILING)  # "http://host:9091," in a sentence
    if core.isdigit() or not core:
        return match.group()
    return f"//{match.group('host')}:{MASK}{port[len(core) :]}"


def mask_url(text: str) -> str:
    """``text`` with the password of every ``user:password@host`` in it replaced by ``***``."""
    if "@" not in text and "//" not in text:
        return text
    return _WORD.sub(lambda m: _mask_word(m.group()), text)
