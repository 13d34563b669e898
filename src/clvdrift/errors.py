"""The one exception hierarchy of clvdrift, and the one map from errors to exit codes and HTTP statuses.

Adapters (CLI, Airflow tasks, the service) translate these with :func:`exit_code` and
:func:`http_status`; each class carries both (exit code, HTTP status)::

    ClvdriftError                                       4  500
     ├── DataError              bad input data            2  422
     │    ├── AmbiguousDateError  day/month order cannot be told from the file itself
     │    └── DriftInputError     data or options given to the drift check cannot be used
     ├── ConfigError            bad settings or arguments 2  400
     ├── AuthError              no API key, or an unknown or revoked one          2  401
     ├── StorageError           the disk: full, over quota, read-only, I/O error   3  507
     ├── QualityGateError       a model below the quality thresholds, or refused by the gate  7  409
     ├── ServiceError           the running service is unreachable or did not serve the version  8  502
     ├── ArtifactError          model artifacts missing or unreadable              3  500
     │    └── ArtifactIntegrityError  an artifact does not match its recorded sha256
     │         └── ProfileIntegrityError  a saved reference profile fails its checksum
     └── RegistryError          the store cannot answer (unreachable, failed)      3  503
          ├── NotFoundError      unknown model version, run or report            3  404
          ├── NoChampionError    no champion registered yet                      3  503
          ├── ConflictError      the request contradicts the store's state       3  409
          │                      (already registered, already champion, nothing to roll back)
          ├── LockBusyError      another process holds a lock of the store      5  409
          └── HistoryIntegrityError  a part of the transaction history is missing or corrupted  3  500

Exit codes of the command line (:data:`EXIT_CODES`): 0 success; 1 ``--fail-on-drift`` and retraining
is required (not an error); 2 bad data, settings or arguments; 3 artifacts or store; 4 an unexpected
error (a bug: the one-line message says so, ``--debug`` shows the traceback); 5 another process holds
a lock of the store (another monitoring cycle or training is running); 6 ``monitor
--fail-on-quarantine`` and a new file was quarantined or unreadable; 7 a model below the quality
thresholds or refused by the champion/challenger gate (``deploy``, ``models check``); 8 the running
service cannot be reached or did not serve the deployed version. A CI job can therefore tell drift (1)
from a crash (4) from "busy, try later" (5) from "not good enough" (7).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_STORE = 3
EXIT_INTERNAL = 4
EXIT_BUSY = 5
EXIT_QUARANTINE = 6
EXIT_REFUSED = 7
EXIT_SERVICE = 8


class ClvdriftError(Exception):
    """Base class of every error clvdrift raises on purpose."""

    exit_code = EXIT_INTERNAL
    http_status = 500


class DataError(ClvdriftError):
    """Input data cannot be used; the message names the file, the column and example rows."""

    exit_code = EXIT_BAD_INPUT
    http_status = 422


class AmbiguousDateError(DataError):
    """The date column could be day-first or month-first; an explicit format is required."""


class DriftInputError(DataError, ValueError):
    """The data or the configuration given to the drift check cannot be used.

    The message names the column(s) and says what the reference profile expects.
    """


class ConfigError(ClvdriftError):
    """A setting or argument is invalid."""

    exit_code = EXIT_BAD_INPUT
    http_status = 400


class AuthError(ClvdriftError):
    """A request of the service without an API key, or with one that is unknown or revoked."""

    exit_code = EXIT_BAD_INPUT
    http_status = 401


class ArtifactError(ClvdriftError):
    """A model artifact is missing or cannot be read."""

    exit_code = EXIT_STORE


class ArtifactIntegrityError(ArtifactError):
    """An artifact's sha256 differs from the one recorded when it was written."""


class ProfileIntegrityError(ArtifactIntegrityError):
    """A saved reference profile does not match the sha256 recorded in its file."""


