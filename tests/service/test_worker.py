"""The worker and its retrain queue, on the real stores (SQLite and PostgreSQL) with real processes:
a job is processed exactly once with two workers, a job whose worker was killed is taken again, the
worker's checks record drift events and queue jobs, new history gets a monitoring cycle."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from clvdrift.config import DriftConfig, GateConfig, GbmParams, LoopConfig, TrainConfig
from clvdrift.io import ProcessIdentity
from clvdrift.pipeline.common import Workspace
from service.conftest import seed_workspace  # type: ignore[import-not-found]
from service.server import env_for  # type: ignore[import-not-found]
from store.processes import run_at_once  # type: ignore[import-not-found]

TINY = TrainConfig(gbm=GbmParams(max_iter=20))


def _workspace(root: Path, database_url: str | None = None) -> Workspace:
    ws, _ = seed_workspace(root, customers=120)
    if database_url is None:
        return ws
    # the same files with the store on PostgreSQL: train there again (the registry lives in the store)
    from dataclasses import replace

    from clvdrift import pipeline
    from clvdrift.data import load_transactions
    from clvdrift.data.history import TransactionHistory
    from clvdrift.io import sha256_file
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.store import connect

    pg = replace(
        ws, database_url=database_url, history_dir=root / "pg-history", models_dir=root / "pg-models"
    )
    pipeline.train(
        pg.raw_data,
        registry=open_registry(pg.database_url),
        models_dir=pg.models_dir,
        reference_dir=pg.reference_dir,
        config=TINY,
    )
    TransactionHistory(pg.history_dir, connect(pg.database_url)).add(
        load_transactions(pg.raw_data), source="seed", sha256=sha256_file(pg.raw_data), mode="append"
    )
    return pg


def _engine(ws: Workspace):  # type: ignore[no-untyped-def]
    from clvdrift.store import connect

    return connect(ws.database_url)


# ------------------------------------------------------------------ the queue alone
def _claim_all(index: int, url: str) -> list[str]:
    from clvdrift.store import connect
    from clvdrift.store.jobs import RetrainJobs

    jobs = RetrainJobs(connect(url))
    me = ProcessIdentity.current()
    taken = []
    while (job := jobs.claim(me, lease_seconds=60)) is not None:
        taken.append(job.job_id)
        assert jobs.finish(job.job_id, me, ok=True, result={"by": index})
    return taken


def test_eight_processes_claim_each_job_once(store_url):
    from clvdrift.store import connect
    from clvdrift.store.jobs import RetrainJobs

    jobs = RetrainJobs(connect(store_url))
    queued = {jobs.enqueue("test", f"job {i}").job_id for i in range(30)}
    results = run_at_once(_claim_all, 8, store_url)
    assert all(status == "ok" for status, _ in results), results
    taken = [job for _, got in results for job in got]
    assert sorted(taken) == sorted(queued)  # every job once, none twice
    assert {j.status for j in jobs.list(limit=100)} == {"done"}
    assert {j.attempts for j in jobs.list(limit=100)} == {1}


def test_a_job_of_a_dead_worker_is_taken_again_and_a_stale_one_cannot_finish(store_url):
    from clvdrift.store import connect
    from clvdrift.store.jobs import MAX_ATTEMPTS, RetrainJobs

    jobs = RetrainJobs(connect(store_url))
    job = jobs.enqueue("test", "x")
    dead = ProcessIdentity(ProcessIdentity.current().host, 2**22 + 17, "0")  # no such process here
    assert jobs.claim(dead, lease_seconds=3600).job_id == job.job_id
    me = ProcessIdentity.current()
    again = jobs.claim(me, lease_seconds=3600)
    assert again is not None and again.job_id == job.job_id and again.attempts == 2
    assert "died" in (again.error or "")
    assert not jobs.finish(job.job_id, dead, ok=True)  # the dead owner's late finish changes nothing
    assert jobs.finish(job.job_id, me, ok=True)
    # another host's worker: only its lease decides; after MAX_ATTEMPTS the job is given up
    other = jobs.enqueue("test", "y")
    elsewhere = ProcessIdentity("another-host", 1, None)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        time.sleep(0.01)
        claimed = jobs.claim(elsewhere, lease_seconds=0.0)
        assert claimed is not None and claimed.attempts == attempt
    assert jobs.claim(me, lease_seconds=0.0) is None
    assert jobs.get(other.job_id).status == "failed"
    assert "given up after 3 attempts" in (jobs.get(other.job_id).error or "")


# ------------------------------------------------------------------ two real workers
def _work_until_empty(index: int, ws: Workspace) -> list[str]:
    from clvdrift.pipeline.jobs import run_next_job
    from clvdrift.store import connect

    engine = connect(ws.database_url)
    done = []
    while (
        job := run_next_job(ws, engine, train_config=TINY, gate_config=GateConfig(), lease_seconds=60)
    ) is not None:
        done.append(job.job_id)
    return done


def test_two_workers_process_each_queued_job_exactly_once_on_postgresql(tmp_path):
    from clvdrift.store.jobs import RetrainJobs
    from clvdrift.store.runs import RunStore
    from store.pgdb import fresh_database  # type: ignore[import-not-found]

    with fresh_database() as url:
        ws = _workspace(tmp_path, url)
        engine = _engine(ws)
        queued = [RetrainJobs(engine).enqueue("test", f"job {i}").job_id for i in range(4)]
        results = run_at_once(_work_until_empty, 2, ws)
        assert all(status == "ok" for status, _ in results), results
        done = [job for _, got in results for job in got]
        assert sorted(done) == sorted(queued)
        jobs = {j.job_id: j for j in RetrainJobs(engine).list(limit=10)}
        assert all(jobs[j].status == "done" and jobs[j].attempts == 1 for j in queued)
        retrain_runs = [r for r in RunStore(engine).list(limit=50) if r.kind == "retrain"]
        assert sorted(r.run_id for r in retrain_runs) == sorted(f"{j}_a1" for j in queued)
        assert all(r.status == "success" and r.trigger == "worker" for r in retrain_runs)
        from clvdrift.pipeline.champion import open_registry

        registry = open_registry(url)
        assert all(registry.of_run(f"{j}_a1") is not None for j in queued)  # each registered one version
        engine.dispose()


@pytest.mark.parametrize("stop_at", ["job.started", "job.retrained"])
def test_a_job_whose_worker_was_killed_is_retried(tmp_path, stop_at):
    """A real `clvdrift worker --once` stopped mid-job (fault point), then SIGKILLed: the next worker takes
    the job again and finishes it, without registering a second model when the killed attempt had
    registered one; the killed attempt's run is reaped as failed."""
    ws = _workspace(tmp_path)
    from clvdrift.pipeline.jobs import request_retrain, run_next_job
    from clvdrift.store.jobs import RetrainJobs

    engine = _engine(ws)
    job = request_retrain(engine, "test", "kill me")
    env = env_for(ws, CLVDRIFT_TEST_STOP_AT=stop_at, CLVDRIFT_TRAIN__GBM__MAX_ITER="20")
    proc = subprocess.Popen([sys.executable, "-m", "clvdrift", "worker", "--once"], env=env)
    try:
        deadline = time.monotonic() + 60
        while _state(proc.pid) != "T":  # it stops itself at the fault point
            assert time.monotonic() < deadline and proc.poll() is None, "the worker never reached " + stop_at
            time.sleep(0.05)
        assert RetrainJobs(engine).get(job.job_id).status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finished = run_next_job(ws, engine, train_config=TINY, gate_config=GateConfig(), lease_seconds=3600)
    assert finished is not None and finished.job_id == job.job_id
    assert finished.status == "done" and finished.attempts == 2
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.store.runs import RunStore

    registry = open_registry(ws.database_url)
    registered = [v for v in registry.list_versions() if (v.run_id or "").startswith(job.job_id)]
    assert len(registered) == 1  # never twice
    if stop_at == "job.retrained":  # the killed attempt had registered its model: taken as the result
        assert finished.result == {
            "run_id": f"{job.job_id}_a1",
            "version": registered[0].version,
            "recovered": True,
        }
    else:
        assert finished.result and finished.result["run_id"] == f"{job.job_id}_a2"
    killed = RunStore(engine).get(f"{job.job_id}_a1")
    assert killed.status == "failed" and "stopped" in (killed.error or "")


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


