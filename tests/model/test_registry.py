"""Registry on SQLite and on the real PostgreSQL at 127.0.0.1:5432 (fails, never skips, if unreachable)."""

from __future__ import annotations

import pytest

from clvdrift.errors import RegistryError
from clvdrift.model.registry import ModelRegistry
from clvdrift.store import connect
from store.pgdb import fresh_database  # type: ignore[import-not-found]


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        yield ModelRegistry(connect(f"sqlite:///{tmp_path / 'store.db'}"))
        return
    with fresh_database() as url:  # a database of its own (raises, failing the test, if unreachable)
        engine = connect(url)
        assert engine.dialect.name == "postgresql"
        yield ModelRegistry(engine)
        engine.dispose()


def record(version: str, spearman: float = 0.5) -> dict:
    return dict(
        target="holdout",
        metrics={"model": {"spearman": spearman}, "baseline": {"spearman": 0.4}, "beats_baseline": True},
        params={"n_estimators": 100},
        training={"cutoff": "2011-09-09", "customers": 3364},
        data_fingerprint={"sha256": "ab" * 32, "rows": 541909},
        artifacts={"model": {"path": f"clv_model_{version}.joblib", "sha256": "cd" * 32}},
    )


def test_first_version_becomes_champion_later_ones_do_not(registry):
    v1 = registry.register("v1", **record("v1"))
    v2 = registry.register("v2", **record("v2", 0.6))
    assert v1.is_champion and not v2.is_champion
    assert registry.champion().version == "v1"
    assert [v.version for v in registry.list_versions()] == ["v2", "v1"]
    assert registry.get("v2").metrics["model"]["spearman"] == 0.6


def test_exactly_one_champion_after_promotions(registry):
    for v in ("v1", "v2", "v3"):
        registry.register(v, **record(v))
    registry.promote("v3")
    registry.register("v4", **record("v4"), champion=True)
    champions = [v.version for v in registry.list_versions() if v.is_champion]
    assert champions == ["v4"]
    registry.promote("v2")
    assert [v.version for v in registry.list_versions() if v.is_champion] == ["v2"]
    promoted_at = registry.get("v2").promoted_at
    assert registry.promote("v2").promoted_at == promoted_at  # promoting the champion changes nothing


def test_explicit_challenger_on_an_empty_registry_is_not_champion(registry):
    assert registry.register("v1", **record("v1"), champion=False).is_champion is False
    assert registry.champion() is None


def test_duplicate_and_unknown_versions(registry):
    registry.register("v1", **record("v1"))
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("v1", **record("v1"))
    assert len(registry.list_versions()) == 1  # nothing half-written
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.promote("nope")
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.get("nope")


def test_round_trip_to_dict(registry):
    v = registry.register("v1", **record("v1"))
    d = registry.get("v1").to_dict()
    assert d["version"] == "v1" and d["is_champion"] is True and d["artifacts"] == v.artifacts
    assert isinstance(d["created_at"], str)


def test_unreachable_store_is_a_clear_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot open store"):
        connect("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