class RegistryError(ClvdriftError):
    """The model registry or the store cannot answer (unreachable, failed); the subclasses say why."""

    exit_code = EXIT_STORE
    http_status = 503


class NotFoundError(RegistryError):
    """An unknown model version, run or report."""

    http_status = 404


class NoChampionError(RegistryError):
    """No champion model is registered yet (`clvdrift train` first)."""

    http_status = 503


class ConflictError(RegistryError):
    """The request contradicts the store's state: a version already registered, the champion already, or
    nothing to roll back to."""

    http_status = 409


class QualityGateError(ClvdriftError):
    """A model version is below the quality thresholds, or the champion/challenger gate refused it; the
    message names each failed metric with its value and limit (exit code 7: not a broken environment)."""

    exit_code = EXIT_REFUSED
    http_status = 409


class ServiceError(ClvdriftError):
    """The running service (``clvdrift serve``) cannot be reached, refused the request, or did not serve
    the version in time; the message names the URL (credentials masked) and what happened."""

    exit_code = EXIT_SERVICE
    http_status = 502


EXIT_CODES: dict[str, int] = {
    "success": EXIT_OK,
    "retraining required (--fail-on-drift)": EXIT_DRIFT,
    "bad data, settings or arguments": EXIT_BAD_INPUT,
    "artifacts or store": EXIT_STORE,
    "unexpected error": EXIT_INTERNAL,
    "another process holds the lock (e.g. another monitoring cycle is running): try again": EXIT_BUSY,
    "files quarantined or unreadable (monitor --fail-on-quarantine)": EXIT_QUARANTINE,
    "a model below the quality thresholds or refused by the gate (deploy, models check)": EXIT_REFUSED,
    "the running service is unreachable or did not serve the deployed version (deploy)": EXIT_SERVICE,
}


def exit_code(exc: BaseException) -> int:
    """The exit code of an error: its class's for clvdrift errors, :data:`EXIT_INTERNAL` otherwise."""
    return exc.exit_code if isinstance(exc, ClvdriftError) else EXIT_INTERNAL


def http_status(exc: BaseException) -> int:
    """The HTTP status of an error: its class's for clvdrift errors, a disk error's 507 (see
    :func:`storage_error`), 500 otherwise."""
    if isinstance(exc, ClvdriftError):
        return exc.http_status
    return StorageError.http_status if storage_error(exc) is not None else 500


class LockBusyError(RegistryError):
    """A lock of the store (the training or the cycle lock) is held by another process: try again when
    it is done (exit code 5, so a scheduler can tell "busy" from a broken store)."""

    exit_code = EXIT_BUSY
    http_status = 409


class HistoryIntegrityError(RegistryError):
    """A part file of the transaction history is missing, unreadable or differs from its checksum; the
    message names the part and its batch and says how to repair (``clvdrift history``)."""

    http_status = 500


class StorageError(ClvdriftError):
    """The disk cannot take what clvdrift writes: full, over quota, read-only, an I/O error. Not a bug:
    the environment (exit 3). :func:`storage_error` recognises one behind any exception."""

    exit_code = EXIT_STORE
    http_status = 507


_DISK_ERRORS = {
    errno.ENOSPC: ("disk full (no space left on device)", "free some space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or raise the quota"),
    errno.EROFS: ("read-only file system", "make it writable or point the setting at a writable folder"),
    errno.EIO: ("I/O error of the disk", "check the disk"),
}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (a library may wrap an OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def storage_error(exc: BaseException) -> StorageError | None:
    """A one-line :class:`StorageError` when ``exc`` is (or was caused by) a disk error, else ``None``."""
    for disk in _causes(exc):
        if isinstance(disk, OSError) and disk.errno in _DISK_ERRORS:
            verb = "on" if disk.errno == errno.EIO else "while writing"
            where = f" {verb} {disk.filename}" if disk.filename else ""
            what, fix = _DISK_ERRORS[disk.errno]
            return StorageError(f"{what}{where}: {fix}, then run the command again")
    return None
