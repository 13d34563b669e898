"""The invariants every fault-injection case ends with (after its recovery cycle): one function,
:func:`assert_invariants`, so every case checks the same things.

- exactly one champion, whose artifacts load (checksums) and whose files are the published ones;
- the cycle lock and the training lock are free;
- no run left ``running``;
- every accepted file's rows are in the history exactly once (a multiset; snapshot: the newest accepted
  snapshot; append: the accepted files concatenated, rows already present left out) and every part
  is sound;
- every file that was in the current folder is checked by a finished run, quarantined with a reason,
  or listed as ignored/waiting/unreadable by the latest run;
- the metrics textfile's counters equal a recount of the runs and ledger tables (SQL);
- no traceback in any output, and only documented exit codes (never 4).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import text

from faults.harness import DOCUMENTED_EXITS, FaultWorkspace

FINISHED_CHECK = ("success", "partial")
FINAL = ("success", "partial", "rejected", "skipped", "failed")


def assert_invariants(ws: FaultWorkspace) -> None:
    """Every invariant of the module docstring, on ``ws`` as it is now."""
    _outputs(ws)
    _champion(ws)
    _locks_free(ws)
    _no_run_running(ws)
    _history(ws)
    _every_file_accounted_for(ws)
    _counters(ws)


# ---- outputs -----------------------------------------------------------------------------------
def _outputs(ws: FaultWorkspace) -> None:
    for r in ws.results:
        assert "Traceback" not in r.stdout + r.stderr, r.describe()
        assert r.code != 4, f"exit 4 (a bug): {r.describe()}"
        assert r.code in DOCUMENTED_EXITS or r.code == -9, f"undocumented exit code: {r.describe()}"


# ---- champion ----------------------------------------------------------------------------------
def _champion(ws: FaultWorkspace) -> None:
    from clvdrift.model.artifacts import read_metadata, verify_artifacts
    from clvdrift.pipeline.common import load_champion

    champions = [v.version for v in ws.versions() if v.is_champion]
    assert len(champions) == 1, f"champions in the registry: {champions}"
    from clvdrift.model.registry import ModelRegistry

    champion, model = load_champion(ModelRegistry(ws.engine), ws.models_dir)
    assert model is not None
    verify_artifacts(ws.models_dir, champion.artifacts)
    published = read_metadata(ws.models_dir)["version"]
    assert published == champion.version, (
        f"models/metadata_latest.json names {published}, the registry's champion is {champion.version}"
    )


# ---- locks -------------------------------------------------------------------------------------
def _locks_free(ws: FaultWorkspace) -> None:
    from clvdrift.errors import LockBusyError
    from clvdrift.store.locks import training_lock

    for name in ("monitoring-cycle", "training"):
        try:
            with training_lock(ws.engine, name=name, wait_seconds=0):
                pass
        except LockBusyError as exc:
            raise AssertionError(f"the {name} lock is still held: {exc}") from None


# ---- runs --------------------------------------------------------------------------------------
def _no_run_running(ws: FaultWorkspace) -> None:
    running = [(r.run_id, r.kind) for r in ws.runs() if r.status == "running"]
    assert not running, f"runs left running: {running}"
    for r in ws.runs():
        assert r.status in FINAL, (r.run_id, r.status)


# ---- history -----------------------------------------------------------------------------------
def rows(frame: pd.DataFrame) -> Counter[tuple[Any, ...]]:
    """The rows of a transactions frame as a multiset of comparable tuples (canonical columns; a missing
    value of any kind is None)."""
    from clvdrift.data import schema

    columns = []
    for name in schema.CANONICAL_COLUMNS:
        col = frame[name]
        missing = col.isna().to_numpy()
        values = col.astype(object).tolist()
        columns.append([None if m else _norm(v) for v, m in zip(values, missing, strict=True)])
    return Counter(zip(*columns, strict=True))


def _norm(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if hasattr(value, "item"):
        return _norm(value.item())
    return str(value) if not isinstance(value, (int, float)) else float(value)


def file_rows(path: Path) -> Counter[tuple[Any, ...]]:
    from clvdrift.data import load_transactions

    return rows(load_transactions(path))


def expected_history(ws: FaultWorkspace) -> Counter[tuple[Any, ...]] | None:
    """What the history must hold, from the files the ledger accepted (in the order they were dropped);
    None when no file was accepted (then there must be no batch)."""
    ledger = ws.ledger()
    accepted = []
    for d in ws.dropped:
        if d.sha256 is None or d.gone:
            continue
        entry = ledger.get(d.sha256)
        if entry is not None and entry.status == "processed" and d.sha256 not in [a.sha256 for a in accepted]:
            accepted.append(d)
    if not accepted:
        return None
    if ws.mode == "snapshot":
        return file_rows(accepted[-1].copy)
    # append: the order the history took them in (its batches); a file that added no batch adds nothing
    order = {b.sha256: i for i, b in enumerate(ws.history().batches())}
    accepted.sort(key=lambda d: order.get(d.sha256, len(order)))
    history: Counter[tuple[Any, ...]] = Counter()
    for d in accepted:
        new = {row: n for row, n in file_rows(d.copy).items() if row not in history}
        history.update(new)
    return history


def _history(ws: FaultWorkspace) -> None:
    history = ws.history()
    problems = history.verify()
    assert not problems, [p.message() for p in problems]
    batches = history.batches()
    per_file = Counter(b.sha256 for b in batches)
    twice = {sha: n for sha, n in per_file.items() if n > 1}
    assert not twice, f"files taken into the history more than once: {twice}"
    processed = {e.sha256 for e in ws.ledger().list("processed")}
    unrecorded = [b.batch_id for b in batches if b.sha256 not in processed]
    assert not unrecorded, f"history batches whose file the ledger does not hold as processed: {unrecorded}"
    expected = expected_history(ws)
    if expected is None:
        assert not batches, f"no file was accepted, yet the history has {len(batches)} batch(es)"
        return
    actual = rows(history.read())
    if actual != expected:
        extra, missing = actual - expected, expected - actual
        raise AssertionError(
            f"history ({sum(actual.values())} rows) != accepted files ({sum(expected.values())} rows): "
            f"{sum(extra.values())} extra, e.g. {list(extra)[:2]}; {sum(missing.values())} missing, "
            f"e.g. {list(missing)[:2]}"
        )


# ---- files -------------------------------------------------------------------------------------
def display(name: bytes) -> str:
    from clvdrift.store.ledger import display_path

    return display_path(os.fsdecode(name))


def listed(run: Any) -> dict[str, list[dict[str, Any]]]:
    """A run's ``details.files`` by the file's printable name (its last path component)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in (run.details or {}).get("files") or []:
        out.setdefault(f["path"].rsplit("/", 1)[-1], []).append(f)
    return out


