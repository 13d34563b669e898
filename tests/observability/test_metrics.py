"""Metrics from the run history: values, cumulative counters across processes, publish outcomes.

The store is real (SQLite and PostgreSQL through ``store_url``); the exposition text is parsed back with
prometheus_client's own parser. The Pushgateway itself is exercised in tests/deploy (a real binary).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clvdrift.model.registry import ModelRegistry
from clvdrift.observability.metrics import (
    METRICS,
    CheckSummary,
    MetricsSnapshot,
    publish,
    snapshot,
)
from clvdrift.store import connect
from clvdrift.store.runs import RunStore


def _check(version: str, data: bool, model: bool = False) -> dict:
    return CheckSummary(
        model_version=version,
        data_drift=data,
        model_drift=model,
        drift_share=0.5 if data else 0.0,
        drifted_columns=4 if data else 0,
        column_scores={"Monetary": 0.31 if data else 0.02, "Frequency": None},
        performance={"r2": 0.42, "mae": 120.5, "rmse": 300.0, "spearman": float("nan")},
        rows=1000,
        customers=90,
    ).to_dict()


def _run(runs: RunStore, run_id: str, *, data: bool, model: bool = False, status: str = "success") -> None:
    runs.start(run_id, "cli", {"files": []})
    if status == "failed":
        runs.finish(run_id, status="failed", error="boom")
        return
    runs.finish(
        run_id,
        status=status,
        champion_version="v1",
        data_drift=data,
        model_drift=model,
        decision="retrain" if data or model else "no_retrain",
        challenger={"outcome": "rejected"} if data else None,
        details={"check": _check("v1", data, model)},
    )


REFERENCE = {"r2": 0.3, "mae": 610.5, "rmse": 2400.0, "spearman": 0.53, "gini_normalized": 0.6}
"""A champion's registered ``metrics["model"]`` (held-out quality at training)."""


