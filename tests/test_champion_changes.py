"""Champion changes by hand (`clvdrift models promote` / `models rollback`, ``pipeline/champion.py``):
rollbacks walk back the promotion history, a gate-rejected version needs --force, every change is a
run of its own kind and republishes metrics and the champion's files — on SQLite and PostgreSQL.

Versions are registered with small stand-in files (no training): the changes only publish and verify
files, they never load a model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from clvdrift import cli
from clvdrift.errors import EXIT_BAD_INPUT, EXIT_STORE, ConfigError, RegistryError
from clvdrift.io import sha256_file
from clvdrift.model.registry import ModelRegistry
from clvdrift.pipeline.champion import promote, rollback
from clvdrift.pipeline.common import Workspace
from clvdrift.store import connect
from clvdrift.store.runs import RunStore
from store.processes import run_at_once  # type: ignore[import-not-found]

REJECTED = "challenger spearman 0.1 vs champion 0.5: worse by 0.4 > absolute tolerance 0.02; rejected"


def write_version(models_dir: Path, version: str) -> dict:
    """Stand-in files of ``version`` as :func:`write_artifacts` lays them out: a model file, the reference
    data and the metadata recording their checksums."""
    models_dir.mkdir(parents=True, exist_ok=True)
    files = {"model": f"clv_model_{version}.joblib", "reference": f"reference_{version}.csv"}
    (models_dir / files["model"]).write_text(f"model {version}\n")
    (models_dir / files["reference"]).write_text(f"CustomerID,x\n{version}-1,1\n")
    artifacts = {
        name: {"path": path, "sha256": sha256_file(models_dir / path)} for name, path in files.items()
    }
    meta = {"version": version, "artifacts": artifacts}
    (models_dir / f"metadata_{version}.json").write_text(json.dumps(meta))
    return artifacts


def register(
    ws: Workspace,
    version: str,
    *,
    champion: bool | None,
    gate: dict | None = None,
    quality: dict | None = None,
) -> ModelRegistry:
    registry = ModelRegistry(connect(ws.database_url))
    training = {"customers": 12, **({"gate": gate} if gate else {})}
    registry.register(
        version,
        target="holdout",
        metrics={"model": quality or {"spearman": 0.5}},
        params={},
        training=training,
        data_fingerprint={"rows": 9},
        artifacts=write_version(ws.models_dir, version),
        champion=champion,
    )
    return registry


def chain(ws: Workspace, versions: list[str]) -> ModelRegistry:
    """``versions`` were champion one after the other (the last is champion now, its files published)."""
    from clvdrift.model.artifacts import publish_registry_champion

    for version in versions:
        registry = register(ws, version, champion=True)
    publish_registry_champion(registry, ws.models_dir, ws.reference_dir)
    return registry


def published(ws: Workspace) -> str:
    return json.loads((ws.models_dir / "metadata_latest.json").read_text())["version"]


def champion_info(ws: Workspace) -> list[str]:
    """The model_version labels of clv_champion_info in the metrics textfile."""
    lines = ws.metrics_textfile.read_text().splitlines()
    return [line for line in lines if line.startswith("clv_champion_info{")]


@pytest.fixture
def ws(store_url: str, tmp_path: Path) -> Workspace:
    return dataclasses.replace(Workspace.under(tmp_path / "ws", tmp_path / "raw.csv"), database_url=store_url)


def test_rollbacks_walk_back_c_b_a_then_nothing_is_left(ws):
    registry = chain(ws, ["a", "b", "c"])
    first = rollback(ws)
    assert (first.kind, first.from_version, first.to_version, first.changed) == ("rollback", "c", "b", True)
    assert published(ws) == "b"
    second = rollback(ws)
    assert (second.from_version, second.to_version) == ("b", "a")  # was a toggle back to c
    assert published(ws) == "a"
    with pytest.raises(RegistryError, match=r"^nothing to roll back to: the 2 version") as refused:
        rollback(ws)
    assert refused.value.exit_code == EXIT_STORE
    assert registry.champion().version == "a"
    runs = RunStore(registry.engine).list()
    assert [(r.kind, r.decision, r.status) for r in runs] == [("rollback", "rollback", "success")] * 2
    assert [(r.details["from"], r.details["to"]) for r in runs] == [("b", "a"), ("c", "b")]
    assert [r.trigger for r in runs] == ["cli", "cli"]
    assert runs[0].run_id == second.run_id and runs[0].champion_version == "a"
    assert runs[0].inputs == {"action": "rollback", "from": "b", "to": "a", "requested": None}
    assert runs[0].pid is not None  # its owner, so a killed rollback is reaped
    # every change republished the metrics, recorded like the cycle's
    assert runs[0].details["metrics"]["ok"] is True and runs[0].details["metrics"]["target"] == "textfile"
    assert second.metrics is not None and second.metrics.destination == str(ws.metrics_textfile)


def test_promoting_a_rolled_back_version_again_clears_its_mark(ws):
    registry = chain(ws, ["a", "b", "c"])
    rollback(ws)
    assert registry.get("c").rolled_back_at is not None
    change = promote(ws, "c")
    assert (change.kind, change.from_version, change.to_version, change.forced) == (
        "promote",
        "b",
        "c",
        False,
    )
    assert registry.get("c").rolled_back_at is None and published(ws) == "c"
    assert rollback(ws).to_version == "b"  # c is in the history again; b was never taken off
    run = RunStore(registry.engine).get(change.run_id)
    assert (run.kind, run.decision, run.status) == ("promote", "promote", "success")
    assert {k: run.details[k] for k in ("action", "from", "to", "forced", "gate_reason")} == {
        "action": "promote",
        "from": "b",
        "to": "c",
        "forced": False,
        "gate_reason": None,
    }


def test_rollback_to_a_version_that_was_champion_before(ws):
    registry = chain(ws, ["a", "b", "c"])
    register(ws, "x", champion=False)
    with pytest.raises(RegistryError, match=r"^cannot roll back to model version x: it was never champion"):
        rollback(ws, to="x")
    change = rollback(ws, to="a")
    assert (change.from_version, change.to_version) == ("c", "a") and published(ws) == "a"
    assert RunStore(registry.engine).get(change.run_id).inputs["requested"] == "a"
    assert rollback(ws).to_version == "b"
    assert len(RunStore(registry.engine).list()) == 2  # refusals record no run


def test_a_rollback_to_a_version_whose_files_are_gone_changes_nothing(ws):
    from clvdrift.errors import ArtifactError

    registry = chain(ws, ["a", "b"])
    (ws.models_dir / "clv_model_a.joblib").unlink()
    with pytest.raises(ArtifactError, match=r"clv_model_a\.joblib: artifact missing"):
        rollback(ws)
    assert registry.champion().version == "b" and registry.get("b").rolled_back_at is None
    assert published(ws) == "b" and RunStore(registry.engine).list() == []


def test_promote_of_a_gate_rejected_version_needs_force(ws):
    registry = chain(ws, ["a"])
    register(ws, "r", champion=False, gate={"promote": False, "reason": REJECTED})
    with pytest.raises(
        ConfigError, match=r"^model version r was rejected by the champion/challenger gate: "
    ) as e:
        promote(ws, "r")
    assert REJECTED in str(e.value) and "--force" in str(e.value)
    assert registry.champion().version == "a" and RunStore(registry.engine).list() == []
    change = promote(ws, "r", force=True)
    assert (change.from_version, change.to_version, change.forced, change.gate_reason) == (
        "a",
        "r",
        True,
        REJECTED,
    )
    run = RunStore(registry.engine).get(change.run_id)
    assert run.details["forced"] is True and run.details["gate_reason"] == REJECTED
    assert run.inputs["force"] is True and published(ws) == "r"
    # the champion again: nothing changes, nothing is recorded
    again = promote(ws, "r")
    assert (again.changed, again.run_id, again.metrics) == (False, None, None)
    assert len(RunStore(registry.engine).list()) == 1


def test_every_change_republishes_the_metrics_naming_the_new_champion(ws):
    chain(ws, ["a", "b"])
    assert not ws.metrics_textfile.exists()
    rollback(ws)
    assert champion_info(ws) == ['clv_champion_info{model_version="a"} 1.0']
    promote(ws, "b")
    assert champion_info(ws) == ['clv_champion_info{model_version="b"} 1.0']
    text = ws.metrics_textfile.read_text()
    assert 'clv_monitoring_runs_total{model_version="b",status="success"} 0.0' in text  # not monitoring runs


def reference_quality(ws: Workspace) -> list[str]:
    """The clv_model_reference_performance lines of the metrics textfile."""
    lines = ws.metrics_textfile.read_text().splitlines()
    return sorted(line for line in lines if line.startswith("clv_model_reference_performance{"))


def test_every_change_republishes_the_new_champions_reference_quality(ws):
    """CLVModelPerformanceLow compares the champion with its own reference: after a rollback or a
    promotion the exported reference is the new champion's registered metrics["model"]."""
    from clvdrift.model.artifacts import publish_registry_champion

    register(ws, "a", champion=True, quality={"r2": -0.2, "mae": 600.0, "rmse": 2000.0, "spearman": 0.53})
    registry = register(ws, "b", champion=True, quality={"r2": 0.3, "spearman": 0.61, "mae": None})
    publish_registry_champion(registry, ws.models_dir, ws.reference_dir)
    rollback(ws)
    assert reference_quality(ws) == [
        'clv_model_reference_performance{metric="mae",model_version="a"} 600.0',
        'clv_model_reference_performance{metric="r2",model_version="a"} -0.2',
        'clv_model_reference_performance{metric="rmse",model_version="a"} 2000.0',
        'clv_model_reference_performance{metric="spearman",model_version="a"} 0.53',
    ]
    promote(ws, "b")
    # b's null MAE and missing RMSE are left out, not exported as NaN nor as a's
    assert reference_quality(ws) == [
        'clv_model_reference_performance{metric="r2",model_version="b"} 0.3',
        'clv_model_reference_performance{metric="spearman",model_version="b"} 0.61',
    ]


