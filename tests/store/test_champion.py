"""Exactly one champion, enforced by the database, under concurrent register/promote in real processes."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from clvdrift.errors import RegistryError
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


# Rollbacks walk back the promotion history (issue 15, defect 7): A → B → C, then B, A, nothing left.


def _chain(url: str, versions: list[str]) -> ModelRegistry:
    """A registry where ``versions`` were champion one after the other (the last is champion now)."""
    registry = ModelRegistry(connect(url))
    for version in versions:
        registry.register(version, **record(version), champion=True)
    return registry


def _champion(registry: ModelRegistry) -> str:
    champion = registry.champion()
    assert champion is not None
    return champion.version


def test_rollbacks_walk_back_the_promotion_history_instead_of_toggling(store_url):
    registry = _chain(store_url, ["a", "b", "c"])
    first = registry.rollback()
    assert (first.previous.version, first.champion.version) == ("c", "b")
    assert registry.get("c").rolled_back_at is not None and registry.get("b").rolled_back_at is None
    second = registry.rollback()
    assert (second.previous.version, second.champion.version) == ("b", "a")  # not back to c
    with pytest.raises(
        RegistryError, match=r"^nothing to roll back to: the 2 version\(s\) champion before a"
    ):
        registry.rollback()
    assert _champion(registry) == "a"
    assert registry.previous_champion() is None
    # a promotion puts a rolled-back version back into the history: its mark is cleared
    assert registry.promote("c").rolled_back_at is None
    assert registry.get("b").rolled_back_at is not None
    third = registry.rollback()
    assert (third.previous.version, third.champion.version) == ("c", "a")  # b stays skipped
    assert [v.version for v in registry.list_versions() if v.is_champion] == ["a"]


def test_nothing_to_roll_back_to_on_a_first_champion_or_an_empty_registry(store_url):
    registry = ModelRegistry(connect(store_url))
    with pytest.raises(RegistryError, match=r"^no champion model registered: nothing to roll back$"):
        registry.rollback()
    registry.register("a", **record("a"))
    registry.register("b", **record("b"))  # a challenger: never champion, not a rollback target
    with pytest.raises(RegistryError, match=r"^nothing to roll back to: no version was champion before a$"):
        registry.rollback()
    assert _champion(registry) == "a" and registry.get("a").rolled_back_at is None


def test_rollback_to_a_named_version_that_was_champion_before(store_url):
    registry = _chain(store_url, ["a", "b", "c"])
    registry.register("x", **record("x"))  # registered, never champion
    with pytest.raises(RegistryError, match=r"^cannot roll back to model version x: it was never champion"):
        registry.rollback("x")
    with pytest.raises(RegistryError, match=r"^unknown model version 'nope'$"):
        registry.rollback("nope")
    with pytest.raises(RegistryError, match=r"^model version c is the champion already"):
        registry.rollback("c")
    assert _champion(registry) == "c"  # refusals change nothing
    swap = registry.rollback("a")
    assert (swap.previous.version, swap.champion.version) == ("c", "a")
    assert registry.get("c").rolled_back_at is not None and registry.get("b").rolled_back_at is None
    assert registry.rollback().champion.version == "b"  # then the history goes on: b, not c
    assert registry.rollback("c").champion.version == "c"  # --to may name a rolled-back version
    assert registry.get("c").rolled_back_at is None


def test_a_rollback_planned_from_a_champion_taken_off_meanwhile_changes_nothing(store_url):
    registry = _chain(store_url, ["a", "b", "c"])
    plan = registry.plan_rollback()
    assert (plan.previous.version, plan.champion.version) == ("c", "b")
    assert _champion(registry) == "c"  # planning changes nothing
    registry.rollback()  # another process's rollback commits first: c → b
    with pytest.raises(RegistryError, match=r"^model version c is no longer the champion \(b is"):
        registry.rollback(expected_champion=plan.previous.version)
    assert _champion(registry) == "b" and registry.get("b").rolled_back_at is None


CHAIN = [f"v{i}" for i in range(6)]


def _planned_rollback(_index: int, url: str) -> tuple[str, str] | str:
    """Plan a rollback, then make it only from the planned champion: ``(from, to)``, or the refusal."""
    from clvdrift.errors import RegistryError as Refused

    registry = ModelRegistry(connect(url))
    try:
        plan = registry.plan_rollback()
        swap = registry.rollback(expected_champion=plan.previous.version)
        return swap.previous.version, swap.champion.version
    except Refused as exc:
        return str(exc)
    finally:
        registry.engine.dispose()


def test_concurrent_rollbacks_walk_back_one_step_each_or_are_refused(store_url):
    registry = _chain(store_url, CHAIN)
    results = run_at_once(_planned_rollback, 4, store_url)
    errors = [value for status, value in results if status != "ok"]
    assert errors == [], errors[0] if errors else ""
    done = [value for _, value in results if isinstance(value, tuple)]
    refused = [value for _, value in results if isinstance(value, str)]
    assert done, refused
    assert all("is no longer the champion" in message for message in refused), refused
    # one step back each, from distinct champions: v5 → v4 → v3 …, never twice from one champion
    steps = dict(done)
    assert len(steps) == len(done)
    expected = [(CHAIN[-1 - i], CHAIN[-2 - i]) for i in range(len(done))]
    assert sorted(done, reverse=True) == expected
    assert _champion(registry) == expected[-1][1]
    rolled_back = {v.version for v in registry.list_versions() if v.rolled_back_at is not None}
    assert rolled_back == set(steps)
