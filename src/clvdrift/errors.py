"""The one exception hierarchy of clvdrift.

Adapters (CLI, Airflow tasks, the service) translate these to exit codes and HTTP statuses::

    ClvdriftError
     ├── DataError              bad input data: unreadable file, missing column, bad values
     │    └── AmbiguousDateError  day/month order cannot be told from the file itself
     ├── ConfigError            bad settings or arguments
     ├── ArtifactError          model artifacts missing or unreadable
     │    └── ArtifactIntegrityError  an artifact does not match its recorded sha256
     └── RegistryError          model registry: unknown version, no champion, store failure
"""

from __future__ import annotations


class ClvdriftError(Exception):
    """Base class of every error clvdrift raises on purpose."""

    exit_code = 1


class DataError(ClvdriftError):
    """Input data cannot be used; the message names the file, the column and example rows."""

    exit_code = 2


class AmbiguousDateError(DataError):
    """The date column could be day-first or month-first; an explicit format is required."""


class ConfigError(ClvdriftError):
    """A setting or argument is invalid."""

    exit_code = 2


class ArtifactError(ClvdriftError):
    """A model artifact is missing or cannot be read."""

    exit_code = 3


class ArtifactIntegrityError(ArtifactError):
    """An artifact's sha256 differs from the one recorded when it was written."""


class RegistryError(ClvdriftError):
    """The model registry cannot answer: unknown version, no champion, unreachable store."""

    exit_code = 3
