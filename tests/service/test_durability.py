"""Ingestion survives kills of the real server: an acknowledged batch is in the history after a SIGKILL
right after the acknowledgement, and the next monitoring cycle checks it; a server killed before it could
answer leaves rows a retry with the same Idempotency-Key does not store twice, and the cycle checks them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from clvdrift.faults import ENV as STOP_AT
from clvdrift.pipeline.common import Workspace
from service.conftest import Served  # type: ignore[import-not-found]
from service.server import env_for, running_server  # type: ignore[import-not-found]


def _rows(prefix: str, n: int = 40) -> list[dict]:
    return [
        {
            "InvoiceNo": f"{prefix}{i // 3}",
            "StockCode": f"SKU{i % 50:03d}",
            "Description": "thing",
            "Quantity": 1 + i % 7,
            "InvoiceDate": f"2023-02-2{i % 6}T1{i % 10}:00:00",
            "UnitPrice": 12.5 + i,
            "CustomerID": str(90000 + i % 30),
            "Country": "Norway",
        }
        for i in range(n)
    ]


def _history(ws: Workspace):  # type: ignore[no-untyped-def]
    from clvdrift.data.history import TransactionHistory
    from clvdrift.store import connect

    return TransactionHistory(ws.history_dir, connect(ws.database_url)).read()


def _unchecked(ws: Workspace) -> list:
    from clvdrift.store import Ledger, connect

    return Ledger(connect(ws.database_url)).unchecked()


def _monitor(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "clvdrift", "monitor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def _process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def test_an_acknowledged_batch_survives_a_sigkill_and_the_next_cycle_checks_it(served: Served, tmp_path):
    ws = served.workspace
    env = env_for(ws, CLVDRIFT_BATCH_MODE="append")
    headers = {"X-API-Key": served.key, "Idempotency-Key": "export-2023-02-27"}
    rows = _rows("K")
    with running_server(env, tmp_path / "serve.log") as server:
        answer = httpx.post(f"{server.base}/ingest/batch", json={"rows": rows}, headers=headers, timeout=30)
        server.kill()  # right after the acknowledgement: nothing more may be needed to keep the rows
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows_added"] == len(rows)
    stored = _history(ws)
    assert (stored["InvoiceNo"].astype(str).str.startswith("K")).sum() == len(rows)
    [pending] = _unchecked(ws)
    assert pending.path == f"api/{answer.json()['batch_id']}"
    result = _monitor(env)
    files = {f["path"]: f for f in result["new_data"]["files"]}
    assert files[pending.path]["status"] == "recheck"
    assert "ingested through the API" in files[pending.path]["reason"]
    assert result["status"] == "success" and _unchecked(ws) == []
    with running_server(env, tmp_path / "serve.log") as server:  # the retry after the kill: answered again
        again = httpx.post(f"{server.base}/ingest/batch", json={"rows": rows}, headers=headers, timeout=30)
    assert again.json() == {**answer.json(), "replayed": True}
    assert (_history(ws)["InvoiceNo"].astype(str).str.startswith("K")).sum() == len(rows)


def test_a_server_killed_before_it_answered_loses_nothing_and_stores_nothing_twice(served: Served, tmp_path):
    ws = served.workspace
    env = env_for(ws, CLVDRIFT_BATCH_MODE="append")
    headers = {"X-API-Key": served.key, "Idempotency-Key": "retry-me"}
    rows = _rows("R")
    replies: list[object] = []
    with running_server({**env, STOP_AT: "ingest.history_added"}, tmp_path / "serve.log") as server:

        def send() -> None:
            try:
                replies.append(
                    httpx.post(
                        f"{server.base}/ingest/batch", json={"rows": rows}, headers=headers, timeout=60
                    )
                )
            except httpx.HTTPError as exc:
                replies.append(exc)

        client = threading.Thread(target=send)
        client.start()
        deadline = time.monotonic() + 30
        while _process_state(server.proc.pid) != "T":  # stopped itself after writing the history
            assert time.monotonic() < deadline, "the server never reached the fault point"
            time.sleep(0.05)
        server.kill()
        client.join(30)
    assert isinstance(replies[0], httpx.HTTPError)  # the client got no answer: it will retry
    assert (_history(ws)["InvoiceNo"].astype(str).str.startswith("R")).sum() == len(rows)
    with running_server(env, tmp_path / "serve.log") as server:
        retry = httpx.post(f"{server.base}/ingest/batch", json={"rows": rows}, headers=headers, timeout=30)
    assert retry.status_code == 200, retry.text
    body = retry.json()  # the rows the killed request stored are this request's: reported as added
    assert (body["accepted"], body["rows_added"], body["duplicates"]) == (len(rows), len(rows), 0)
    assert body["batch_id"] is not None
    assert (_history(ws)["InvoiceNo"].astype(str).str.startswith("R")).sum() == len(rows)  # stored once
    [pending] = _unchecked(ws)  # the retry recorded what the killed request could not
    assert pending.path == f"api/{body['batch_id']}"
    result = _monitor(env)
    assert result["status"] == "success" and _unchecked(ws) == []
    files = {f["path"]: f for f in result["new_data"]["files"]}
    assert files[pending.path]["status"] == "recheck"


pytestmark = pytest.mark.timeout(300)
