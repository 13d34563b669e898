"""Reference profiles: merge equals the profile of the union, round trips, checksum, chunked
building, bounded size."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clvdrift.drift import (
    DriftInputError,
    ProfileBuilder,
    ProfileIntegrityError,
    ReferenceProfile,
    build_profile,
    build_profile_from_csv,
)
from clvdrift.drift.columns import CategoricalColumnProfile


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cont = rng.lognormal(2.0, 1.0, n)
    cont[rng.random(n) < 0.05] = np.nan
    cont[rng.random(n) < 0.01] = np.inf
    ints = rng.poisson(6.0, n).astype(float)
    ints[rng.random(n) < 0.1] = np.nan
    signed = np.round(rng.normal(0.0, 50.0, n), 1)  # negative, zero and positive values
    cats = rng.choice(
        np.array(["UK", "DE", "FR", "NL", None], dtype=object), n, p=[0.6, 0.2, 0.1, 0.05, 0.05]
    )
    return pd.DataFrame(
        {
            "cont": cont,
            "ints": ints,
            "signed": signed,
            "count": rng.integers(0, 1000, n),
            "country": cats,
            "flag": rng.random(n) < 0.3,
        }
    )


@pytest.mark.parametrize("seed", range(6))
def test_merge_equals_profile_of_union(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    frame = _frame(3000, seed)
    cuts = np.sort(rng.choice(np.arange(1, len(frame)), size=int(rng.integers(1, 4)), replace=False))
    bounds = [0, *cuts.tolist(), len(frame)]
    parts = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    full = build_profile(frame, max_exact_values=1024)
    merged = build_profile(parts[0], max_exact_values=1024)
    for part in parts[1:]:
        merged = merged.merge(build_profile(part, max_exact_values=1024))
    assert merged.equals(full)
    # every part alone may be exact while the union is not: the switch must agree as well
    assert [p.sketch.exact for p in merged.numerical] == [p.sketch.exact for p in full.numerical]
    assert merged.column("cont").sketch.exact is False  # 3000 distinct values > 1024
    # merging is order-insensitive
    rev = build_profile(parts[-1], max_exact_values=1024)
    for part in reversed(parts[:-1]):
        rev = rev.merge(build_profile(part, max_exact_values=1024))
    assert rev.equals(full)


def test_equals_detects_a_different_profile() -> None:
    frame = _frame(2000, 1)
    full = build_profile(frame)
    assert not build_profile(frame.iloc[1:]).equals(full)
    changed = frame.copy()
    changed.loc[5, "country"] = "ES"
    assert not build_profile(changed).equals(full)


def test_empty_profile_is_the_identity_of_merge() -> None:
    frame = _frame(500, 2)
    p = build_profile(frame)
    zero = ReferenceProfile.empty(p.numerical_columns, p.categorical_columns, columns=p.columns)
    assert zero.merge(p).equals(p) and p.merge(zero).equals(p)


def test_merge_refuses_different_columns() -> None:
    frame = _frame(200, 3)
    with pytest.raises(DriftInputError, match="different columns"):
        build_profile(frame).merge(build_profile(frame.drop(columns=["ints"])))


def test_profile_contents() -> None:
    frame = _frame(4000, 4)
    p = build_profile(frame)
    assert p.kinds_auto_detected
    assert p.numerical_columns == ["cont", "ints", "signed", "count"]
    assert p.categorical_columns == ["country", "flag"]  # bool dtype is categorical
    cont = p.column("cont")
    finite = frame["cont"][np.isfinite(frame["cont"])]
    assert cont.count == len(finite) and cont.missing == len(frame) - len(finite)
    assert cont.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert cont.std == pytest.approx(np.std(finite), rel=1e-10)
    assert (cont.min, cont.max) == (finite.min(), finite.max())
    edges, counts = cont.quantile_bins(10)
    assert sum(counts) == cont.count and len(counts) == len(edges) - 1
    country = p.column("country")
    assert country.counts_dict() == frame["country"].value_counts().to_dict()
    assert country.missing == int(frame["country"].isna().sum())
    corr = p.correlation.correlation(["cont", "ints", "signed", "count"])
    complete = frame[["cont", "ints", "signed", "count"]].replace([np.inf, -np.inf], np.nan).dropna()
    np.testing.assert_allclose(corr, complete.corr().to_numpy(), atol=1e-10)


def test_explicit_kinds_are_used_unchanged() -> None:
    frame = _frame(300, 5)
    p = build_profile(frame, numerical_columns=["count"], categorical_columns=["ints"])
    assert not p.kinds_auto_detected
    assert p.numerical_columns == ["count"] and p.categorical_columns == ["ints"]
    with pytest.raises(DriftInputError, match="not in the reference frame"):
        build_profile(frame, numerical_columns=["nope"])


def test_to_dict_from_dict_round_trip() -> None:
    p = build_profile(_frame(6000, 6), max_exact_values=1024)
    d = json.loads(json.dumps(p.to_dict()))
    q = ReferenceProfile.from_dict(d)
    assert q.equals(p, rtol=0.0)
    assert q.to_json() == p.to_json()


def test_save_load_and_checksum_refusal(tmp_path: Path) -> None:
    p = build_profile(_frame(3000, 7))
    path = p.save(tmp_path / "ref" / "profile.json")
    assert ReferenceProfile.load(path).equals(p, rtol=0.0)
    assert [f.name for f in path.parent.iterdir()] == ["profile.json"]  # no temp file left behind
    text = path.read_text()
    envelope = json.loads(text)
    envelope["profile"]["categorical"][0]["categories"][0][1] += 1  # tamper with one count
    path.write_text(json.dumps(envelope))
    with pytest.raises(ProfileIntegrityError, match="checksum"):
        ReferenceProfile.load(path)
    path.write_text(text.replace('"rows":3000', '"rows":3001'))
    with pytest.raises(ProfileIntegrityError):
        ReferenceProfile.load(path)
    path.write_text("not json")
    with pytest.raises(DriftInputError):
        ReferenceProfile.load(path)


def test_chunked_csv_profile_equals_in_memory_profile(tmp_path: Path) -> None:
    frame = _frame(5000, 8).drop(columns=["flag"])
    frame["country"] = frame["country"].fillna("??")
    path = tmp_path / "ref.csv"
    frame.to_csv(path, index=False)
    kinds = {"numerical_columns": ["cont", "ints", "signed", "count"], "categorical_columns": ["country"]}
    whole = build_profile(pd.read_csv(path), **kinds)
    chunked = build_profile_from_csv(path, chunksize=700, **kinds)
    assert chunked.equals(whole)
    builder = ProfileBuilder(**kinds)
    for start in range(0, len(frame), 1234):
        builder.update(pd.read_csv(path).iloc[start : start + 1234])
    assert builder.profile().equals(whole)


def _million_rows() -> pd.DataFrame:
    """1,000,000 rows: heavy-tailed, narrow-spread and integer columns at the precision such data has
    (cents, 1e-6 degrees, 1e-3 K, integer timestamps), and a 100,000-category column."""
    rng = np.random.default_rng(12)
    n = 1_000_000
    sku = np.where(np.arange(n) < 100_000, np.arange(n), rng.zipf(1.3, n) % 100_000)
    return pd.DataFrame(
        {
            "monetary": np.round(rng.lognormal(3.0, 2.0, n), 2),
            "lognormal": np.round(rng.lognormal(0.0, 1.5, n), 4),
            "latitude": np.round(51.5 + rng.normal(0.0, 0.05, n), 6),
            "kelvin": np.round(290.0 + rng.normal(0.0, 5.0, n), 3),
            "epoch_s": 1_700_000_000 + rng.integers(0, 30 * 86_400, n),
            "epoch_ms": 1_700_000_000_000 + rng.integers(0, 365 * 86_400_000, n),
            "price": np.round(1000.0 + rng.normal(0.0, 5.0, n), 4),
            "quantity": rng.negative_binomial(1, 0.001, n),
            "sku": pd.Categorical.from_codes(sku, [f"SKU{i:06d}" for i in range(100_000)]),
        }
    )


def test_profile_of_a_million_rows_and_100k_categories_is_bounded(tmp_path: Path) -> None:
    frame = _million_rows()
    p = build_profile(frame)
    size = p.save(tmp_path / "p.json").stat().st_size
    assert size <= 300_000, size  # docs/drift.md: 225 KB measured
    for col in p.numerical:
        sk = col.sketch
        assert not sk.exact and sk.counts.size <= sk.uniform_buckets + np.unique(sk.keys).size
        assert len(json.dumps(col.to_dict())) <= 60 * sk.counts.size + 2_000  # per-column bound
        assert col.error_bound()["wasserstein_normed"] < 0.02 and col.error_bound()["cdf"] < 0.01
    assert [c.integer for c in p.numerical] == [False] * 4 + [True, True, False, True]
    sku = p.column("sku")
    assert isinstance(sku, CategoricalColumnProfile) and not sku.exact
    assert len(sku.categories) <= 1000 and sku.count == len(frame) and sku.other > 0
    true = frame["sku"].value_counts()
    kept = sku.counts_dict()
    errors = np.array([true[c] - kept.get(c, 0) for c in true.index])
    assert errors.min() >= 0 and errors.max() <= sku.count_error_bound <= len(frame) / 1001
    assert true.index[0] in kept  # the most frequent category is kept


def test_categories_are_exact_up_to_the_limit() -> None:
    frame = pd.DataFrame({"c": [f"k{i}" for i in range(1000)] * 2})
    c = build_profile(frame).column("c")
    assert isinstance(c, CategoricalColumnProfile)
    assert c.exact and c.other == 0 and c.count_error_bound == 0 and len(c.counts_dict()) == 1000
    bigger = build_profile(pd.DataFrame({"c": [*frame["c"], "k1000"]})).column("c")
    assert isinstance(bigger, CategoricalColumnProfile) and not bigger.exact and bigger.other > 0


def test_integer_flag_is_recorded_merged_and_saved(tmp_path: Path) -> None:
    ints = pd.DataFrame({"x": np.arange(10, dtype=np.int32), "y": pd.array([1, None, 3] * 3 + [4], "Int64")})
    floats = ints.astype({"x": "float64"})
    p = build_profile(ints)
    assert [c.integer for c in p.numerical] == [True, True]
    assert [c.integer for c in build_profile(floats).numerical] == [False, True]
    assert [c.integer for c in p.merge(build_profile(floats)).numerical] == [False, True]
    assert [c.integer for c in ReferenceProfile.load(p.save(tmp_path / "p.json")).numerical] == [True, True]


def test_huge_values_keep_finite_moments_and_equal_themselves(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1e154, 3e154, -2e154, 5.0] * 50, "y": [1e300, -1e300, 1e-300, 0.0] * 50})
    p = build_profile(frame)
    assert p.equals(p)
    assert p.column("x").std == pytest.approx(np.std(frame["x"] / 1e154) * 1e154, rel=1e-12)
    assert np.isfinite(p.column("y").std) and np.isfinite(p.correlation.correlation()).all()
    assert ReferenceProfile.load(p.save(tmp_path / "p.json")).equals(p, rtol=0.0)


def test_an_old_or_malformed_profile_asks_for_a_rebuild(tmp_path: Path) -> None:
    d = build_profile(_frame(100, 1)).to_dict()
    with pytest.raises(DriftInputError, match=r"format version 1, .*rebuild the profile"):
        ReferenceProfile.from_dict({**d, "format_version": 1})
    del d["numerical"][0]["sketch"]
    with pytest.raises(DriftInputError, match=r"malformed \(KeyError.*rebuild the profile"):
        ReferenceProfile.from_dict(d)


def test_import_does_not_pull_sklearn_or_evidently() -> None:
    code = (
        "import sys, clvdrift.drift; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'evidently')))"
    )
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api() -> None:
    from clvdrift import drift

    assert drift.__all__ == sorted(drift.__all__)
    for name in [
        "build_profile",
        "ReferenceProfile",
        "detect_data_drift",
        "DataDriftResult",
        "ColumnDriftResult",
        "DriftInputError",
        "ProfileBuilder",
    ]:
        assert name in drift.__all__ and hasattr(drift, name)
