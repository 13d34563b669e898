"""Exactly one champion, enforced by the database, under concurrent register/promote in real processes."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from clvdrift.model.registry import ModelRegistry
from clvdrift.store import connect
from store.processes import run_at_once  # type: ignore[import-not-found]

N = 8


def record(version: str) -> dict:
    return dict(
        target="holdout",
        metrics={"model": {"r2": 0.1 * len(version)}},
        params={"n_estimators": 7},
        training={"customers": 12},
        data_fingerprint={"rows": 99},
        artifacts={"model": {"path": f"clv_model_{version}.joblib", "sha256": "e" * 64}},
    )


def _register_then_change_champion(index: int, url: str) -> tuple[bool, bool]:
    """Register ``c<i>`` (champion only if none); then promote ``c<i>`` or register ``p<i>`` as champion."""
    registry = ModelRegistry(connect(url))
    first = registry.register(f"c{index}", **record(f"c{index}")).is_champion
    if index % 2:
        second = registry.promote(f"c{index}").is_champion
    else:
        second = registry.register(f"p{index}", **record(f"p{index}"), champion=True).is_champion
    registry.engine.dispose()
    return first, second


def test_concurrent_registrations_and_promotions_leave_exactly_one_champion(store_url):
    connect(store_url).dispose()  # schema first: this test is about the registry, not the migration
    results = run_at_once(_register_then_change_champion, N, store_url)
    errors = [value for status, value in results if status != "ok"]
    assert errors == [], errors[0] if errors else ""
    registry = ModelRegistry(connect(store_url))
    versions = registry.list_versions()
    names = sorted(v.version for v in versions)
    assert names == sorted([f"c{i}" for i in range(N)] + [f"p{i}" for i in range(0, N, 2)])
    assert [v.is_champion for v in versions].count(True) == 1
    # "champion only when there is none": exactly one of the first registrations was told it is champion
    assert [first for _, (first, _) in results].count(True) == 1
    assert all(second for _, (_, second) in results)  # each change of champion took effect when it ran


def test_the_database_refuses_a_second_champion(store_url):
    registry = ModelRegistry(connect(store_url))
    registry.register("a", **record("a"))
    registry.register("b", **record("b"))
    with pytest.raises(sa.exc.IntegrityError), registry.engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET is_champion = TRUE WHERE version = 'b'"))
    assert [v.version for v in registry.list_versions() if v.is_champion] == ["a"]


def test_non_finite_metrics_are_stored_as_null(store_url):
    registry = ModelRegistry(connect(store_url))
    metrics = {
        "model": {"r2": math.nan, "mae": math.inf, "spearman": -math.inf, "gini": 0.25},
        "per_fold": [1.5, math.nan],
        "beats_baseline": False,
    }
    returned = registry.register(
        "nan1", **{**record("nan1"), "metrics": metrics, "training": {"loss": math.nan}}
    )
    stored = registry.get("nan1")
    assert returned == stored
    assert stored.metrics == {
        "model": {"r2": None, "mae": None, "spearman": None, "gini": 0.25},
        "per_fold": [1.5, None],
        "beats_baseline": False,
    }
    assert stored.training == {"loss": None}
    assert registry.champion().version == "nan1"
