"""Property tests of reference profiles (Hypothesis): merging equals profiling the concatenation, a
profile equals itself and survives save -> load, on frames with NaN, +-inf, huge (+-1e154, +-1e300)
and tiny values, many duplicates, integer and float dtypes and categoricals; and the error bound of
the categorical frequent-items summary under merging."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clvdrift.drift import ReferenceProfile, build_profile
from clvdrift.drift.columns import CategoricalColumnProfile

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e154, -1e154, 1e300, -1e300, 1e-300, -5e-324, 1.5, 2.0]
FLOATS = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e3, 1e3).map(lambda x: round(x, 1)),  # many duplicates
)
INTS = st.one_of(st.integers(-(2**62), 2**62), st.integers(-3, 3))
CATS = st.one_of(st.sampled_from(["a", "b", "UK", ""]), st.none(), st.integers(0, 3), st.text(max_size=3))


BULK = [(0.0, 1.0), (51.5, 1e-4), (1.7e12, 1e9), (-1e154, 1e150), (1e300, 1e296), (0.0, 1e-300)]


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two frames with the same columns: float, int (the second part may hold floats) and object;
    either may add a bulk of 1,500 rows with distinct floats, so sketches become histograms."""

    def part(int_dtype: bool) -> pd.DataFrame:
        n = draw(st.integers(0, 40))
        frame = pd.DataFrame(
            {
                "f": pd.Series(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype="float64"),
                "i": pd.Series(draw(st.lists(INTS, min_size=n, max_size=n)), dtype="int64"),
                "c": pd.Series(draw(st.lists(CATS, min_size=n, max_size=n)), dtype=object),
            }
        )
        if draw(st.booleans()):
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            offset, scale = draw(st.sampled_from(BULK))
            bulk = pd.DataFrame(
                {
                    "f": offset + scale * rng.standard_normal(1500),
                    "i": rng.integers(-(10**6), 10**6, 1500),
                    "c": rng.choice(np.array(["x", "y", 7], dtype=object), 1500),
                }
            )
            frame = pd.concat([frame, bulk], ignore_index=True)
        return frame.astype({"i": "int64" if int_dtype else "float64"})

    return part(True), part(draw(st.booleans()))


KINDS: dict[str, Any] = {
    "numerical_columns": ["f", "i"],
    "categorical_columns": ["c"],
    "max_exact_values": 1024,
}


ZERO_PART = (  # found in CI: a part whose columns are all 0 scaled them by 2**0, the union by 2**-1
    pd.DataFrame({"f": [0.0], "i": pd.Series([0], dtype="int64"), "c": ["a"]}),
    pd.DataFrame({"f": [0.25], "i": [0.0], "c": ["a"]}),
)


@settings(max_examples=120, deadline=None)
@given(frames())
@example(ZERO_PART)
def test_merge_equals_profile_of_concatenation(ab: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    a, b = ab
    whole = build_profile(pd.concat([a, b], ignore_index=True), **KINDS)
    merged = build_profile(a, **KINDS).merge(build_profile(b, **KINDS))
    assert merged.equals(whole)
    assert whole.equals(whole) and merged.equals(merged)
    assert whole.column("i").integer == (a["i"].dtype == b["i"].dtype == np.int64)  # type: ignore[union-attr]
    for p in whole.numerical:
        assert np.isfinite(p.mean) and np.isfinite(p.std)


@settings(max_examples=40, deadline=None)
@given(frames())
def test_save_load_round_trip(ab: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    p = build_profile(pd.concat(ab, ignore_index=True), **KINDS)
    with TemporaryDirectory() as tmp:
        q = ReferenceProfile.load(p.save(Path(tmp) / "p.json"))
    assert q.equals(p, rtol=0.0) and q.to_json() == p.to_json()


@st.composite
def category_streams(draw: st.DrawFn) -> tuple[list[list[int]], int]:
    k = draw(st.integers(1, 6))
    parts = draw(st.lists(st.lists(st.integers(0, 3 * k), max_size=60).map(sorted), min_size=1, max_size=5))
    return parts, k


@settings(max_examples=200, deadline=None)
@given(category_streams())
def test_frequent_items_merge_stays_within_its_bound(stream: tuple[list[list[int]], int]) -> None:
    parts, k = stream
    sketches = [CategoricalColumnProfile.from_counts("c", Counter(p), 0, k) for p in parts]
    merged = sketches[0]
    for s in sketches[1:]:
        merged = merged.merge(s)
    truth = Counter(x for p in parts for x in p)
    union = CategoricalColumnProfile.from_counts("c", truth, 0, k)
    n = sum(truth.values())
    for sk in (merged, union):
        kept = sk.counts_dict()
        assert len(kept) <= k and sk.count == n and sum(kept.values()) + sk.other == n
        assert sk.count_error_bound <= n / (k + 1)
        for cat, true in truth.items():  # kept counts underestimate by at most the bound
            assert 0 <= true - kept.get(cat, 0) <= sk.count_error_bound
    bound = max(merged.count_error_bound, union.count_error_bound)
    for cat in truth:
        assert abs(merged.counts_dict().get(cat, 0) - union.counts_dict().get(cat, 0)) <= bound
    if len(truth) <= k:  # below the limit: exact, and equal to the profile of the union
        assert merged.exact and merged.equals(union) and merged.counts_dict() == dict(truth)
