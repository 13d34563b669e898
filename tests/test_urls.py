"""clvdrift.urls.mask_url: the password of any URL-like text is hidden, parseable or not."""

from __future__ import annotations

import pytest

from clvdrift.urls import mask_url


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql+psycopg://bob:S3cret@host:5432/db", "postgresql+psycopg://bob:***@host:5432/db"),
        ("postgresql+psycopg//bob:S3cret@host/db", "postgresql+psycopg//bob:***@host/db"),  # no colon
        ("postgresql+psycopg:/bob:S3cret@host/db", "postgresql+psycopg:***@host/db"),  # no "//"
        ("bob:S3cret@host", "bob:***@host"),
        ("http://u:S3cret@pushgateway:9091", "http://u:***@pushgateway:9091"),
        ("http://u:S3c@ret@pushgateway:9091", "http://u:***@pushgateway:9091"),  # '@' not encoded
        ("http://u:S3c/ret@pushgateway:9091", "http://u:***@pushgateway:9091"),  # '/' not encoded
        ("postgresql://bob:S3cret/db", "postgresql://bob:***/db"),  # the host forgotten
        ("postgresql://bob:S3cret", "postgresql://bob:***"),
        ("cannot open store 'bob:S3cret@h': refused", "cannot open store 'bob:***@h': refused"),
        ("a: x://u:S3cret@h, y://v:S3cret@k.", "a: x://u:***@h, y://v:***@k."),
        # nothing to hide
        ("postgresql+psycopg://bob@host:5432/db", "postgresql+psycopg://bob@host:5432/db"),
        ("postgresql+psycopg://bob@[::1]:5432/db", "postgresql+psycopg://bob@[::1]:5432/db"),
        (
            "see http://pushgateway:9091, or (http://[::1]:9091).",
            "see http://pushgateway:9091, or (http://[::1]:9091).",
        ),
        ("sqlite:////var/lib/clvdrift/store.db", "sqlite:////var/lib/clvdrift/store.db"),
        ("mail bob@example.com at 12:30", "mail bob@example.com at 12:30"),
        ("", ""),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    assert mask_url(text) == masked
    assert "S3c" not in mask_url(text)
    assert mask_url(masked) == masked  # idempotent


def test_mask_url_agrees_with_sqlalchemy_on_parseable_urls() -> None:
    from sqlalchemy.engine import make_url

    for url in [
        "postgresql+psycopg://bob:S3cret@db.example.com:5432/clv?sslmode=require",
        "mysql+pymysql://bob:p%40ss@h/db",
        "postgresql://bob:S3cret@[::1]:5433/db",
        "sqlite:///relative/store.db",
    ]:
        assert mask_url(url) == make_url(url).render_as_string(hide_password=True)
