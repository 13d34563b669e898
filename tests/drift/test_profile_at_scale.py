"""Profiles that stay right when references are large: categoricals with more categories than a
profile keeps, and numerical sketches whose error bound cannot decide (issue 19's audit shapes, and
shapes of our own)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from clvdrift.config import DriftConfig
from clvdrift.drift import ReferenceProfile, build_profile, detect_data_drift
from clvdrift.drift.detect import UNDECIDED


def check(reference: pd.DataFrame, current: pd.DataFrame, **kwargs: object):  # type: ignore[no-untyped-def]
    profile = build_profile(reference, categorical_columns=["c"], numerical_columns=None)
    assert not profile.column("c").exact  # type: ignore[union-attr]
    return detect_data_drift(profile, current, DriftConfig(), **kwargs).columns[0]  # type: ignore[arg-type]


def flat(levels: int, rows: int, rng: np.random.Generator, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"c": (offset + rng.integers(0, levels, rows)).astype(str)})


def test_a_batch_of_brand_new_categories_drifts() -> None:
    """The audit's repro: 1,001 equally likely levels, 20,000 reference rows, 50 brand-new values."""
    rng = np.random.default_rng(1)
    reference = flat(1001, 20_000, rng)
    current = pd.DataFrame({"c": rng.choice([f"new-{i}" for i in range(50)], 2_000)})
    result = check(reference, current)
    assert result.drifted and result.statistic > 0.5
    assert "new categories" in result.note


def gamma_stores(n: int, rows: int, rng: np.random.Generator, weights: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"c": rng.choice(n, rows, p=weights / weights.sum()).astype(str)})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_thousand_stores_vanishing_and_steady(seed: int) -> None:
    """3,000 stores with gamma(2) weights: half of them closing drifts; the same mix does not."""
    rng = np.random.default_rng(seed)
    weights = rng.gamma(2.0, 1.0, 3000)
    reference = gamma_stores(3000, 200_000, rng, weights)
    steady = gamma_stores(3000, 50_000, rng, weights)
    half = pd.DataFrame({"c": rng.choice(1500, 50_000, p=weights[:1500] / weights[:1500].sum()).astype(str)})
    assert not check(reference, steady).drifted
    vanished = check(reference, half)
    assert vanished.drifted and "vanished" in vanished.note


def test_a_zipf_head_that_grows_drifts() -> None:
    """A shape of our own: 5,000 Zipf-like levels; the top level's share grows from ~9 % to ~37 %. The
    buckets' distance never exceeds the one over the categories themselves (a coarsening)."""
    rng = np.random.default_rng(3)
    p = 1.0 / np.arange(1, 5001)
    p /= p.sum()
    reference = pd.DataFrame({"c": rng.choice(5000, 300_000, p=p).astype(str)})
    q = p.copy()
    q[0] *= 6
    q /= q.sum()
    same = pd.DataFrame({"c": rng.choice(5000, 100_000, p=p).astype(str)})
    doubled = pd.DataFrame({"c": rng.choice(5000, 100_000, p=q).astype(str)})
    assert not check(reference, same).drifted
    grown = check(reference, doubled)
    assert grown.drifted
    ref_p = reference["c"].value_counts(normalize=True)
    cur_p = (
        doubled["c"]
        .value_counts(normalize=True)
        .reindex(ref_p.index.union(doubled["c"].unique()), fill_value=0)
    )
    exact = jensenshannon(ref_p.reindex(cur_p.index, fill_value=0).to_numpy(), cur_p.to_numpy())
    assert grown.statistic <= exact + 1e-12


def test_bucket_counts_merge_exactly_and_survive_json() -> None:
    rng = np.random.default_rng(4)
    frame = flat(2500, 30_000, rng)
    whole = build_profile(frame, categorical_columns=["c"], numerical_columns=None)
    halves = [
        build_profile(h, categorical_columns=["c"], numerical_columns=None)
        for h in (frame[:9000], frame[9000:])
    ]
    merged = halves[0].merge(halves[1])
    assert merged.column("c").buckets == whole.column("c").buckets  # type: ignore[union-attr]
    assert sum(whole.column("c").buckets) == 30_000  # type: ignore[union-attr]
    again = ReferenceProfile.from_dict(whole.to_dict())
    assert again.column("c").buckets == whole.column("c").buckets  # type: ignore[union-attr]


def test_a_profile_written_before_buckets_still_decides_as_before() -> None:
    rng = np.random.default_rng(5)
    data = build_profile(flat(1500, 20_000, rng), categorical_columns=["c"], numerical_columns=None).to_dict()
    for column in data["categorical"]:
        column.pop("buckets"), column.pop("hash_buckets")
    old = ReferenceProfile.from_dict(data)
    assert old.column("c").buckets == ()  # type: ignore[union-attr]
    result = detect_data_drift(old, flat(1500, 5_000, rng), DriftConfig()).columns[0]
    assert "frequent-items" in result.note


def pareto(n: int, rng: np.random.Generator, scale: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"x": 1e6 + 1 + scale * rng.pareto(1.2, n)})


@pytest.mark.parametrize("seed", range(6))
def test_a_heavy_tail_on_a_large_offset_is_never_flagged_by_an_undecided_sketch(seed: int) -> None:
    """The audit's shape: 1e6 + 1 + Pareto(1.2), 200,000 reference rows, a 50,000-row window of the
    same population. The sketch's statistic (0.1-0.28) is far from SciPy's (< 0.01), and its own bound
    says so: the column is decided on the exact reference values, or left undecided without them."""
    rng = np.random.default_rng(seed)
    reference, current = pareto(200_000, rng), pareto(50_000, rng)
    profile = build_profile(reference, numerical_columns=["x"], categorical_columns=None)
    scipy = wasserstein_distance(reference["x"], current["x"]) / np.std(
        reference["x"]
    )  # ddof 0, as Evidently
    alone = detect_data_drift(profile, current, DriftConfig()).columns[0]
    assert not alone.drifted and alone.decided_by == UNDECIDED and "cannot decide" in alone.note
    exact = detect_data_drift(profile, current, DriftConfig(), reference=lambda: reference).columns[0]
    assert not exact.drifted and exact.statistic == pytest.approx(scipy, rel=1e-6)
    shifted = pareto(50_000, rng, scale=4.0)
    moved = detect_data_drift(profile, shifted, DriftConfig(), reference=lambda: reference).columns[0]
    expected = wasserstein_distance(reference["x"], shifted["x"]) / np.std(reference["x"])
    assert moved.statistic == pytest.approx(expected, rel=1e-6) and moved.drifted == (expected >= 0.1)


def test_a_sketch_that_can_decide_is_not_second_guessed() -> None:
    """A sketch far from the threshold decides alone: the exact reference is never read."""
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"x": rng.lognormal(3, 1, 100_000)})
    profile = build_profile(reference, numerical_columns=["x"], categorical_columns=None)

    def never() -> pd.DataFrame:
        raise AssertionError("the exact reference was read")

    same = detect_data_drift(profile, pd.DataFrame({"x": rng.lognormal(3, 1, 20_000)}), reference=never)
    moved = detect_data_drift(profile, pd.DataFrame({"x": rng.lognormal(4, 1, 20_000)}), reference=never)
    assert not same.columns[0].drifted and moved.columns[0].drifted
