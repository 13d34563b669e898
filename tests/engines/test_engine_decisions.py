"""The same monitoring decisions with every engine: train, a clean batch, a drifted batch (detect,
retrain, gate) through `clvdrift` itself, once per engine in a workspace of its own. The Dask engine
runs on a real LocalCluster of two worker processes, started and closed here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clvdrift import cli
from helpers import synthetic_history  # type: ignore[import-not-found]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code = cli.run([*args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def decisions(engine: str, root: Path, monkeypatch: pytest.MonkeyPatch, capsys, scheduler: str) -> dict:  # type: ignore[no-untyped-def]
    root.mkdir()
    data = root / "history.csv"
    synthetic_history(data)
    monkeypatch.chdir(root)
    for var in [v for v in os.environ if v.startswith("CLVDRIFT_") and not v.startswith("CLVDRIFT_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("CLVDRIFT_RAW_DATA", str(data))
    monkeypatch.setenv("CLVDRIFT_TRAIN__GBM__MAX_ITER", "10")
    monkeypatch.setenv("CLVDRIFT_ENGINE", engine)
    monkeypatch.setenv("CLVDRIFT_DASK_SCHEDULER", scheduler)
    trained = run(capsys, "train")
    assert trained["engine"] == engine
    out: dict = {"train": {k: trained[k] for k in ("evaluation", "cleaning", "training")}}
    for scenario, seed in (("none", "0"), ("data-drift", "3")):
        assert cli.run(["simulate", "--scenario", scenario, "--seed", seed]) == 0
        capsys.readouterr()
        cycle = run(capsys, "monitor")
        detect = cycle["detect"]
        out[scenario] = {
            "decision": cycle["decision"],
            "drift": [
                (c["column"], c["test"], c["statistic"], c["p_value"], c["drifted"])
                for c in detect["data_drift"]["columns"]
            ],
            "model_drift": detect["model_drift"],
            "challenger": None
            if cycle["challenger"] is None
            else {k: cycle["challenger"][k] for k in ("outcome", "reason")},
        }
    checked = [r for r in run(capsys, "runs", "list")["runs"] if r["decision"] in ("retrain", "no_retrain")]
    assert len(checked) == 2 and all(r["details"]["engine"] == engine for r in checked), checked
    return out


def test_a_monitoring_cycle_decides_alike_with_every_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], scheduler: str
) -> None:
    results = {
        e: decisions(e, tmp_path / e, monkeypatch, capsys, scheduler) for e in ("pandas", "duckdb", "dask")
    }
    assert results["pandas"]["data-drift"]["decision"] == "retrain"  # the sequence exercises a retraining
    assert results["pandas"]["none"]["decision"] == "no_retrain"
    for engine in ("duckdb", "dask"):
        assert results[engine] == results["pandas"], engine


def test_a_replay_decides_alike_with_every_engine(tmp_path: Path, scheduler: str) -> None:
    """Three policies over five steps of a small history: the same timeline (checks, alarms, retrains,
    gate outcomes, realized quality) with every engine; only version names (timestamps) differ."""
    from clvdrift.config import GbmParams, TrainConfig
    from clvdrift.data import load_transactions
    from clvdrift.engines import EngineChoice
    from clvdrift.pipeline.replay import replay

    data = tmp_path / "history.csv"
    synthetic_history(data, days=300)
    raw = load_transactions(data)
    volatile = {"champion_version", "champion_after", "challenger_version"}
    timelines = {}
    for engine in ("pandas", "duckdb", "dask"):
        result = replay(
            raw,
            out_dir=tmp_path / engine,
            source="history.csv",
            start="2022-08-01",
            step_days=21,
            policies=["never", "every:2", "on-drift"],
            train_config=TrainConfig(gbm=GbmParams(max_iter=10)),
            engines=EngineChoice(engine, dask_scheduler=scheduler),
        )
        timelines[engine] = [
            {k: v for k, v in s.to_dict().items() if k not in volatile} for s in result.steps
        ]
    assert any(s["retrained"] for s in timelines["pandas"])  # the replay exercises retraining
    for engine in ("duckdb", "dask"):
        assert timelines[engine] == timelines["pandas"], engine