def test_totals_count_rollbacks_and_manual_promotions_not_monitoring_runs(ws):
    registry = chain(ws, ["a", "b", "c"])
    rollback(ws)
    rollback(ws)
    promote(ws, "c")
    totals = RunStore(registry.engine).totals()
    assert (totals["rollbacks"], totals["manual_promotions"], totals["runs"], totals["success"]) == (
        2,
        1,
        0,
        0,
    )


def _rollback_in_a_process(_index: int, ws: Workspace) -> tuple[str, str] | str:
    try:
        change = rollback(ws)
    except RegistryError as exc:
        return str(exc)
    assert change.from_version is not None
    return change.from_version, change.to_version


def test_two_rollbacks_at_once_end_with_a_consistent_chain(ws):
    """Two rollbacks at once: both walk back one step each (c → b → a), or the second, planned from the
    champion the first took off, is refused and changes nothing — never both from c."""
    registry = chain(ws, ["a", "b", "c"])
    results = run_at_once(_rollback_in_a_process, 2, ws)
    errors = [value for status, value in results if status != "ok"]
    assert errors == [], errors[0] if errors else ""
    done = sorted((value for _, value in results if isinstance(value, tuple)), reverse=True)
    refused = [value for _, value in results if isinstance(value, str)]
    assert done in ([("c", "b"), ("b", "a")], [("c", "b")]), results
    assert all(
        message.startswith("model version c is no longer the champion (b is") for message in refused
    ), refused
    final = done[-1][1]
    assert registry.champion().version == final and published(ws) == final
    assert {v.version for v in registry.list_versions() if v.rolled_back_at} == {f for f, _ in done}
    runs = RunStore(registry.engine).list()
    assert sorted(
        (r.details.get("from"), r.details.get("to")) for r in runs if r.status == "success"
    ) == sorted(done)
    failed = [r for r in runs if r.status == "failed"]
    assert len(failed) == len(refused) and all("no longer the champion" in (r.error or "") for r in failed)
    assert champion_info(ws) == [f'clv_champion_info{{model_version="{final}"}} 1.0']


