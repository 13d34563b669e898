"""Run history: a run starts once and finishes once; list order; totals counted from the table."""

from __future__ import annotations

import json
import math

import pytest

from clvdrift.errors import RegistryError
from clvdrift.store import RunStore, connect
from store.processes import run_at_once, run_python  # type: ignore[import-not-found]


def test_lifecycle_of_a_run(store_url):
    runs = RunStore(connect(store_url))
    inputs = {"files": [{"path": "week_09.csv", "sha256": "f" * 64}], "mode": "append"}
    started = runs.start("cycle_20261130T180000Z", "airflow", inputs)
    assert (started.status, started.trigger, started.inputs, started.finished_at) == (
        "running",
        "airflow",
        inputs,
        None,
    )
    assert (started.durations, started.details) == ({}, {})
    assert started.started_at.utcoffset() is not None
    assert runs.get("cycle_20261130T180000Z") == started

    done = runs.finish(
        "cycle_20261130T180000Z",
        status="success",
        champion_version="20261101T000000Z",
        data_drift=True,
        model_drift=False,
        decision="retrain",
        challenger={"version": "20261130T180500Z", "outcome": "rejected", "reason": "spearman 0.41 < 0.45"},
        durations={"detect": 1.25, "retrain": math.nan},
        details={"reasons": ["PSI of recency 0.31 > 0.2"]},
    )
    assert done.status == "success" and done.finished_at is not None and done.finished_at >= done.started_at
    assert done.durations == {"detect": 1.25, "retrain": None}  # NaN stored as null
    assert done.challenger is not None and done.challenger["outcome"] == "rejected"
    assert runs.get("cycle_20261130T180000Z") == done
    assert done.to_dict()["finished_at"] == done.finished_at.isoformat()


def test_a_run_starts_once_and_finishes_once(store_url):
    runs = RunStore(connect(store_url))
    runs.start("r1", "cli", {})
    with pytest.raises(
        RegistryError, match=r"run r1 was already started at .* \(trigger cli, status running\)"
    ):
        runs.start("r1", "airflow", {})
    runs.finish("r1", status="failed", error="DataError: no rows")
    with pytest.raises(
        RegistryError, match=r"run r1 cannot be finished as success: it finished already as failed"
    ):
        runs.finish("r1", status="success")
    assert runs.get("r1").error == "DataError: no rows"
    with pytest.raises(RegistryError, match=r"run r2 cannot be finished: it was never started"):
        runs.finish("r2", status="success")
    with pytest.raises(RegistryError, match=r"unknown run 'r2'"):
        runs.get("r2")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda runs: runs.start("r", "cron", {}), r"run r: trigger 'cron' is not one of cli, airflow"),
        (lambda runs: runs.finish("r", status="running"), r"run r: final status 'running' is not one of"),
        (lambda runs: runs.finish("r", status="success", decision="maybe"), r"decision 'maybe' is not one"),
        (lambda runs: runs.list(limit=0), r"limit must be at least 1, got 0"),
        (lambda runs: runs.start("r", "api", None), r"run r: inputs are required .*, got None"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, call, message):
    runs = RunStore(connect(f"sqlite:///{tmp_path / 'store.db'}"))
    with pytest.raises(RegistryError, match=message) as info:
        call(runs)
    assert "\n" not in str(info.value)


def _start(index: int, url: str) -> str:
    engine = connect(url)
    try:
        RunStore(engine).start("manual__2026-11-30T18:00:00", "airflow", {"attempt": index})
        return "started"
    except RegistryError as exc:
        return f"refused: {exc}"
    finally:
        engine.dispose()


def test_concurrent_starts_of_one_run_id_one_wins(store_url):
    connect(store_url).dispose()
    results = run_at_once(_start, 4, store_url)
    assert all(status == "ok" for status, _ in results), results
    values = [value for _, value in results]
    assert values.count("started") == 1, values
    assert all("already started" in v for v in values if v != "started"), values
    assert len(RunStore(connect(store_url)).list()) == 1


def test_list_is_newest_first_and_limited(store_url):
    runs = RunStore(connect(store_url))
    for i in range(7):
        runs.start(f"run_{i:02d}", "schedule", {"i": i})
    assert [r.run_id for r in runs.list()] == [f"run_{i:02d}" for i in reversed(range(7))]
    assert [r.run_id for r in runs.list(limit=3)] == ["run_06", "run_05", "run_04"]


# (status, data drift, model drift, decision, challenger outcome) of a mixed history
_HISTORY = [
    ("success", True, False, "retrain", "promoted"),
    ("success", True, True, "retrain", "rejected"),
    ("success", False, True, "retrain", "rejected"),
    ("success", False, False, "no_retrain", None),
    ("skipped", None, None, "no_new_data", None),
    ("skipped", None, None, "no_new_data", None),
    ("failed", True, None, None, None),
    ("partial", True, False, "retrain", "promoted"),
    ("rejected", None, None, None, None),
    ("running", None, None, None, None),
]
# champion changes by hand: runs of their own kind, not counted as monitoring runs
_MANUAL = [("rollback", "rollback"), ("rollback", "rollback"), ("promote", "promote")]


def _fill(runs: RunStore) -> None:
    for i, (status, data, model, decision, outcome) in enumerate(_HISTORY):
        runs.start(f"run_{i}", "cli", {})
        if status == "running":
            continue
        challenger = {"version": f"v{i}", "outcome": outcome} if outcome else None
        runs.finish(
            f"run_{i}",
            status=status,
            data_drift=data,
            model_drift=model,
            decision=decision,
            challenger=challenger,
        )
    for i, (kind, decision) in enumerate(_MANUAL):
        runs.start(f"manual_{i}", "cli", {}, kind=kind)
        runs.finish(f"manual_{i}", status="success", decision=decision)


def _expected() -> dict[str, int]:
    statuses = [h[0] for h in _HISTORY]
    return {
        "runs": len(_HISTORY),
        **{s: statuses.count(s) for s in ("running", "success", "partial", "rejected", "failed", "skipped")},
        "data_drift": sum(h[1] is True for h in _HISTORY),
        "model_drift": sum(h[2] is True for h in _HISTORY),
        "retrains": sum(h[3] == "retrain" for h in _HISTORY),
        "promotions": sum(h[4] == "promoted" for h in _HISTORY),
        "rejections": sum(h[4] == "rejected" for h in _HISTORY),
        "rollbacks": sum(k == "rollback" for k, _ in _MANUAL),
        "manual_promotions": sum(k == "promote" for k, _ in _MANUAL),
    }


def test_totals_are_counted_from_the_table_also_by_a_new_process(store_url):
    runs = RunStore(connect(store_url))
    assert set(runs.totals().values()) == {0}
    _fill(runs)
    assert runs.totals() == _expected()
    code = (
        "import json; from clvdrift.store import RunStore, connect; "
        f"print(json.dumps(RunStore(connect({store_url!r})).totals()))"
    )
    assert json.loads(run_python(code)) == _expected()
