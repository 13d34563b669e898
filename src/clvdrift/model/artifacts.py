"""Model artifacts on disk, the seed's file names, written atomically and verified on load.

For version ``V`` in ``models_dir``::

    clv_model_V.joblib   scaler_V.joblib   features_V.json   metadata_V.json
    clv_model_latest.joblib  scaler_latest.joblib  features_latest.json  metadata_latest.json

``metadata_V.json`` records the sha256 of the other three files; :func:`load_model` checks them
(and, when given, the checksums the registry recorded) *before* unpickling anything.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clvdrift.errors import ArtifactError, ArtifactIntegrityError
from clvdrift.io import atomic_write, atomic_write_text, sha256_file
from clvdrift.features import NUMERIC_FEATURES, CountryEncoder
from clvdrift.model.estimator import ClvModel

ARTIFACT_FILES = {
    "model": "clv_model_{v}.joblib",
    "scaler": "scaler_{v}.joblib",
    "features": "features_{v}.json",
}
METADATA_FILE = "metadata_{v}.json"
LATEST = "latest"


def _write_copy(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def write_artifacts(
    model: ClvModel,
    metadata: Mapping[str, Any],
    models_dir: Path,
    version: str,
    *,
    extras: Mapping[str, tuple[str, Callable[[Path], object]]] | None = None,
) -> dict[str, Any]:
    """Write the versioned files, then the ``*_latest`` copies; return ``{name: {path, sha256}}``.

    ``extras`` adds more versioned files: ``{name: (pattern with {v}, writer(path))}`` — e.g. the
    reference profile. ``metadata`` is stored in ``metadata_<version>.json`` with ``version`` and
    ``artifacts`` added.
    """
    import joblib

    models_dir = Path(models_dir)
    patterns = {**ARTIFACT_FILES, **{name: pattern for name, (pattern, _) in (extras or {}).items()}}
    paths = {name: models_dir / pattern.format(v=version) for name, pattern in patterns.items()}
    for name, (_, writer) in (extras or {}).items():
        atomic_write(paths[name], writer)
    atomic_write(paths["model"], lambda tmp: joblib.dump(model.estimator, tmp))
    atomic_write(paths["scaler"], lambda tmp: joblib.dump(model.scaler, tmp))
    features_doc = {
        "numeric_features": list(NUMERIC_FEATURES),
        "countries": model.encoder.levels_,
        "min_country_customers": model.encoder.min_customers,
        "feature_columns": model.feature_columns,
    }
    atomic_write_text(paths["features"], json.dumps(features_doc, indent=2))
    artifacts = {name: {"path": p.name, "sha256": sha256_file(p)} for name, p in paths.items()}
    meta = {**metadata, "version": version, "artifacts": artifacts}
    meta_path = models_dir / METADATA_FILE.format(v=version)
    atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str))
    for name, pattern in [*patterns.items(), ("metadata", METADATA_FILE)]:
        src = meta_path if name == "metadata" else paths[name]
        _write_copy(src, models_dir / pattern.format(v=LATEST))
    return artifacts


def read_metadata(models_dir: Path, version: str = LATEST) -> dict[str, Any]:
    path = Path(models_dir) / METADATA_FILE.format(v=version)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model metadata (train a model first: clvdrift train)")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{path}: unreadable metadata: {exc}") from exc


def verify_artifacts(models_dir: Path, expected: Mapping[str, Any]) -> dict[str, Path]:
    """Check the sha256 of every artifact in ``expected`` (``{name: {"path": …, "sha256": …}}``)."""
    paths: dict[str, Path] = {}
    for name, info in expected.items():
        path = Path(models_dir) / info["path"]
        if not path.is_file():
            raise ArtifactError(f"{path}: artifact missing")
        want = info.get("sha256")
        got = sha256_file(path)
        if want != got:
            raise ArtifactIntegrityError(
                f"{path}: sha256 {got[:12]}… does not match the recorded {str(want)[:12]}…; "
                "refusing to load a modified artifact"
            )
        paths[name] = path
    return paths


def load_model(models_dir: Path, version: str = LATEST, *, expected: Mapping[str, Any] | None = None) -> ClvModel:
    """Load a model version after checking its checksums.

    ``expected`` should come from the registry (the trusted record); without it, the checksums in
    the version's own metadata file are used.
    """
    import joblib

    models_dir = Path(models_dir)
    meta = read_metadata(models_dir, version)
    recorded = meta.get("artifacts", {})
    if expected is not None and any(expected[k]["sha256"] != recorded.get(k, {}).get("sha256") for k in expected):
        raise ArtifactIntegrityError(
            f"{models_dir / METADATA_FILE.format(v=version)}: checksums differ from the registry's record"
        )
    trusted = expected or recorded
    absent = sorted(set(ARTIFACT_FILES) - set(trusted))
    if absent:
        raise ArtifactError(f"{models_dir}: no checksum recorded for {absent}")
    paths = verify_artifacts(models_dir, {name: trusted[name] for name in ARTIFACT_FILES})
    features_doc = json.loads(paths["features"].read_text(encoding="utf-8"))
    encoder = CountryEncoder(min_customers=features_doc["min_country_customers"])
    encoder.levels_ = list(features_doc["countries"])
    return ClvModel(estimator=joblib.load(paths["model"]), scaler=joblib.load(paths["scaler"]), encoder=encoder)