def _series(snap: MetricsSnapshot) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(snap.render()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(series: dict, name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} series"
    return hits[0]


def test_counters_come_from_the_store_and_add_up_across_processes(store_url: str) -> None:
    engine = connect(store_url)
    _run(RunStore(engine), "r1", data=False)
    _run(RunStore(engine), "r2", data=True)
    first = _series(snapshot(engine, "v1"))
    assert _value(first, "clv_drift_detected_total", drift_type="data") == 1
    # another "process": a new engine, a new snapshot; the counter continues from the store
    other = connect(store_url)
    _run(RunStore(other), "r3", data=True, model=True)
    series = _series(snapshot(other, "v1"))
    assert _value(series, "clv_drift_detected_total", drift_type="data") == 2
    assert _value(series, "clv_drift_detected_total", drift_type="model") == 1
    assert _value(series, "clv_monitoring_runs_total", status="success") == 3
    assert _value(series, "clv_retrains_total") == 2
    assert _value(series, "clv_challengers_rejected_total") == 2
    assert _value(series, "clv_promotions_total") == 0
    assert _value(series, "clv_drift_status", drift_type="model") == 1
    assert _value(series, "clv_drift_score", feature="dataset") == 0.5
    assert _value(series, "clv_drift_score", feature="Monetary") == 0.31
    assert _value(series, "clv_drifted_columns_count") == 4
    assert _value(series, "clv_model_performance", metric="r2") == 0.42
    assert _value(series, "clv_customers_processed") == 90
    assert _value(series, "clv_champion_info", model_version="v1") == 1
    # undefined numbers are left out, not exported as NaN
    assert not [k for k in series if k[0] == "clv_drift_score" and ("feature", "Frequency") in k[1]]
    assert not [k for k in series if ("metric", "spearman") in k[1]]


def test_every_series_carries_model_version_and_every_metric_is_declared(store_url: str) -> None:
    engine = connect(store_url)
    _run(RunStore(engine), "r1", data=True)
    _register(engine, "v2", {"model": REFERENCE})
    families = list(text_string_to_metric_families(snapshot(engine, "v2").render()))
    names = {f.name + ("_total" if f.type == "counter" else "") for f in families if f.samples}
    assert names == set(METRICS), set(METRICS) ^ names
    for family in families:
        assert family.type == METRICS[family.name + ("_total" if family.type == "counter" else "")][0]
        for sample in family.samples:
            assert sample.labels.get("model_version"), sample
    series = _series(snapshot(engine, "v2"))
    # drift series carry the version that was checked; the run series the current champion
    assert _value(series, "clv_drift_status", drift_type="data", model_version="v1") == 1
    assert _value(series, "clv_champion_info", model_version="v2") == 1


def _register(engine, version: str, metrics: dict, *, champion: bool = True) -> None:
    """A registry row of ``version`` with ``metrics`` (no files: metrics never reads them)."""
    ModelRegistry(engine).register(
        version,
        target="holdout",
        metrics=metrics,
        params={},
        training={},
        data_fingerprint={},
        artifacts={},
        champion=champion,
    )


def _reference(series: dict) -> dict[tuple[str, str], float]:
    """(model_version, metric) → value of every clv_model_reference_performance series."""
    return {
        (dict(labels)["model_version"], dict(labels)["metric"]): value
        for (name, labels), value in series.items()
        if name == "clv_model_reference_performance"
    }


def test_the_reference_quality_is_the_champions_registered_metrics(store_url: str) -> None:
    engine = connect(store_url)
    _register(engine, "v1", {"model": REFERENCE, "baseline": {"r2": 0.9, "spearman": 0.9}})
    _run(RunStore(engine), "r1", data=False)  # checked v1: realized r2 0.42, spearman undefined
    series = _series(snapshot(engine, "v1"))
    # the four quality metrics of clv_model_performance, from metrics["model"] (not the baseline's)
    assert _reference(series) == {
        ("v1", "r2"): 0.3,
        ("v1", "mae"): 610.5,
        ("v1", "rmse"): 2400.0,
        ("v1", "spearman"): 0.53,
    }
    # next to the realized quality of the same model version: what CLVModelPerformanceLow compares
    assert _value(series, "clv_model_performance", metric="r2", model_version="v1") == 0.42


def test_the_reference_follows_the_champion_not_the_checked_model(store_url: str) -> None:
    """After a promotion (or rollback) the reference is the new champion's; the realized quality stays
    the checked model's until the next check, so the two do not pair up across versions."""
    engine = connect(store_url)
    _register(engine, "v1", {"model": REFERENCE})
    _run(RunStore(engine), "r1", data=True)  # checked v1
    _register(engine, "v2", {"model": {"r2": -0.2, "spearman": 0.61}})  # promoted
    series = _series(snapshot(engine, "v2"))
    assert _reference(series) == {("v2", "r2"): -0.2, ("v2", "spearman"): 0.61}
    assert _value(series, "clv_model_performance", metric="r2", model_version="v1") == 0.42
    # rolled back to v1: its own numbers again
    assert _reference(_series(snapshot(engine, "v1")))[("v1", "spearman")] == 0.53


@pytest.mark.parametrize(
    "metrics",
    [
        {},
        {"model": "not a mapping"},
        {"model": {"r2": float("nan"), "mae": None, "rmse": "12", "spearman": True}},
    ],
    ids=["no-model-metrics", "not-a-mapping", "null-or-not-a-number"],
)
def test_an_unknown_reference_exports_no_reference_series(store_url: str, metrics: dict) -> None:
    engine = connect(store_url)
    _register(engine, "v1", metrics)
    _run(RunStore(engine), "r1", data=False)
    series = _series(snapshot(engine, "v1"))
    assert _reference(series) == {}
    assert _value(series, "clv_model_performance", metric="r2") == 0.42


def test_an_unregistered_champion_or_none_has_no_reference(store_url: str) -> None:
    engine = connect(store_url)
    _register(engine, "v1", {"model": REFERENCE})
    assert _reference(_series(snapshot(engine, "unknown"))) == {}
    assert _reference(_series(snapshot(engine, None))) == {}


def test_a_failed_run_sets_last_run_success_to_zero_and_keeps_the_last_success_time(store_url: str) -> None:
    engine = connect(store_url)
    runs = RunStore(engine)
    _run(runs, "ok", data=False)
    success_at = runs.get("ok").finished_at
    _run(runs, "bad", data=False, status="failed")
    series = _series(snapshot(engine, "v1"))
    assert _value(series, "clv_monitoring_last_run_success") == 0
    assert _value(series, "clv_monitoring_last_success_timestamp_seconds") == pytest.approx(
        success_at.timestamp(), abs=1e-3
    )
    assert _value(series, "clv_monitoring_runs_total", status="failed") == 1
    # the drift gauges still describe the last check, made by the successful run
    assert _value(series, "clv_drift_status", drift_type="data") == 0


def test_an_empty_store_exports_only_totals_and_the_champion(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    series = _series(snapshot(engine, None))
    assert _value(series, "clv_champion_info", model_version="none") == 1
    assert _value(series, "clv_drift_detected_total", drift_type="data") == 0
    assert not [k for k in series if k[0] == "clv_monitoring_last_run_success"]


def test_textfile_is_written_whole(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    _run(RunStore(engine), "r1", data=True)
    target = tmp_path / "textfile" / "clvdrift.prom"
    outcome = publish(snapshot(engine, "v1"), pushgateway_url=None, textfile=target)
    assert outcome.ok and outcome.target == "textfile" and outcome.series > 10
    text = target.read_text()
    assert 'clv_drift_detected_total{drift_type="data",model_version="v1"} 1.0' in text
    assert [p.name for p in target.parent.iterdir()] == ["clvdrift.prom"]  # no temp file left


def test_an_unreachable_pushgateway_is_an_outcome_not_an_exception(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    with socket.socket() as s:  # bound, not listening: refused, and no other process can take the port
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        outcome = publish(snapshot(engine, "v1"), pushgateway_url=url, textfile=tmp_path / "x")
    assert not outcome.ok and outcome.target == "pushgateway"
    assert outcome.error and "\n" not in outcome.error
    assert not (tmp_path / "x").exists()


def test_an_unwritable_textfile_is_an_outcome(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    outcome = publish(snapshot(engine, "v1"), pushgateway_url=None, textfile=blocker / "clvdrift.prom")
    assert not outcome.ok and outcome.error


def test_add_details_merges_and_keeps_the_rest(store_url: str) -> None:
    runs = RunStore(connect(store_url))
    _run(runs, "r1", data=True)
    runs.add_details("r1", metrics={"ok": True})
    details = runs.get("r1").details
    assert details["metrics"] == {"ok": True} and details["check"]["model_version"] == "v1"


def test_a_skipped_run_counts_as_the_monitoring_being_alive(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    runs = RunStore(engine)
    _run(runs, "checked", data=False)
    runs.start("idle", "cli", {"files": []})
    skipped = runs.finish("idle", status="skipped", decision="no_new_data")
    series = _series(snapshot(engine, "v1"))
    assert _value(series, "clv_monitoring_last_success_timestamp_seconds") == pytest.approx(
        skipped.finished_at.timestamp(), abs=1e-3
    )
    assert _value(series, "clv_monitoring_last_run_success") == 1
