"""API keys of the service: created with ``clvdrift apikey create``, stored hashed, revocable.

A key is ``clv_<key id>_<secret>``: the key id (12 hex digits) is stored in clear to find the row, the
secret (32 random bytes, URL-safe base64) only as its sha256. With a secret of 256 random bits a plain
sha256 is enough (no password stretching: nothing to guess), and the comparison is constant-time. The
whole key is shown once, at creation.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from clvdrift.errors import ConfigError, NotFoundError
from clvdrift.jsonable import dataclass_dict
from clvdrift.store.db import session_scope
from clvdrift.store.ledger import as_utc
from clvdrift.store.tables import ApiKeyRow

__all__ = ["ApiKey", "ApiKeys"]

PREFIX = "clv_"
_KEY = re.compile(r"^clv_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,127}$")


@dataclass(frozen=True)
class ApiKey:
    """One key as listed (never its secret)."""

    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return dataclass_dict(self)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key named ``name``; returns it and the full key text (shown once)."""
        if not _NAME.match(name):
            raise ConfigError(
                f"API key name {name!r}: 1-128 letters, digits, spaces or . _ @ -, starting with a letter "
                "or digit"
            )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = ApiKeyRow(key_id=key_id, name=name, secret_sha256=_digest(secret), created_at=datetime.now(UTC))
        with session_scope(self.engine) as session:
            session.add(row)
        return ApiKey(key_id, name, row.created_at, None), f"{PREFIX}{key_id}_{secret}"

    def verify(self, key: str) -> str | None:
        """The key id of a valid, unrevoked ``key``; ``None`` otherwise."""
        match = _KEY.match(key)
        if match is None:
            return None
        key_id, secret = match.groups()
        with session_scope(self.engine) as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
            if row is None or row.revoked_at is not None:
                return None
            return key_id if hmac.compare_digest(row.secret_sha256, _digest(secret)) else None

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (revoking twice keeps the first time); :class:`NotFoundError` when unknown."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
            if row is None:
                raise NotFoundError(f"unknown API key {key_id!r} (see `clvdrift apikey list`)")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return _key(row)

    def list(self) -> builtins.list[ApiKey]:
        with session_scope(self.engine) as session:
            return [_key(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        row.key_id, row.name, as_utc(row.created_at), as_utc(row.revoked_at) if row.revoked_at else None
    )