# ------------------------------------------------------------------ the worker's checks
def _log_predictions(ws: Workspace, scale: float) -> None:
    from clvdrift.pipeline.serving import load_serving_champion, log_predictions

    champion = load_serving_champion(ws)
    reference = pd.read_csv(ws.reference_dir / "reference_data.csv")
    frame = reference[champion.input_features].copy()
    numeric = [c for c in frame if c != "Country"]
    frame[numeric] = frame[numeric] * scale
    frame["prediction"] = champion.model.predict(frame)
    log_predictions(ws, _engine(ws), champion.version, frame)


def test_logged_predictions_are_checked_once_and_drift_queues_a_retrain(tmp_path):
    from clvdrift.pipeline.jobs import check_logged_predictions
    from clvdrift.store.jobs import RetrainJobs
    from clvdrift.store.online import DriftEvents, PredictionLog

    ws = _workspace(tmp_path)
    engine = _engine(ws)
    _log_predictions(ws, 1.0)
    calm = check_logged_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5)
    assert calm is not None and calm.dataset_drift is False and calm.source == "worker"
    assert RetrainJobs(engine).pending() == 0
    assert check_logged_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5) is None  # checked
    _log_predictions(ws, 6.0)
    drifted = check_logged_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5)
    assert drifted is not None and drifted.dataset_drift is True and drifted.severity == "critical"
    assert {f.feature for f in drifted.features} >= {"Monetary", "prediction"}
    jobs = RetrainJobs(engine).list()
    assert len(jobs) == 1 and jobs[0].requested_by == "worker" and drifted.event_id in jobs[0].reason
    assert [e.event_id for e in DriftEvents(engine).list()] == [drifted.event_id, calm.event_id]
    assert PredictionLog(engine).unchecked() == []


