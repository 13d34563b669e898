"""Data-drift detection against small, mergeable reference profiles.

Build a :class:`ReferenceProfile` once from the reference data (``build_profile``, or chunk by chunk
with :class:`ProfileBuilder` / ``build_profile_from_csv``), save it, and check any current window
with :func:`detect_data_drift`; :func:`detect_model_drift` compares a model's quality on current labels
with its held-out quality. Both take their options whole, as one :class:`clvdrift.config.DriftConfig`;
calibration (a permutation null on the pooled binned counts) lives in ``clvdrift.drift.calibrate``.
HTML rendering (Evidently) lives in ``clvdrift.drift.report``. The per-column tests reproduce
Evidently 0.7's defaults; see ``docs/drift.md``.

Importing this package imports numpy, pandas and scipy only (not scikit-learn, not Evidently).
"""

from clvdrift.drift.detect import detect_data_drift
from clvdrift.drift.model_drift import ModelDriftResult, detect_model_drift
from clvdrift.drift.profile import ProfileBuilder, ReferenceProfile, build_profile, build_profile_from_csv
from clvdrift.drift.result import (
    ColumnDriftResult,
    DataDriftResult,
    DriftInputError,
    ProfileIntegrityError,
)

__all__ = [
    "ColumnDriftResult",
    "DataDriftResult",
    "DriftInputError",
    "ModelDriftResult",
    "ProfileBuilder",
    "ProfileIntegrityError",
    "ReferenceProfile",
    "build_profile",
    "build_profile_from_csv",
    "detect_data_drift",
    "detect_model_drift",
]
