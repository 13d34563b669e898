"""Each error class carries its exit code and HTTP status; `http_status` is the one map adapters use."""

from __future__ import annotations

import errno

import pytest

from clvdrift import errors
from clvdrift.errors import (
    ArtifactIntegrityError,
    AuthError,
    ClvdriftError,
    ConfigError,
    ConflictError,
    DataError,
    DriftInputError,
    HistoryIntegrityError,
    LockBusyError,
    NoChampionError,
    NotFoundError,
    RegistryError,
    StorageError,
    exit_code,
    http_status,
)


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (DataError("x"), 2, 422),
        (DriftInputError("x"), 2, 422),
        (ConfigError("x"), 2, 400),
        (AuthError("x"), 2, 401),
        (StorageError("x"), 3, 507),
        (ArtifactIntegrityError("x"), 3, 500),
        (RegistryError("x"), 3, 503),
        (NotFoundError("x"), 3, 404),
        (NoChampionError("x"), 3, 503),
        (ConflictError("x"), 3, 409),
        (LockBusyError("x"), 5, 409),
        (HistoryIntegrityError("x"), 3, 500),
        (ClvdriftError("x"), 4, 500),
        (ValueError("a bug"), 4, 500),
    ],
)
def test_each_error_maps_to_its_exit_code_and_http_status(error, code, status):
    assert exit_code(error) == code
    assert http_status(error) == status


def test_a_disk_error_behind_any_exception_is_507():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/x")
        except OSError as disk:
            raise RuntimeError("writing failed") from disk
    except RuntimeError as wrapped:
        assert http_status(wrapped) == 507


def test_every_error_class_declares_a_status_in_the_documented_range():
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, ClvdriftError)]
    assert len(classes) >= 13
    for cls in classes:
        assert 400 <= cls.http_status <= 599, cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the hierarchy drawing"


def test_registry_errors_say_what_kind(tmp_path):
    from clvdrift.pipeline.champion import get_version, rollback
    from clvdrift.pipeline.common import Workspace

    ws = Workspace.under(tmp_path, raw_data=tmp_path / "none.csv")
    with pytest.raises(NotFoundError, match="unknown model version 'nope'"):
        get_version(ws.database_url, "nope")
    with pytest.raises(NoChampionError, match="no champion model registered"):
        rollback(ws)