def _check_once(index: int, ws: Workspace) -> str | None:
    from clvdrift.pipeline.jobs import check_logged_predictions

    drift = check_logged_predictions(ws, _engine(ws), DriftConfig(), warning=0.2, critical=0.5)
    return drift.event_id if drift is not None else None


def test_four_workers_checking_at_once_record_one_event(tmp_path, store_url):
    """The batches are claimed with the event in one transaction: of four concurrent checks one records
    an event covering every batch, the others find nothing (found by an adversarial check: both of two
    workers recorded an event before)."""
    from clvdrift.store.online import DriftEvents, PredictionLog

    ws = _workspace(tmp_path, None if store_url.startswith("sqlite") else store_url)
    engine = _engine(ws)
    for scale in (1.0, 1.0, 6.0):
        _log_predictions(ws, scale)
    logged = sum(b.rows for b in PredictionLog(engine).unchecked())
    results = run_at_once(_check_once, 4, ws)
    assert all(status == "ok" for status, _ in results), results
    events = [value for _, value in results if value is not None]
    assert len(events) == 1, results
    stored = DriftEvents(engine).list()
    assert [e.event_id for e in stored] == events and stored[0].rows == logged
    assert PredictionLog(engine).unchecked() == []


def test_predictions_logged_before_a_promotion_are_checked_against_their_own_version(tmp_path):
    """A batch logged by the old champion is not left unchecked after a promotion: it is checked against
    the old version's profile (a drift event of that version, no retrain job), and only once; the new
    champion's own batches are left to check_logged_predictions."""
    from clvdrift import pipeline
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.pipeline.jobs import check_earlier_predictions, check_logged_predictions
    from clvdrift.pipeline.serving import champion_version
    from clvdrift.store.jobs import RetrainJobs
    from clvdrift.store.online import PredictionLog

    ws = _workspace(tmp_path)
    engine = _engine(ws)
    old = champion_version(engine)
    _log_predictions(ws, 6.0)  # drifted, by the old champion
    assert check_earlier_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5) == []  # champion's
    new = pipeline.train(
        ws.raw_data,
        registry=open_registry(ws.database_url),
        models_dir=ws.models_dir,
        reference_dir=ws.reference_dir,
        config=TINY,
        champion=True,
    ).version
    assert champion_version(engine) == new != old
    _log_predictions(ws, 1.0)  # by the new champion
    earlier = check_earlier_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5)
    assert [(e.model_version, e.dataset_drift) for e in earlier] == [(old, True)]
    assert RetrainJobs(engine).pending() == 0
    assert [b.model_version for b in PredictionLog(engine).unchecked()] == [new]
    assert check_earlier_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5) == []
    mine = check_logged_predictions(ws, engine, DriftConfig(), warning=0.2, critical=0.5)
    assert mine is not None and mine.model_version == new and PredictionLog(engine).unchecked() == []


