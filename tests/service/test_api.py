"""Every endpoint of the service against a real workspace (store, champion files, history), bad input
included: each answer is checked against what the library computes for the same input."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import ServiceConfig
from clvdrift.pipeline.common import Workspace
from service.conftest import Served, client_for, seed_workspace  # type: ignore[import-not-found]

ROW = {
    "InvoiceNo": "900001",
    "StockCode": "SKU001",
    "Description": "thing",
    "Quantity": 3,
    "InvoiceDate": "2023-02-27T10:00:00",
    "UnitPrice": 20.5,
    "CustomerID": "90001",
    "Country": "Norway",
}


def _champion(ws: Workspace):  # type: ignore[no-untyped-def]
    from clvdrift.pipeline.serving import load_serving_champion

    return load_serving_champion(ws)


def _expected_by_customer(ws: Workspace) -> pd.DataFrame:
    """What `clvdrift predict` computes from the same history, with the same champion."""
    from clvdrift import pipeline
    from clvdrift.pipeline.champion import open_registry

    raw, source = pipeline.predict_input(ws)
    assert source.startswith("transaction history")
    frame = pd.read_csv(
        _predict_file(pipeline, raw, ws, open_registry(ws.database_url)), dtype={"CustomerID": str}
    )
    return frame.set_index("CustomerID")


def _predict_file(pipeline, raw, ws, registry):  # type: ignore[no-untyped-def]
    out = ws.reports_dir / "expected.csv"
    pipeline.predict(raw, registry=registry, models_dir=ws.models_dir, source="test", out=out)
    return out


# ------------------------------------------------------------------ operations
def test_health_and_ready(client, served: Served):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["champion"] == served.version


def test_without_a_champion_ready_and_predict_say_so(tmp_path):
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    ws = Workspace.under(tmp_path, raw_data=tmp_path / "none.csv")
    _, key = ApiKeys(connect(ws.database_url)).create("t")
    with client_for(ws) as c:
        ready = c.get("/ready")
        assert ready.status_code == 503
        assert "no champion is registered" in " ".join(ready.json()["problems"])
        r = c.post("/predict", json={"rows": [{"Recency": 1}]}, headers={"X-API-Key": key})
        assert r.status_code == 503
        assert r.json()["error"]["type"] == "NoChampionError"
        assert "clvdrift train" in r.json()["error"]["message"]


def test_request_id_is_echoed_or_made(client):
    given = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["x-request-id"]) == 16 and made.headers["x-request-id"] != "bad id with spaces"
    error = client.get("/models/nope")
    assert error.json()["error"]["request_id"] == error.headers["x-request-id"]


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/models/nope")
    client.get("/models/nope")
    text = client.get("/metrics").text
    assert 'clv_http_requests_total{method="GET",route="/models/{version}",status="404"} 2.0' in text
    assert "clv_http_request_duration_seconds_bucket" in text
    assert "clv_serving_champion_info" in text
    assert "clv_quarantined_files" in text  # the run-history series of the batch side


# ------------------------------------------------------------------ auth
def _protected_routes(client) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    open_routes = {"/health", "/ready", "/metrics"}
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if path not in open_routes
    ]


def test_every_route_but_health_ready_metrics_needs_a_key(client, served: Served):
    routes = _protected_routes(client)
    assert len(routes) >= 17
    del client.headers["X-API-Key"]
    for method, path in routes:
        url = path.replace("{version}", served.version).replace("{run_id}", "x").replace("{page}", "p.html")
        r = client.request(method, url, json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json()["error"]["type"] == "AuthError"
    assert client.get("/models", headers={"X-API-Key": "clv_000000000000_" + "a" * 43}).status_code == 401
    assert client.get("/models", headers={"Authorization": f"Bearer {served.key}"}).status_code == 200


def test_a_revoked_key_is_refused(client, served: Served):
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    keys = ApiKeys(connect(served.workspace.database_url))
    key, text = keys.create("short-lived")
    assert client.get("/models", headers={"X-API-Key": text}).status_code == 200
    keys.revoke(key.key_id)
    client.app.state.clvdrift.keys._cache.clear()  # revocation takes effect within KEY_CACHE_SECONDS
    assert client.get("/models", headers={"X-API-Key": text}).status_code == 401


def test_keys_are_stored_hashed(served: Served):
    import sqlite3

    db = sqlite3.connect(served.workspace.database_url.removeprefix("sqlite:///"))
    stored = " ".join(str(v) for row in db.execute("SELECT * FROM api_keys") for v in row)
    secret = served.key[len("clv_") + 13 :]  # clv_<12 hex>_<secret>; the secret may hold "_" itself
    assert len(secret) == 43 and secret not in stored
    import hashlib

    assert hashlib.sha256(secret.encode()).hexdigest() in stored


# ------------------------------------------------------------------ prediction
def test_predict_by_customer_matches_clvdrift_predict(client, served: Served):
    expected = _expected_by_customer(served.workspace)
    ids = list(expected.index[:3])
    r = client.post("/predict", json={"customers": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == served.version and body["family"] == "gbm"
    assert body["features_cutoff"] == expected["cutoff"].iloc[0]
    assert body["model_cutoff"] and body["horizon_days"] == 90
    got = {p["customer_id"]: p["predicted_revenue"] for p in body["predictions"]}
    assert got == pytest.approx(expected.loc[ids, "predicted_revenue"].to_dict(), rel=1e-9)


def test_predict_by_feature_row_matches_the_model(client, served: Served):
    champion = _champion(served.workspace)
    features = champion.input_features
    rows = [
        {f: ("Norway" if f == "Country" else float(i * 7 + k)) for k, f in enumerate(features)}
        for i in range(3)
    ]
    r = client.post("/predict", json={"rows": rows})
    assert r.status_code == 200, r.text
    want = champion.model.predict(pd.DataFrame(rows))
    got = [p["predicted_revenue"] for p in r.json()["predictions"]]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert r.json()["features_cutoff"] is None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"customers": ["no-such-customer"]}, 404, "no-such-customer"),
        ({"customers": []}, 422, "customers"),
        ({"customers": ["1"], "rows": [{"Recency": 1}]}, 422, "either customers"),
        ({}, 422, "either customers"),
        ({"rows": [{"Recency": 1.0}]}, 422, "has no"),
        ({"rows": [{"Recency": "soon"}]}, 422, "rows"),
        ({"rows": [{"Recency": True}]}, 422, "got `bool`"),
        ({"customers": [str(i) for i in range(101)]}, 422, "customers"),
        ({"customers": "90001"}, 422, "customers"),
    ],
)
def test_predict_refuses_bad_input_with_a_clear_message(client, body, status, words):
    r = client.post("/predict", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_a_feature_row_missing_or_mistyped_in_the_middle_of_a_batch_is_named(client, served: Served):
    features = _champion(served.workspace).input_features
    rows = [{f: ("Japan" if f == "Country" else 1.0) for f in features} for _ in range(5)]
    for column in (features[0], "Country"):
        broken = [dict(r) for r in rows]
        del broken[3][column]
        r = client.post("/predict/batch", json={"rows": broken})
        assert r.status_code == 422 and f"row 3 has no {column!r}" in r.json()["error"]["message"], r.text
    typed = [dict(r) for r in rows]
    typed[2]["Country"] = 44
    r = client.post("/predict/batch", json={"rows": typed})
    assert r.status_code == 422 and "$.rows[2].Country" in r.json()["error"]["message"], r.text
    body = json.dumps({"rows": rows}).replace("1.0", "1e999", 1)  # valid JSON, not a finite float
    r = client.post("/drift", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "out of range" in r.json()["error"]["message"], r.text


def test_predict_batch_takes_10000_rows(client, served: Served):
    features = _champion(served.workspace).input_features
    rows = [{f: ("Japan" if f == "Country" else float(i % 97)) for f in features} for i in range(10_000)]
    r = client.post("/predict/batch", json={"rows": rows})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 10_000
    assert client.post("/predict/batch", json={"rows": rows + rows[:1]}).status_code == 422


def test_predictions_are_logged_in_batches(served: Served):
    from clvdrift.store import connect
    from clvdrift.store.online import PredictionLog

    config = ServiceConfig(prediction_log_rows=5, prediction_log_seconds=3600)
    with client_for(served.workspace, config) as c:
        c.headers["X-API-Key"] = served.key
        expected = _expected_by_customer(served.workspace)
        for cid in expected.index[:5]:
            assert c.post("/predict", json={"customers": [cid]}).status_code == 200
        log = PredictionLog(connect(served.workspace.database_url))
        deadline = time.monotonic() + 5
        while log.count()[1] < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.count() == (1, 5)  # 5 rows buffered: written without waiting for the server to stop
        for cid in expected.index[5:7]:
            assert c.post("/predict", json={"customers": [cid]}).status_code == 200
    # the rest is written when the server stops
    batches, rows = PredictionLog(connect(served.workspace.database_url)).count()
    assert rows == 7 and batches >= 2
    parts = sorted(served.workspace.predictions_dir.glob("*.parquet"))
    logged = pd.concat([pd.read_parquet(p) for p in parts])
    assert len(logged) == 7 and "prediction" in logged and "Recency" in logged


def _challenger(ws: Workspace) -> str:
    """A second version, registered as a challenger (the champion stays)."""
    from clvdrift import pipeline
    from clvdrift.config import GbmParams, TrainConfig
    from clvdrift.pipeline.champion import open_registry

    result = pipeline.train(
        ws.raw_data,
        registry=open_registry(ws.database_url),
        models_dir=ws.models_dir,
        reference_dir=ws.reference_dir,
        config=TrainConfig(gbm=GbmParams(max_iter=20)),
        cutoff="2022-10-31",
    )
    assert not result.champion
    return result.version


def test_reload_after_a_promotion_by_another_process(client, served: Served):
    """A version promoted by `clvdrift models promote` (another process) is served within a few poll
    intervals, without a request to the API."""
    import os
    import subprocess
    import sys

    second = _challenger(served.workspace)
    assert client.get("/ready").json()["champion"] == served.version
    ws = served.workspace
    env = {
        **os.environ,
        "CLVDRIFT_DATABASE_URL": ws.database_url,
        "CLVDRIFT_MODELS_DIR": str(ws.models_dir),
        "CLVDRIFT_REFERENCE_DIR": str(ws.reference_dir),
        "CLVDRIFT_REPORTS_DIR": str(ws.reports_dir),
        "CLVDRIFT_METRICS_TEXTFILE": str(ws.metrics_textfile),
    }
    subprocess.run(
        [sys.executable, "-m", "clvdrift", "models", "promote", second, "--force"], check=True, env=env
    )
    deadline = time.monotonic() + 10
    while client.get("/ready").json()["champion"] != second and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/ready").json()["champion"] == second
    r = client.post("/reload_model")
    assert r.status_code == 200 and r.json()["champion"]["version"] == second


# ------------------------------------------------------------------ ingestion
def test_ingest_counts_accepted_and_rejected_rows_with_reasons(client, served: Served):
    from clvdrift.data.history import TransactionHistory
    from clvdrift.store import Ledger, connect

    bad_date = {**ROW, "InvoiceNo": "900002", "InvoiceDate": "next tuesday"}
    bad_qty = {**ROW, "InvoiceNo": "900003", "Quantity": 10**10}
    missing = {k: v for k, v in ROW.items() if k != "Country"}
    r = client.post(
        "/ingest/batch", json={"rows": [ROW, bad_date, {**ROW, "InvoiceNo": "900004"}, bad_qty, missing, 7]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"], body["rows_added"]) == (2, 4, 2)
    reasons = {x["index"]: x["reason"] for x in body["rejects"]}
    assert set(reasons) == {1, 3, 4, 5}
    assert "InvoiceDate" in reasons[1] and "Quantity" in reasons[3] and "Country" in reasons[4]
    assert "expected an object" in reasons[5]
    engine = connect(served.workspace.database_url)
    history = TransactionHistory(served.workspace.history_dir, engine).read()
    assert {"900001", "900004"} <= set(history["InvoiceNo"].astype(str))
    unchecked = Ledger(engine).unchecked()
    assert [u.path for u in unchecked] == [f"api/{body['batch_id']}"]  # the next cycle checks it
    stats = client.get("/stats").json()
    assert stats["ingestion"]["rows_rejected"] == 4 and stats["ingestion"]["rows_added"] == 2
    assert stats["history"]["batches"] == 2
    assert stats["ingestion"]["rejects_by_reason"]
    assert stats["history"]["customers"] == history["CustomerID"].nunique()


def test_a_retry_with_the_same_idempotency_key_stores_nothing_twice(client, served: Served):
    headers = {"Idempotency-Key": "order-export-17"}
    first = client.post("/ingest/batch", json={"rows": [ROW]}, headers=headers).json()
    again = client.post("/ingest/batch", json={"rows": [ROW]}, headers=headers).json()
    assert again == {**first, "replayed": True}
    other = client.post("/ingest/batch", json={"rows": [{**ROW, "Quantity": 4}]}, headers=headers)
    assert other.status_code == 409 and "order-export-17" in other.json()["error"]["message"]
    # without a key the same rows are duplicates of the history: nothing is added twice
    plain = client.post("/ingest/batch", json={"rows": [ROW]}).json()
    assert plain["rows_added"] == 0 and plain["duplicates"] == 1
    assert client.get("/stats").json()["ingestion"]["rows_added"] == 1


def test_ingest_stream_takes_ndjson_and_rejects_bad_lines(client):
    lines = [json.dumps(ROW), "", "{not json", json.dumps({**ROW, "InvoiceNo": "900010"})]
    r = client.post(
        "/ingest/stream", content="\n".join(lines).encode(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert "line 3 is not valid JSON" in body["rejects"][0]["reason"]


def test_an_oversized_body_is_refused_before_it_is_read(served: Served):
    with client_for(served.workspace, ServiceConfig(max_body_bytes=2048)) as c:
        c.headers["X-API-Key"] = served.key
        big = {"rows": [ROW] * 100}
        r = c.post("/ingest/batch", json=big)
        assert r.status_code == 413 and "2048 bytes" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: counted while read
            for _ in range(100):
                yield json.dumps(ROW).encode()

        r = c.post("/ingest/stream", content=chunks(), headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 413


def test_too_many_rows_in_one_request(served: Served):
    with client_for(served.workspace, ServiceConfig(max_batch_rows=3)) as c:
        c.headers["X-API-Key"] = served.key
        r = c.post("/ingest/batch", json={"rows": [ROW] * 4})
        assert r.status_code == 422 and "at most 3" in r.json()["error"]["message"]


# ------------------------------------------------------------------ online drift
def _rows_like_reference(ws: Workspace, scale: float = 1.0) -> list[dict]:
    reference = pd.read_csv(ws.reference_dir / "reference_data.csv")
    features = _champion(ws).input_features
    frame = reference[features].copy()
    numeric = [c for c in features if c != "Country"]
    frame[numeric] = frame[numeric] * scale
    rows = frame.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows]


def test_drift_of_reference_like_rows_is_ok_and_scaled_rows_are_critical(client, served: Served):
    same = client.post("/drift", json={"rows": _rows_like_reference(served.workspace)})
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["severity"] == "ok" and body["model_version"] == served.version
    tests = {f["feature"]: f["test"] for f in body["features"]}
    assert tests["Monetary"] == "psi" and tests["Country"] == "chisquare"
    shifted = client.post("/drift", json={"rows": _rows_like_reference(served.workspace, scale=5.0)}).json()
    assert shifted["severity"] == "critical"
    monetary = next(f for f in shifted["features"] if f["feature"] == "Monetary")
    assert monetary["score"] >= 0.5 and monetary["severity"] == "critical"
    history = client.get("/drift/history").json()["events"]
    assert [e["event_id"] for e in history] == [shifted["event_id"], body["event_id"]]
    assert history[0]["severity"] == "critical"
    text = client.get("/metrics").text
    assert f'clv_online_drift_severity{{model_version="{served.version}"}} 2.0' in text


def test_drift_takes_any_engine_test_by_parameter(client, served: Served):
    rows = _rows_like_reference(served.workspace)
    r = client.post(
        "/drift", json={"rows": rows, "numerical_test": "ks", "categorical_test": "jensenshannon"}
    )
    assert r.status_code == 200, r.text
    tests = {f["feature"]: f["test"] for f in r.json()["features"]}
    assert tests.pop("Country") == "jensenshannon" and set(tests.values()) == {"ks"}
    assert client.post("/drift", json={"rows": rows, "numerical_test": "chisquare"}).status_code == 422
    assert client.post("/drift", json={"rows": [{"Nothing": 1}]}).status_code == 422


# ------------------------------------------------------------------ registry and runs
def test_models_and_one_model(client, served: Served):
    versions = client.get("/models").json()["versions"]
    assert [v["version"] for v in versions] == [served.version] and versions[0]["is_champion"]
    one = client.get(f"/models/{served.version}").json()
    assert one["family"] == "gbm" and one["artifacts"]
    assert client.get("/models/unknown").status_code == 404


def test_promote_and_rollback_through_the_api_are_recorded_as_runs(client, served: Served):
    second = _challenger(served.workspace)
    promoted = client.post(f"/models/{second}/promote", json={"force": True})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["to_version"] == second
    assert client.get("/ready").json()["champion"] == second  # reloaded at once, not at the next poll
    rolled = client.post("/models/rollback", json={})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["to_version"] == served.version
    assert client.get("/ready").json()["champion"] == served.version
    runs = client.get("/runs").json()["runs"]
    assert [(r["kind"], r["trigger"]) for r in runs[:2]] == [("rollback", "api"), ("promote", "api")]
    again = client.post(f"/models/{served.version}/promote")
    assert again.status_code == 200 and again.json()["changed"] is False
    assert client.post("/models/nope/promote").status_code == 404
    nothing = client.post("/models/rollback", json={"to": served.version})
    assert nothing.status_code == 409


def test_reports_and_latest_replay_when_there_are_none(client):
    assert client.get("/reports/drift_nope").status_code == 404
    assert client.get("/reports/../../etc").status_code == 404
    r = client.get("/replays/latest")
    assert r.status_code == 404 and "clvdrift replay" in r.json()["error"]["message"]


def test_a_report_written_by_a_check_is_served(client, served: Served):
    from clvdrift import pipeline
    from clvdrift.data import load_transactions
    from clvdrift.pipeline.champion import open_registry

    result = pipeline.detect_transactions(
        load_transactions(served.workspace.raw_data),
        registry=open_registry(served.workspace.database_url),
        models_dir=served.workspace.models_dir,
        reports_dir=served.workspace.reports_dir,
        source="test",
        render_html=False,
    )
    doc = client.get(f"/reports/{result.run_id}").json()
    assert doc["run_id"] == result.run_id and doc["decision"] == result.decision.to_dict()
    assert doc["reports"]["json"] == "drift_report.json"  # no path of the server's disk


# ------------------------------------------------------------------ errors
def test_an_unexpected_error_leaks_no_path_url_or_traceback(client, monkeypatch):
    import io
    import logging

    from clvdrift.observability.logging import JsonFormatter
    from clvdrift.service import deps

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("clvdrift").addHandler(handler)
    monkeypatch.setattr(logging.getLogger("clvdrift"), "level", logging.INFO)

    def boom(self, champion):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot open /srv/secret/models at postgresql://admin:hunter2@db:5432/x")

    monkeypatch.setattr(deps.CustomerCache, "get", boom)
    r = client.post("/predict", json={"customers": ["90001"]})
    assert r.status_code == 500
    text = r.text
    assert "secret" not in text and "hunter2" not in text and "Traceback" not in text
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    logging.getLogger("clvdrift").removeHandler(handler)
    [line] = [json.loads(x) for x in stream.getvalue().splitlines() if "unexpected error" in x]
    assert line["request_id"] == r.headers["x-request-id"] and line["level"] == "error"
    assert "hunter2" not in json.dumps(line)  # the log has the details, with the password masked


def test_seed_workspace_helper_builds_a_servable_workspace(tmp_path):
    ws, version = seed_workspace(tmp_path, customers=60)
    assert _champion(ws).version == version


# ------------------------------------------------------------------ findings of an adversarial review
def test_concurrent_requests_with_one_key_and_other_rows_store_one_of_them(served: Served):
    """Six threads, one Idempotency-Key, six different row sets: exactly one is stored and answered 200,
    the others get 409 and store nothing (the key is checked and the rows added as one step)."""
    from concurrent.futures import ThreadPoolExecutor

    from clvdrift.errors import ConflictError
    from clvdrift.pipeline.ingest import ingest_records

    def send(i: int) -> str:
        rows = [{**ROW, "InvoiceNo": f"C{i}-{j}", "Quantity": j + 1} for j in range(20)]
        try:
            ingest_records(served.workspace, rows, idempotency_key="one-key")
        except ConflictError:
            return "409"
        return "200"

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert sorted(answers) == ["200"] + ["409"] * 5
    from clvdrift.data.history import TransactionHistory
    from clvdrift.store import connect

    history = TransactionHistory(served.workspace.history_dir, connect(served.workspace.database_url)).read()
    stored = history["InvoiceNo"].astype(str)
    assert stored.str.startswith("C").sum() == 20


def test_server_errors_say_their_kind_not_their_paths_or_urls(client, monkeypatch):
    from clvdrift.errors import HistoryIntegrityError, RegistryError
    from clvdrift.service import deps

    for error, status in (
        (RegistryError("cannot open store postgresql+psycopg://admin:***@db.internal:5432/prod"), 503),
        (HistoryIntegrityError("part /srv/clv/history/part-1.parquet of batch x is missing"), 500),
    ):

        def boom(self, champion, error=error):  # type: ignore[no-untyped-def]
            raise error

        monkeypatch.setattr(deps.CustomerCache, "get", boom)
        r = client.post("/predict", json={"customers": ["90001"]})
        assert r.status_code == status
        message = r.json()["error"]["message"]
        assert "db.internal" not in message and "/srv" not in message and "admin" not in message
        assert r.json()["error"]["request_id"] in message


def test_a_chunked_body_over_the_limit_is_413_on_every_route(served: Served):
    with client_for(served.workspace, ServiceConfig(max_body_bytes=2048)) as c:
        c.headers["X-API-Key"] = served.key

        def chunks():  # no Content-Length
            yield b'{"rows": ['
            for i in range(60):
                yield (json.dumps(ROW) + ("," if i < 59 else "")).encode()
            yield b"]}"

        for path in ("/ingest/batch", "/predict", "/retrain", "/predict/batch", "/drift"):
            r = c.post(path, content=chunks(), headers={"Content-Type": "application/json"})
            assert r.status_code == 413, (path, r.status_code, r.text[:200])


def test_ready_warns_when_the_registrys_champion_cannot_be_loaded(served: Served):
    from clvdrift.pipeline.champion import promote

    second = _challenger(served.workspace)
    with client_for(served.workspace, ServiceConfig(champion_poll_seconds=3600)) as client:
        client.headers["X-API-Key"] = served.key
        promote(served.workspace, second, force=True)  # by another process; then its file is damaged
        model_file = next(p for p in served.workspace.models_dir.glob(f"*{second}*.joblib"))
        model_file.write_bytes(b"not a model")
        reload = client.post("/reload_model").json()
        assert reload["reloaded"] is False and f"champion {second} cannot be loaded" in reload["problem"]
        ready = client.get("/ready").json()
        assert ready["champion"] == served.version  # still serving the last good one, and saying so
        assert f"champion {second} cannot be loaded" in ready["warnings"][0]
        assert str(served.workspace.models_dir) not in ready["warnings"][0]


def test_a_feature_row_that_cannot_be_logged_is_refused_and_the_log_goes_on(client, served: Served):
    features = _champion(served.workspace).input_features
    row = {f: ("Norway" if f == "Country" else 1.0) for f in features}
    bad = client.post(
        "/predict",
        content=json.dumps({"rows": [{**row, "Country": "\ud800"}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 422 and "request body" in bad.json()["error"]["message"]
    control = client.post("/predict", json={"rows": [{**row, "Country": "No\x00rway"}]})
    assert control.status_code == 422 and "printable" in control.json()["error"]["message"]
    buffer = client.app.state.clvdrift.predictions
    buffer.add("v-broken", {"Country": ["x"], "Recency": [1.0]}, [1.0, 2.0])  # cannot be framed
    assert client.post("/predict", json={"rows": [row]}).status_code == 200
    buffer.flush()  # the broken entry is logged as an error; the good one is written
    from clvdrift.store import connect
    from clvdrift.store.online import PredictionLog

    assert PredictionLog(connect(served.workspace.database_url)).count()[1] == 1


def test_rejects_are_counted_by_kind_without_line_numbers(client):
    lines = ["{bad 1", "{bad 2", "{bad 3", json.dumps(ROW)]
    r = client.post(
        "/ingest/stream", content="\n".join(lines).encode(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.json()["rejected"] == 3 and len(r.json()["rejects"]) == 3
    kinds = client.get("/stats").json()["ingestion"]["rejects_by_reason"]
    assert kinds == {"row: line N is not valid JSON": 3}


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/predict", '{"rows":[{"Recency":1.0,"ignored":%s}]}'),
        ("/predict/batch", '{"rows":[{"Recency":1.0,"ignored":%s}]}'),
        ("/drift", '{"rows":[{"Recency":1.0,"ignored":%s}]}'),
        ("/ingest/batch", '{"rows":[{"InvoiceNo":"1","ignored":%s}]}'),
        ("/ingest/stream", '{"InvoiceNo":"1","ignored":%s}\n'),
    ],
)
def test_a_deeply_nested_body_is_refused_not_a_500(client, path, template):
    """Found by an adversarial check: msgspec (and the json module) raise RecursionError on a value
    nested 1,000+ deep, even under a key that is ignored, which was answered 500 with a traceback in the
    log."""
    body = template % ("[" * 5000 + "]" * 5000)
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code == 200:  # NDJSON: the line is a rejected row, with its reason
        assert r.json()["rejected"] == 1 and "nested too deeply" in str(r.json()["rejects"])
    else:
        assert r.status_code in (400, 422) and r.json()["error"]["message"], r.text
