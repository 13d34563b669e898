"""The live dashboard (``GET /dashboard``): the champion and its metrics against the persistence
baseline, model quality and drift score per feature over time, the online drift events, the training,
promotion and rollback history with the gate's verdicts, the latest runs and their reports, the
ingestion rate and rejects, the quarantined files and the latest replay's chart.

The page is HTML rendered by :mod:`clvdrift.render.dashboard` from the store; its inline script fetches
``GET /dashboard/fragment`` every few seconds and swaps the content in. Both need the API key like every
route: a browser signs in once at ``/dashboard/login`` (a form; the key is checked, then kept in the
HttpOnly, SameSite=Strict cookie :data:`clvdrift.service.deps.KEY_COOKIE`, never in a URL). A browser's
``GET /dashboard`` without a valid key is redirected (303) to the sign-in page; any other client gets the
JSON 401 of the API. Every page carries a strict Content-Security-Policy whose nonce allows only its own
inline script and style.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from clvdrift.errors import AuthError, DataError, NotFoundError
from clvdrift.render.dashboard import dashboard_fragment, dashboard_page, login_page
from clvdrift.service.deps import KEY_COOKIE, ServiceState, error_responses, get_state, require_key

router = APIRouter(tags=["dashboard"])
RUNS_SHOWN = 200
"""The newest runs the charts and tables read (the cards count every run)."""
EVENTS_SHOWN = 60
QUARANTINE_SHOWN = 50
INGEST_REQUESTS_SHOWN = 1000
COOKIE_SECONDS = 8 * 3600
MAX_LOGIN_BYTES = 4096
DASHBOARD_URL = "/dashboard"
LOGIN_URL = "/dashboard/login"
_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key (`clvdrift apikey create`)"
)


def _csp(nonce: str) -> str:
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self'; connect-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


def _html(body: str, nonce: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=_headers(nonce))


def _headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": _csp(nonce),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _wants_html(request: Request) -> bool:
    """A browser navigating (it asks for HTML), as opposed to an API client."""
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def browser_key(
    request: Request, key: str | None = Depends(_key_header), state: ServiceState = Depends(get_state)
) -> str | None:
    """The key id of the request's valid API key; None for a browser without one (it is sent to the
    sign-in page); the API's 401 for any other client."""
    try:
        return await require_key(request, key, state)
    except AuthError:
        if _wants_html(request):
            return None
        raise


def _to_sign_in(request: Request) -> RedirectResponse:
    response = RedirectResponse(LOGIN_URL, status_code=303, headers={"Cache-Control": "no-store"})
    if KEY_COOKIE in request.cookies:  # a revoked or unknown key: forget it
        response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _report_url(state: ServiceState, details: Any) -> str | None:
    """``/reports/{run_id}`` of a run's drift report when its folder is still on disk."""
    report = details.get("report") if isinstance(details, dict) else None
    if not isinstance(report, str) or not report:
        return None
    name = Path(report).parent.name
    if not name or not (Path(state.workspace.reports_dir) / name / "drift_report.json").is_file():
        return None
    return f"/reports/{quote(name, safe='')}"