def _every_file_accounted_for(ws: FaultWorkspace) -> None:
    from clvdrift.store.runs import RunStore

    ledger = ws.ledger()
    store = RunStore(ws.engine)
    latest = store.latest_finished()
    files = listed(latest) if latest is not None else {}
    for d in ws.dropped:
        if d.gone:
            continue
        shown = display(d.name)
        entry = ledger.get(d.sha256) if d.sha256 else None
        if entry is not None and entry.status == "processed":
            assert entry.checked_by, f"{shown}: taken in, never checked by a finished run"
            if entry.reason != "no new row":
                status = store.get(entry.checked_by).status
                assert status in FINISHED_CHECK, f"{shown}: checked by {entry.checked_by}, which is {status}"
            continue
        if entry is not None:  # quarantined
            assert entry.reason, f"{shown}: quarantined without a reason"
            moved = ws.quarantine_dir.is_dir() and any(
                p.name == f"{d.sha256[:12]}-{os.fsdecode(d.name).strip()}"
                for p in ws.quarantine_dir.iterdir()
            )
            in_place = (ws.current_dir / os.fsdecode(d.name)).exists()
            assert moved or in_place, f"{shown}: quarantined, but neither moved nor left in place"
            if in_place:
                said = " ".join([entry.reason, *(f.get("reason") or "" for f in files.get(shown, []))])
                assert "cannot move" in said, f"{shown}: quarantined, left in place without saying why"
            continue
        outcomes = [f["status"] for f in files.get(shown, [])]
        assert set(outcomes) & {"ignored", "waiting", "unreadable"}, (
            f"{shown}: not in the ledger, and the latest run lists it as {outcomes or 'nothing'} "
            f"(its files: {sorted(files)})"
        )


# ---- counters ----------------------------------------------------------------------------------
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def read_textfile(path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"{path}: unparsable line {line!r}"
        labels = dict(_LABEL.findall(m["labels"] or ""))
        samples.setdefault(m["name"], []).append((labels, float(m["value"])))
    return samples


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    return sum(v for labels, v in samples.get(name, []) if all(labels.get(k) == x for k, x in match.items()))


def recount(ws: FaultWorkspace) -> dict[str, int]:
    """The counters recounted from the runs and processed_files tables with SQL."""
    from clvdrift.store.tables import RunRow

    out: dict[str, int] = {}
    with ws.engine.connect() as conn:
        for status in FINAL:
            out[f"runs_{status}"] = conn.execute(
                text("SELECT count(*) FROM runs WHERE kind = 'monitor' AND status = :s"), {"s": status}
            ).scalar_one()
        for kind in ("data", "model"):
            out[f"{kind}_drift"] = conn.execute(
                text(f"SELECT count(*) FROM runs WHERE kind = 'monitor' AND {kind}_drift = :t"), {"t": True}
            ).scalar_one()
        out["retrains"] = conn.execute(
            text("SELECT count(*) FROM runs WHERE kind = 'monitor' AND decision = 'retrain'")
        ).scalar_one()
        out["quarantined"] = conn.execute(
            text("SELECT count(*) FROM processed_files WHERE status = 'quarantined'")
        ).scalar_one()
        from sqlalchemy import select

        challengers = conn.execute(
            select(RunRow.challenger).where(RunRow.kind == "monitor", RunRow.challenger.is_not(None))
        ).scalars()
        out["promotions"] = sum(
            1 for c in challengers if isinstance(c, dict) and c.get("outcome") == "promoted"
        )
    return out


def _counters(ws: FaultWorkspace) -> None:
    assert ws.metrics_textfile.is_file(), f"no metrics textfile at {ws.metrics_textfile}"
    samples = read_textfile(ws.metrics_textfile)
    want = recount(ws)
    got = {f"runs_{s}": _total(samples, "clv_monitoring_runs_total", status=s) for s in FINAL}
    got["data_drift"] = _total(samples, "clv_drift_detected_total", drift_type="data")
    got["model_drift"] = _total(samples, "clv_drift_detected_total", drift_type="model")
    got["retrains"] = _total(samples, "clv_retrains_total")
    got["promotions"] = _total(samples, "clv_promotions_total")
    got["quarantined"] = _total(samples, "clv_quarantined_files_total")
    assert {k: int(v) for k, v in got.items()} == want, (
        f"metrics textfile {ws.metrics_textfile} vs recount from the store:\n{got}\n{want}"
    )
