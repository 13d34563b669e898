"""What the pipeline tasks share: the workspace, step timings, version ids, the champion, fingerprints."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clvdrift.data import schema
from clvdrift.errors import NoChampionError
from clvdrift.io import Recent, sha256_file

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import pandas as pd

    from clvdrift.drift import ReferenceProfile
    from clvdrift.features import TrainingSet
    from clvdrift.model.base import ClvModel
    from clvdrift.model.registry import ModelRegistry, ModelVersion

Progress = Callable[[str], None]
if TYPE_CHECKING:
    from clvdrift.engines import EngineChoice, OpenLines

    Cleaned: TypeAlias = OpenLines  # clean lines and the cleaning report, from an engine


@dataclass(frozen=True)
class Workspace:
    """Where the monitoring loop keeps its state: the store and the working folders.

    Adapters build it from their settings (``clvdrift.settings.Settings.workspace``); the field names
    are the settings' names, and their defaults live there, not here.
    """

    database_url: str
    raw_data: Path
    models_dir: Path
    reference_dir: Path
    current_dir: Path
    reports_dir: Path
    quarantine_dir: Path
    history_dir: Path
    predictions_dir: Path
    metrics_textfile: Path
    pushgateway_url: str | None
    engine: str = "auto"
    dask_scheduler: str | None = None
    duckdb_memory_limit: str | None = None

    @property
    def engines(self) -> EngineChoice:
        """The engine that cleans and computes features for this workspace (:mod:`clvdrift.engines`)."""
        from clvdrift.engines import EngineChoice

        return EngineChoice(self.engine, self.dask_scheduler, self.duckdb_memory_limit)

    @classmethod
    def under(cls, root: Path, raw_data: Path) -> Workspace:
        """A workspace of its own below ``root`` (a SQLite store and one folder each, metrics to a
        textfile there), e.g. for the demo."""
        root = Path(root)
        folders = {name: root / name for name in WORKSPACE_FOLDERS}
        return cls(
            database_url=f"sqlite:///{root / 'clvdrift.db'}",
            raw_data=Path(raw_data),
            metrics_textfile=root / "metrics" / "clvdrift.prom",
            pushgateway_url=None,
            models_dir=folders["models"],
            reference_dir=folders["reference"],
            current_dir=folders["current"],
            reports_dir=folders["reports"],
            quarantine_dir=folders["quarantine"],
            history_dir=folders["history"],
            predictions_dir=folders["predictions"],
        )


WORKSPACE_FOLDERS = ("models", "reference", "current", "reports", "quarantine", "history", "predictions")


_TIMINGS_LOCK = threading.Lock()


@dataclass
class Timings:
    """Wall time of each named step, in seconds (a step run again adds to its time; steps run on several
    threads at once add up, so the sum can exceed the wall time)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str, progress: Progress | None = None) -> Iterator[None]:
        if progress:
            progress(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            with _TIMINGS_LOCK:
                self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def new_id(prefix: str) -> str:
    """A unique, time-sortable id of a run, request or event: ``<prefix>_<new_version()>_<6 hex>`` (two
    processes started together can share a microsecond: the random part keeps their ids apart)."""
    import secrets

    return f"{prefix}_{new_version()}_{secrets.token_hex(3)}"


def new_version() -> str:
    """A sortable version id in the seed's timestamp style, with microseconds: ``YYYYmmdd_HHMMSS_ffffff``."""
    return datetime.now(UTC).strftime("%Y%m%d_%H%M%S_%f")


def data_fingerprint(path: Path, raw: pd.DataFrame) -> dict[str, Any]:
    """File name, sha256, rows and date range of a transactions file."""
    dates = raw[schema.INVOICE_DATE]
    return {
        "file": Path(path).name,
        "sha256": sha256_file(Path(path)),
        "rows": len(raw),
        "first_date": str(dates.min()),
        "last_date": str(dates.max()),
        "encoding": raw.attrs.get("encoding"),
    }


def load_champion(registry: ModelRegistry, models_dir: Path) -> tuple[ModelVersion, ClvModel]:
    """The champion's record and its model, checksums verified against the registry."""
    from clvdrift.model.artifacts import load_model

    champion = registry.champion()
    if champion is None:
        raise NoChampionError("no champion model registered; run `clvdrift train` first")
    return champion, load_model(Path(models_dir), champion.version, expected=champion.artifacts)


def predict_set(lines: Any, model: ClvModel, ts: TrainingSet) -> np.ndarray:
    """``model.predict(ts.features)`` for the training set ``ts`` built from ``lines``.

    On lines shared by several policies (:class:`clvdrift.features.SharedLines`, a replay step) a model
    scores a training set once: policies that keep the same champion (a verified model is loaded once
    per process, so they hold the same object) and the paired scoring after them reuse it. Each call
    returns its own array."""
    import numpy as np

    from clvdrift.features import SharedLines

    if not isinstance(lines, SharedLines):
        return model.predict(ts.features)
    key = (
        "predict",
        id(model),  # the model is kept in the value: its id cannot be reused while the memo lives
        ts.target_kind,
        ts.cutoff,
        ts.snapshot,
        ts.horizon_days,
        ts.lookback_days,
        _index_key(ts.features.index),
    )

    def score() -> tuple[Any, pd.Index, np.ndarray]:
        return model, ts.features.index, np.array(model.predict(ts.features), dtype=np.float64)

    held, index, predicted = lines.once(key, score)
    # the same model object and the same customers in the same order (a set built otherwise, e.g. filtered,
    # is scored anew)
    if held is model and index.equals(ts.features.index):
        return np.array(predicted)
    return np.array(model.predict(ts.features), dtype=np.float64)


def _index_key(index: pd.Index) -> tuple[int, object, object]:
    """A cheap key telling most differently filtered customer sets apart: length, first and last id."""
    return (len(index), index[0] if len(index) else None, index[-1] if len(index) else None)


# reference profiles parsed in this process, by the sha256 of their file
_PROFILES: Recent[str, ReferenceProfile] = Recent(8)


def load_profile(models_dir: Path, info: dict[str, Any]) -> ReferenceProfile:
    """The reference profile of a version (``info``: its registry record ``{path, sha256}``). The file is
    read and checked against the record every time; the profile parsed from bytes of the same sha256 is
    reused (profiles are immutable), as :func:`clvdrift.model.artifacts.load_model` reuses models."""
    from clvdrift.drift import ReferenceProfile
    from clvdrift.model.artifacts import read_verified

    data = read_verified(Path(models_dir), info)
    key = str(info["sha256"])
    profile = _PROFILES.get(key)
    if profile is None:
        profile = ReferenceProfile.from_bytes(data, Path(models_dir) / info["path"])
        _PROFILES.put(key, profile)
    return profile
