"""The dashboard (GET /dashboard): its sign-in (a cookie, never a key in a URL), its CSP, and what it
shows against the store, first in-process, then in a real headless Chromium on the real server
(`clvdrift serve`) filled by a real `clvdrift monitor` cycle and real API calls.

The browser test saves a screenshot; with CLVDRIFT_UPDATE_SCREENSHOT=1 it also replaces
docs/img/dashboard.png with it.
"""

from __future__ import annotations

import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from clvdrift.pipeline.common import Workspace
from clvdrift.service.deps import KEY_COOKIE
from service.conftest import Served  # type: ignore[import-not-found]
from service.server import env_for, running_server  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "img" / "dashboard.png"
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
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _rows_like_reference(ws: Workspace, scale: float = 1.0) -> list[dict[str, Any]]:
    """The champion's reference feature rows, the numerical ones times ``scale``."""
    from clvdrift.pipeline.serving import load_serving_champion

    features = load_serving_champion(ws).input_features
    frame = pd.read_csv(ws.reference_dir / "reference_data.csv")[features].copy()
    numeric = [c for c in features if c != "Country"]
    frame[numeric] = frame[numeric] * scale
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]


def _card(page: str, stat: str) -> str:
    """The text of the statistics card ``stat`` (tags dropped, entities decoded, spaces squeezed)."""
    match = re.search(rf'<div class="card[^"]*" data-stat="{stat}">(.*?)</div></div>', page, re.S)
    assert match, f"no card {stat}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def _card_value(page: str, stat: str) -> str:
    match = re.search(
        rf'<div class="card[^"]*" data-stat="{stat}">.*?<div class="value">(.*?)</div>', page, re.S
    )
    assert match, f"no card {stat}"
    return html.unescape(match.group(1))


def _nonce(csp: str) -> str:
    match = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", csp)
    assert match, csp
    return match.group(1)


def _store_facts(ws: Workspace) -> dict[str, Any]:
    """What the dashboard must show, read from the store directly."""
    from clvdrift.pipeline.champion import list_versions
    from clvdrift.store import connect
    from clvdrift.store.online import DriftEvents, IngestLog
    from clvdrift.store.runs import RunStore

    engine = connect(ws.database_url)
    try:
        champion = next(v for v in list_versions(ws.database_url) if v.is_champion)
        events = DriftEvents(engine).list(limit=10_000)
        return {
            "version": champion.version,
            "spearman": f"{champion.metrics['model']['spearman']:.3f}",
            "events": len(events),
            "newest_severity": events[0].severity if events else None,
            "runs": RunStore(engine).totals()["runs"],
            "rows_accepted": IngestLog(engine).stats()["rows_accepted"],
        }
    finally:
        engine.dispose()


def _assert_page_matches_store(page: str, facts: dict[str, Any]) -> None:
    assert _card_value(page, "champion") == facts["version"]
    assert _card_value(page, "spearman") == facts["spearman"]
    assert _card_value(page, "drift-events") == f"{facts['events']:,}"
    assert f"newest: {facts['newest_severity']}" in _card(page, "drift-events")
    first_event = re.search(r'<table data-table="events">.*?<tbody>(.*?)</tr>', page, re.S)
    assert first_event, "no drift event row"
    assert f'data-severity="{facts["newest_severity"]}"' in first_event.group(1)
    assert _card_value(page, "runs") == f"{facts['runs']:,}"
    assert _card_value(page, "rows-ingested") == f"{facts['rows_accepted']:,}"