def gather(state: ServiceState) -> dict[str, Any]:
    """What the dashboard shows, read from the store and the workspace now, as plain dicts."""
    from clvdrift.pipeline.champion import list_versions
    from clvdrift.pipeline.ingest import ingest_stats
    from clvdrift.pipeline.replay import latest_replay
    from clvdrift.store.ledger import Ledger
    from clvdrift.store.online import DriftEvents, drift_event_count, ingest_timeline
    from clvdrift.store.runs import RunStore

    engine = state.engine
    store = RunStore(engine)
    runs = []
    for record in store.list(limit=RUNS_SHOWN):
        run = record.to_dict()
        run["report_url"] = _report_url(state, record.details)
        runs.append(run)
    versions = [v.summary() for v in list_versions(state.workspace.database_url)]
    champion = next((v for v in versions if v["is_champion"]), None)
    loaded = state.champion.loaded
    quarantined = Ledger(engine).list("quarantined")
    newest_files = sorted(quarantined, key=lambda f: f.processed_at, reverse=True)[:QUARANTINE_SHOWN]
    stats = ingest_stats(state.workspace)
    try:
        folder = latest_replay(state.workspace)
        replay = (
            {"name": folder.name, "chart_url": f"/replays/latest/chart.svg?replay={quote(folder.name)}"}
            if (folder / "chart.svg").is_file()
            else None
        )
    except NotFoundError:
        replay = None
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "champion": champion,
        "served": {
            "version": loaded.version if loaded else None,
            "problem": None if loaded else state.champion.problem,
        },
        "totals": store.totals(),
        "runs": runs,
        "versions": versions,
        "drift_events": [e.to_dict() for e in DriftEvents(engine).list(limit=EVENTS_SHOWN)],
        "drift_event_count": drift_event_count(engine),
        "ingestion": stats["ingestion"],
        "history": stats["history"],
        "ingest_requests": ingest_timeline(engine, limit=INGEST_REQUESTS_SHOWN),
        "quarantined": [
            {
                "name": Path(f.path).name,
                "reason": f.reason,
                "processed_at": f.processed_at.isoformat(),
                "run_id": f.run_id,
            }
            for f in newest_files
        ],
        "quarantined_count": len(quarantined),
        "replay": replay,
    }


@router.get(
    DASHBOARD_URL,
    summary="The live dashboard (HTML; a browser without a key is sent to /dashboard/login)",
    response_class=HTMLResponse,
    responses={
        303: {"description": "a browser without a valid key: to the sign-in page"},
        **error_responses(401),
    },
)
async def dashboard(
    request: Request, key_id: str | None = Depends(browser_key), state: ServiceState = Depends(get_state)
) -> Response:
    if key_id is None:
        return _to_sign_in(request)
    data = await run_in_threadpool(gather, state)
    nonce = secrets.token_urlsafe(18)
    return _html(dashboard_page(data, nonce=nonce), nonce)


@router.get(
    f"{DASHBOARD_URL}/fragment",
    summary="The dashboard's content alone (HTML), what its page refreshes itself with",
    response_class=HTMLResponse,
    dependencies=[Depends(require_key)],
    responses=error_responses(401),
)
async def fragment(state: ServiceState = Depends(get_state)) -> Response:
    data = await run_in_threadpool(gather, state)
    return _html(dashboard_fragment(data), secrets.token_urlsafe(18))


@router.get(LOGIN_URL, include_in_schema=False)
async def login_form() -> Response:
    nonce = secrets.token_urlsafe(18)
    return _html(login_page(nonce=nonce), nonce)


async def _form_key(request: Request) -> str:
    """The ``key`` field of an ``application/x-www-form-urlencoded`` body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise AuthError("sign in with the form: a urlencoded body with the field 'key'")
    body = await request.body()
    if len(body) > MAX_LOGIN_BYTES:
        raise DataError(f"the sign-in form is larger than {MAX_LOGIN_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    except ValueError:  # more fields than a sign-in form has
        raise DataError("the sign-in form has more than 10 fields; it takes one: key") from None
    return (fields.get("key") or [""])[0].strip()


@router.post(LOGIN_URL, include_in_schema=False)
async def login(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    key = await _form_key(request)
    try:
        await run_in_threadpool(state.keys.check, key)
    except AuthError as exc:
        nonce = secrets.token_urlsafe(18)
        return _html(login_page(nonce=nonce, error=str(exc)), nonce, status_code=401)
    response = RedirectResponse(DASHBOARD_URL, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        KEY_COOKIE,
        key,
        max_age=COOKIE_SECONDS,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post(f"{DASHBOARD_URL}/logout", include_in_schema=False)
async def logout() -> Response:
    response = RedirectResponse(LOGIN_URL, status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict")
    return response
