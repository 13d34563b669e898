"""An artifact is read once: its sha256 is checked on the bytes that are then unpickled (load_model) or
copied (publish_champion). A file swapped after the check — by another process, on a shared volume —
is never loaded nor published: the check and the use cannot see two different files."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from clvdrift.config import RfParams
from clvdrift.errors import ArtifactIntegrityError
from clvdrift.features import NUMERIC_FEATURES
from clvdrift.io import Recent
from clvdrift.model import artifacts
from clvdrift.model.artifacts import load_model, publish_champion, write_artifacts
from clvdrift.model.rf import RfModel

VERSION = "20260101_000000_000001"


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(11)
    n = 29
    features = pd.DataFrame({name: rng.integers(1, 5_000, n).astype(float) for name in NUMERIC_FEATURES})
    features["Country"] = rng.choice(["Peru", "Laos"], n)
    return RfModel(RfParams(n_estimators=3), min_country_customers=3).fit(
        features, pd.Series(rng.gamma(2.0, 1e3, n))
    )


@pytest.fixture
def version(model, tmp_path: Path) -> dict:
    reference = pd.DataFrame({"CustomerID": ["a", "b"], "x": [1, 2]})
    return write_artifacts(
        model,
        {"target": "holdout"},
        tmp_path / "models",
        VERSION,
        extras={
            "profile": ("profile_{v}.json", lambda tmp: tmp.write_text("{}")),
            "reference": ("reference_{v}.csv", lambda tmp: reference.to_csv(tmp, index=False)),
        },
    )


class Evil:
    """What an attacker swaps in: unpickling it runs code (here: creates a marker directory)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def swap_after_first_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Counter, Path]]:
    """Count opens of every file below tmp_path/models; when the model file's first handle is closed
    (its bytes were read, e.g. to check them), replace the file by an evil pickle."""
    opens: Counter[str] = Counter()
    marker = tmp_path / "evil-code-ran"
    model_file = (tmp_path / "models" / f"clv_model_{VERSION}.joblib").resolve()
    evil = io.BytesIO()
    joblib.dump(Evil(marker), evil)
    real_open = builtins.open

    class Swapping(io.BufferedReader):
        def close(self) -> None:
            super().close()
            if opens[str(model_file)] == 1 and not swapped:
                swapped.append(True)
                with real_open(model_file, "wb") as fh:
                    fh.write(evil.getvalue())

    swapped: list[bool] = []

    def counting_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and "r" in mode:
            path = Path(file).resolve()
            if (tmp_path / "models") in path.parents:
                opens[str(path)] += 1
                if path == model_file and "b" in mode and isinstance(handle, io.BufferedReader):
                    raw = handle.detach()
                    return Swapping(raw)
        return handle

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(
        artifacts, "_LOADED", Recent(artifacts.LOADED_MODELS_KEPT)
    )  # no model cached by another test
    yield opens, marker
    assert swapped, "the model file was never read"


def test_load_model_reads_each_file_once_and_loads_the_bytes_it_checked(
    model, version, tmp_path: Path, swap_after_first_read
) -> None:
    opens, marker = swap_after_first_read
    loaded = load_model(tmp_path / "models", VERSION, expected=version)

    assert not marker.exists(), "the swapped file was unpickled"
    features = pd.DataFrame({name: [10.0, 2_000.0] for name in NUMERIC_FEATURES}).assign(Country="Peru")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    for name in ("model", "scaler", "features"):
        assert opens[str((tmp_path / "models" / version[name]["path"]).resolve())] == 1, (name, opens)
    # the file on disk is now the evil one: the next load refuses it before unpickling
    with pytest.raises(ArtifactIntegrityError, match="does not match"):
        load_model(tmp_path / "models", VERSION, expected=version)
    assert not marker.exists()


def test_publish_champion_copies_the_bytes_it_checked(version, tmp_path: Path, swap_after_first_read) -> None:
    opens, marker = swap_after_first_read
    written = publish_champion(tmp_path / "models", tmp_path / "reference", VERSION, version)

    latest = Path(written["model"]).read_bytes()
    assert hashlib.sha256(latest).hexdigest() == version["model"]["sha256"]
    assert opens[str((tmp_path / "models" / version["model"]["path"]).resolve())] == 1, opens
    assert not marker.exists()