# The command line: thin commands over the same functions, exit codes and one-line errors.


@pytest.fixture
def cli_ws(cli_workdir, store_url, monkeypatch) -> Workspace:
    """The user's working folder (conftest) on ``store_url``, as the CLI's settings see it."""
    from clvdrift.settings import get_settings

    monkeypatch.setenv("CLVDRIFT_DATABASE_URL", store_url)
    ws = get_settings().workspace()
    assert ws.database_url == store_url
    return ws


def clv(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_rollback_and_promote(cli_ws, capsys):
    chain(cli_ws, ["a", "b", "c"])
    code, out, _ = clv(capsys, "models", "rollback")
    assert code == 0 and out.strip() == "rolled back: version b is the champion again (was c)"
    code, out, _ = clv(capsys, "models", "rollback", "--json")
    doc = json.loads(out)
    assert code == 0 and (doc["kind"], doc["from_version"], doc["to_version"]) == ("rollback", "b", "a")
    assert doc["metrics"]["ok"] is True and doc["run_id"].startswith("rollback_")
    code, _, err = clv(capsys, "models", "rollback")
    assert code == EXIT_STORE and len(err.strip().splitlines()) == 1
    assert err.startswith("error: nothing to roll back to: the 2 version(s) champion before a")
    code, _, err = clv(capsys, "models", "rollback", "--to", "nope")
    assert code == EXIT_STORE and err.strip() == "error: unknown model version 'nope'"
    code, out, _ = clv(capsys, "models", "rollback", "--to", "c")
    assert code == 0 and "version c is the champion again (was a)" in out
    code, out, _ = clv(capsys, "models", "promote", "a")
    assert code == 0 and out.strip() == "version a is the champion (was c)"
    code, out, _ = clv(capsys, "models", "promote", "a")
    assert code == 0 and out.strip() == "version a is the champion already; nothing changed"
    assert 'clv_champion_info{model_version="a"} 1.0' in champion_info(cli_ws)

    code, out, _ = clv(capsys, "runs", "list", "--json")
    doc = json.loads(out)
    assert [(r["kind"], r["decision"], r["status"]) for r in doc["runs"]] == [
        ("promote", "promote", "success"),
        ("rollback", "rollback", "success"),
        ("rollback", "rollback", "success"),
        ("rollback", "rollback", "success"),
    ]
    assert [(r["details"]["from"], r["details"]["to"]) for r in doc["runs"]] == [
        ("c", "a"),
        ("a", "c"),
        ("b", "a"),
        ("c", "b"),
    ]
    totals = doc["totals"]
    assert (totals["rollbacks"], totals["manual_promotions"], totals["runs"]) == (3, 1, 0)


def test_cli_promote_of_a_rejected_challenger_asks_for_force(cli_ws, capsys):
    chain(cli_ws, ["a"])
    register(cli_ws, "r", champion=False, gate={"promote": False, "reason": REJECTED})
    code, _, err = clv(capsys, "models", "promote", "r")
    assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1
    assert err.strip() == (
        f"error: model version r was rejected by the champion/challenger gate: {REJECTED}; "
        "promote it with --force to override the gate"
    )
    assert published(cli_ws) == "a"
    code, out, _ = clv(capsys, "models", "promote", "r", "--force", "--json")
    doc = json.loads(out)
    assert code == 0 and (doc["to_version"], doc["forced"], doc["gate_reason"]) == ("r", True, REJECTED)
    assert published(cli_ws) == "r"
    code, out, _ = clv(capsys, "runs", "list", "--json")
    run = json.loads(out)["runs"][0]
    assert (run["kind"], run["decision"], run["trigger"]) == ("promote", "promote", "cli")
    assert (run["details"]["from"], run["details"]["to"], run["details"]["forced"]) == ("a", "r", True)
    assert run["details"]["gate_reason"] == REJECTED
    # the promoted one was gated and won: no --force needed
    register(cli_ws, "w", champion=False, gate={"promote": True, "reason": "better; promoted"})
    code, out, _ = clv(capsys, "models", "promote", "w")
    assert code == 0 and out.strip() == "version w is the champion (was r)"