# ----------------------------------------------------------------------------- in-process (TestClient)
def test_api_clients_get_401_and_browsers_the_sign_in_page(client, served: Served):
    del client.headers["X-API-Key"]
    for path in ("/dashboard", "/dashboard/fragment"):
        r = client.get(path)
        assert r.status_code == 401 and r.json()["error"]["type"] == "AuthError", path
    browser = client.get("/dashboard", headers={"Accept": BROWSER}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard/fragment", headers={"Accept": BROWSER}).status_code == 401
    form = client.get("/dashboard/login")
    assert form.status_code == 200 and 'name="key"' in form.text
    assert "script-src 'nonce-" in form.headers["content-security-policy"]


def test_a_key_in_the_url_is_not_accepted(client, served: Served):
    del client.headers["X-API-Key"]
    r = client.get(f"/dashboard?key={served.key}", headers={"Accept": BROWSER}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    for name in ("key", "api_key", KEY_COOKIE):
        assert client.get(f"/dashboard/fragment?{name}={served.key}").status_code == 401
    assert client.get(f"/dashboard/login?key={served.key}").status_code == 200  # just the form
    assert KEY_COOKIE not in client.cookies


def test_sign_in_sets_an_httponly_strict_cookie_and_redirects(client, served: Served):
    del client.headers["X-API-Key"]
    bad = client.post("/dashboard/login", data={"key": "clv_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "unknown or revoked" in bad.text and "set-cookie" not in bad.headers
    assert client.post("/dashboard/login", json={"key": served.key}).status_code == 401  # forms only
    r = client.post("/dashboard/login", data={"key": served.key}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{KEY_COOKIE}={served.key};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    page = client.get("/dashboard", headers={"Accept": BROWSER})  # the cookie alone signs in
    assert page.status_code == 200 and 'data-stat="champion"' in page.text
    assert client.get("/dashboard/fragment").status_code == 200
    out = client.post("/dashboard/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert KEY_COOKIE not in client.cookies
    assert client.get("/dashboard/fragment").status_code == 401


def test_a_revoked_key_in_the_cookie_sends_the_browser_back_to_sign_in(client, served: Served):
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    del client.headers["X-API-Key"]
    keys = ApiKeys(connect(served.workspace.database_url))
    key, text = keys.create("browser")
    client.post("/dashboard/login", data={"key": text}, follow_redirects=False)
    assert client.get("/dashboard", headers={"Accept": BROWSER}).status_code == 200
    keys.revoke(key.key_id)
    client.app.state.clvdrift.keys._cache.clear()  # revocation takes effect within KEY_CACHE_SECONDS
    r = client.get("/dashboard", headers={"Accept": BROWSER}, follow_redirects=False)
    assert r.status_code == 303 and KEY_COOKIE in r.headers.get("set-cookie", "")  # the cookie is cleared


def test_the_page_has_a_strict_csp_whose_nonce_allows_only_its_own_script(client):
    first, second = client.get("/dashboard"), client.get("/dashboard")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    csp = first.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    nonce = _nonce(csp)
    assert first.text.count("<script") == 1 and f'<script nonce="{nonce}">' in first.text
    assert _nonce(second.headers["content-security-policy"]) != nonce  # one per response
    assert first.headers["cache-control"] == "no-store" and first.headers["x-frame-options"] == "DENY"
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in first.text


def test_the_dashboard_shows_what_the_store_holds(client, served: Served):
    same = client.post("/drift", json={"rows": _rows_like_reference(served.workspace)}).json()
    shifted = client.post("/drift", json={"rows": _rows_like_reference(served.workspace, 5.0)}).json()
    assert shifted["severity"] == "critical"
    scored = [f for e in (same, shifted) for f in e["features"] if f["score"] is not None]
    ingested = client.post("/ingest/batch", json={"rows": [ROW, {**ROW, "InvoiceNo": "900002"}, {"x": 1}]})
    assert ingested.json()["accepted"] == 2
    page = client.get("/dashboard").text
    _assert_page_matches_store(page, _store_facts(served.workspace))
    assert "No replay yet" in page and "No run yet" in page
    assert len(re.findall(r'<g class="bar"', page)) == 1  # one ingestion request
    online = re.search(r'<svg class="chart" data-chart="drift-online".*?</svg>', page, re.S)
    assert online and online.group(0).count('class="point"') == len(scored)  # per event and feature
    fragment = client.get("/dashboard/fragment").text
    assert fragment.strip() in page and "<script" not in fragment


def test_the_latest_replay_chart_is_shown_when_there_is_one(client, served: Served):
    folder = Path(served.workspace.reports_dir) / "replay" / "20240101T000000Z"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    (folder / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    page = client.get("/dashboard").text
    src = re.search(r'<img class="replay" src="([^"]+)"', page)
    assert src and src.group(1).startswith("/replays/latest/chart.svg")
    chart = client.get(html.unescape(src.group(1)))
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"


def test_the_page_is_documented_and_the_sign_in_form_is_not(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/dashboard" in paths and "/dashboard/fragment" in paths
    assert "/dashboard/login" not in paths and "/dashboard/logout" not in paths


# ------------------------------------------------------------------------- real server, real Chromium
@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary, installed with apt-get when missing (root only)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and cannot be installed here (apt-get install chromium)")
    done = subprocess.run(
        ["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=600
    )
    found = shutil.which("chromium")
    assert done.returncode == 0 and found, f"apt-get install chromium failed:\n{done.stdout[-2000:]}"
    return found


def _env(ws: Workspace) -> dict[str, str]:
    return env_for(ws)


MONITOR_CYCLES = 2


def _monitor(ws: Workspace, env: dict[str, str]) -> None:
    """Real monitoring cycles, each over a new transactions file dropped into the current folder."""
    from helpers import synthetic_history  # type: ignore[import-not-found]

    current = Path(ws.current_dir)
    current.mkdir(parents=True, exist_ok=True)
    for cycle, start in enumerate(("2022-06-01", "2022-09-01")[:MONITOR_CYCLES]):
        target = current / f"batch_{cycle}.csv"
        synthetic_history(target, customers=200 + 20 * cycle, start=start, days=300, seed=3 + cycle)
        then = time.time() - 60  # delivered a while ago: no settle pause
        os.utime(target, (then, then))
        done = subprocess.run(
            [sys.executable, "-m", "clvdrift", "monitor", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture
def server(served: Served, tmp_path: Path) -> Iterator[str]:
    """`clvdrift serve` on a free port of 127.0.0.1 over the served workspace; its base URL."""
    env = _env(served.workspace)
    _monitor(served.workspace, env)
    with running_server(env, tmp_path / "serve.log") as running:
        yield running.base


class _SignInPage(http.server.BaseHTTPRequestHandler):
    """Serves one page that posts the key to the dashboard's sign-in form as soon as it loads, from
    another port of 127.0.0.1: the same site, so the SameSite=Strict cookie follows the redirect."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sign_in_url(server: str, served: Served) -> Iterator[str]:
    """A local page that signs a browser in to ``server`` (the key in a POST body, not in a URL)."""
    page = (
        "<!DOCTYPE html><html><body>"
        f'<form id="f" method="post" action="{server}/dashboard/login">'
        f'<input type="hidden" name="key" value="{html.escape(served.key)}"></form>'
        '<script>document.getElementById("f").submit();</script></body></html>'
    )
    handler = type("Handler", (_SignInPage,), {"page": page.encode()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/sign-in.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _chromium(binary: str, *args: str, timeout: float = 60) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_browser_signs_in_and_sees_what_the_store_holds(
    chromium: str, server: str, sign_in_url: str, served: Served, tmp_path: Path
):
    start = time.monotonic()
    api = httpx.Client(base_url=server, headers={"X-API-Key": served.key}, timeout=60)
    with api:
        for scale in (1.0, 1.2, 5.0):
            drift = api.post("/drift", json={"rows": _rows_like_reference(served.workspace, scale)})
            assert drift.status_code == 200, drift.text
        for n in range(3):
            rows = [{**ROW, "InvoiceNo": f"9001{n}{i}", "Quantity": i + 1} for i in range(4 + n)]
            assert api.post("/ingest/batch", json={"rows": [*rows, {"x": 1}]}).status_code == 200
        predicted = api.post("/predict", json={"customers": ["90001", "90002"]})
        assert predicted.status_code == 200, predicted.text
        challenger = next(v["version"] for v in api.get("/models").json()["versions"] if not v["is_champion"])
        promoted = api.post(f"/models/{challenger}/promote", json={"force": True})
        assert promoted.status_code == 200, promoted.text
        rolled = api.post("/models/rollback", json={})
        assert rolled.status_code == 200 and rolled.json()["from_version"] == challenger, rolled.text
        # the sign-in itself: a cookie, HttpOnly and SameSite=Strict, then to the dashboard
        login = httpx.post(f"{server}/dashboard/login", data={"key": served.key})
        assert login.status_code == 303 and login.headers["location"] == "/dashboard"
        assert "httponly" in login.headers["set-cookie"].lower()
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        no_key = httpx.get(f"{server}/dashboard", headers={"Accept": BROWSER})
        assert no_key.status_code == 303 and no_key.headers["location"] == "/dashboard/login"

    # one Chromium run: load the sign-in page, which posts the key, follows the 303 to the dashboard
    # with the cookie, and (virtual time) lets the refresh script fetch the fragment once
    dom = _chromium(chromium, "--virtual-time-budget=7000", "--dump-dom", sign_in_url)
    assert 'data-stat="champion"' in dom, dom[:2000]
    _assert_page_matches_store(dom, _store_facts(served.workspace))
    facts = _store_facts(served.workspace)
    assert facts["events"] == 3 and facts["newest_severity"] == "critical"
    assert facts["runs"] == MONITOR_CYCLES and facts["rows_accepted"] == 4 + 5 + 6
    history = re.findall(r'<tr class="row" data-event="([^"]+)" data-outcome="([^"]+)">', dom)
    assert history[:2] == [("rollback", "success"), ("promotion", "success")]
    assert ("retrained (gate)", "rejected") in history or ("retrained (gate)", "promoted") in history
    batch = re.search(r'<svg class="chart" data-chart="drift-batch".*?</svg>', dom, re.S)
    assert batch and len(set(re.findall(r'class="point" data-series="([^"]+)"', batch.group(0)))) >= 9
    assert batch.group(0).count('class="point"') == MONITOR_CYCLES * len(
        set(re.findall(r'class="point" data-series="([^"]+)"', batch.group(0)))
    )  # one point per checked column and monitoring run
    status = re.search(r'<span id="refresh-status" class="([^"]*)">([^<]*)</span>', dom)
    assert status and status.group(1) == "ok" and status.group(2).startswith("updated"), (
        "the refresh script did not run or its fetch failed (CSP, cookie)"
    )
    assert re.search(r'<a class="report" href="/reports/drift_[0-9a-f_]+">', dom)  # the monitor run's report

    shot = tmp_path / "dashboard.png"
    _chromium(chromium, "--hide-scrollbars", "--window-size=1400,1800", f"--screenshot={shot}", sign_in_url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    if os.environ.get("CLVDRIFT_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    assert time.monotonic() - start < 30