def test_ingested_history_gets_a_cycle_and_queue_mode_leaves_retraining_to_the_worker(tmp_path):
    from clvdrift.pipeline.ingest import ingest_records
    from clvdrift.pipeline.jobs import check_new_history
    from clvdrift.store import Ledger
    from clvdrift.store.jobs import RetrainJobs

    ws = _workspace(tmp_path)
    engine = _engine(ws)
    kwargs = dict(
        mode="append",
        train_config=TINY,
        drift_config=DriftConfig(  # any batch drifts: a distance test with threshold 0 on a key column
            key_columns=("Recency",),
            per_column_stattest={"Recency": "wasserstein"},
            per_column_threshold={"Recency": 0.0},
        ),
        gate_config=GateConfig(),
        loop_config=LoopConfig(retrain="queue"),
    )
    # the seeded batch was added without a ledger entry (as by a writer killed before recording it): the
    # worker runs a cycle, which records and checks it; then nothing is new
    assert check_new_history(ws, engine, **kwargs) is not None
    assert check_new_history(ws, engine, **kwargs) is None
    row = {
        "InvoiceNo": "777001",
        "StockCode": "SKU001",
        "Quantity": 2,
        "InvoiceDate": "2023-02-26T09:00:00",
        "UnitPrice": 30.0,
        "CustomerID": "90003",
        "Country": "Norway",
    }
    ingest_records(ws, [row])
    assert len(Ledger(engine).unchecked()) == 1
    result = check_new_history(ws, engine, **kwargs)
    assert result is not None and result.decision == "retrain" and result.challenger is None
    assert Ledger(engine).unchecked() == []
    assert check_new_history(ws, engine, **kwargs) is None  # checked once
    jobs = RetrainJobs(engine).list()
    # one job queued by the first cycle that found drift; the second found it pending and queued none
    assert len(jobs) == 1 and jobs[0].requested_by == "cycle" and jobs[0].reason.startswith("run cycle_")
    from clvdrift.store.runs import RunStore

    assert RunStore(engine).get(result.run_id).details["retrain_job"] == "pending already"


def test_worker_once_from_the_command_line(tmp_path, monkeypatch):
    from clvdrift.cli import run
    from clvdrift.store.jobs import RetrainJobs

    ws = _workspace(tmp_path)
    for name, value in {
        "CLVDRIFT_DATABASE_URL": ws.database_url,
        "CLVDRIFT_MODELS_DIR": str(ws.models_dir),
        "CLVDRIFT_REFERENCE_DIR": str(ws.reference_dir),
        "CLVDRIFT_HISTORY_DIR": str(ws.history_dir),
        "CLVDRIFT_REPORTS_DIR": str(ws.reports_dir),
        "CLVDRIFT_PREDICTIONS_DIR": str(ws.predictions_dir),
        "CLVDRIFT_CURRENT_DIR": str(ws.current_dir),
        "CLVDRIFT_METRICS_TEXTFILE": str(ws.metrics_textfile),
        "CLVDRIFT_RAW_DATA": str(ws.raw_data),
        "CLVDRIFT_TRAIN__GBM__MAX_ITER": "20",
        "CLVDRIFT_BATCH_MODE": "append",
    }.items():
        monkeypatch.setenv(name, value)
    job = RetrainJobs(_engine(ws)).enqueue("test", "from the CLI")
    assert run(["worker", "--once"]) == 0
    assert RetrainJobs(_engine(ws)).get(job.job_id).status == "done"


pytestmark = pytest.mark.timeout(300)
