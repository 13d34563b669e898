"""The model registry, the run history, reports and the latest replay."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from clvdrift.errors import NotFoundError
from clvdrift.pipeline.champion import get_version, list_versions, promote, rollback
from clvdrift.service.deps import ServiceState, error_responses, get_state, require_key

router = APIRouter(
    tags=["registry and runs"], dependencies=[Depends(require_key)], responses=error_responses(401)
)
Version = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.get("/models", summary="Registered model versions, newest first")
def models(state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    return {"versions": [v.summary() for v in list_versions(state.workspace.database_url)]}


@router.get("/models/{version}", summary="One model version, whole", responses=error_responses(404))
def model(version: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    return get_version(state.workspace.database_url, version).to_dict()


class PromoteRequest(BaseModel):
    force: bool = Field(default=False, description="promote a version the champion/challenger gate rejected")


class RollbackRequest(BaseModel):
    to: Version | None = Field(default=None, description="the version to restore (default: the previous one)")


@router.post(
    "/models/{version}/promote",
    summary="Make a version the champion (recorded as a run)",
    responses=error_responses(400, 404, 409),
)
async def promote_version(
    version: str, body: PromoteRequest | None = None, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    change = await run_in_threadpool(
        promote, state.workspace, version, force=bool(body and body.force), trigger="api"
    )
    await run_in_threadpool(state.champion.refresh)
    return change.to_dict()


@router.post(
    "/models/rollback",
    summary="Restore the previous champion (recorded as a run)",
    responses=error_responses(400, 404, 409),
)
async def rollback_champion(
    body: RollbackRequest | None = None, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    change = await run_in_threadpool(rollback, state.workspace, to=body.to if body else None, trigger="api")
    await run_in_threadpool(state.champion.refresh)
    return change.to_dict()


@router.get("/runs", summary="The run history, newest first, with totals")
def runs(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    from clvdrift.store.runs import RunStore

    store = RunStore(state.engine)
    return {"runs": [r.to_dict() for r in store.list(limit=limit)], "totals": store.totals()}


_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _report_dir(state: ServiceState, run_id: str) -> Path:
    if not _NAME.match(run_id) or run_id in (".", ".."):
        raise NotFoundError(f"no report of run {run_id[:128]!r}")
    root = Path(state.workspace.reports_dir).resolve()
    folder = (root / run_id).resolve()
    if folder.parent != root or not (folder / "drift_report.json").is_file():
        raise NotFoundError(f"no report of run {run_id!r}")
    return folder


@router.get(
    "/reports/{run_id}",
    summary="The JSON drift report of a run (its HTML pages are linked)",
    responses=error_responses(404),
)
def report(
    run_id: Annotated[str, Field(max_length=80)], state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    folder = _report_dir(state, run_id)
    doc: dict[str, Any] = json.loads((folder / "drift_report.json").read_text(encoding="utf-8"))
    pages = sorted(p.name for p in folder.glob("*.html"))
    doc["html_pages"] = {p: f"/reports/{run_id}/{p}" for p in pages}
    doc["reports"] = {
        k: Path(v).name if isinstance(v, str) else v for k, v in (doc.get("reports") or {}).items()
    }
    return doc


@router.get(
    "/reports/{run_id}/{page}",
    summary="One HTML page of a run's report",
    response_class=HTMLResponse,
    responses=error_responses(404),
)
def report_page(run_id: str, page: str, state: ServiceState = Depends(get_state)) -> FileResponse:
    folder = _report_dir(state, run_id)
    if not _NAME.match(page) or not page.endswith(".html") or not (folder / page).is_file():
        raise NotFoundError(f"run {run_id!r} has no page {page!r}")
    return FileResponse(folder / page, media_type="text/html")


@router.get(
    "/replays/latest", summary="The newest replay's summary (clvdrift replay)", responses=error_responses(404)
)
def latest_replay(state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    from clvdrift.pipeline.replay import latest_replay_summary

    summary = latest_replay_summary(state.workspace)
    for key in ("timeline_path", "summary_path", "chart_paths", "source"):
        summary.pop(key, None)  # paths of the server's disk
    summary["chart"] = "/replays/latest/chart.svg"
    return summary


@router.get(
    "/replays/latest/chart.svg",
    summary="The newest replay's chart",
    response_class=FileResponse,
    responses=error_responses(404),
)
def latest_replay_chart(state: ServiceState = Depends(get_state)) -> FileResponse:
    from clvdrift.pipeline.replay import latest_replay

    chart = latest_replay(state.workspace) / "chart.svg"
    if not chart.is_file():
        raise NotFoundError("the newest replay has no chart")
    return FileResponse(chart, media_type="image/svg+xml")


class RetrainRequest(BaseModel):
    reason: str = Field(default="requested through the API", min_length=1, max_length=2000)


@router.post(
    "/retrain",
    summary="Queue a retrain job for the worker (clvdrift worker)",
    status_code=202,
    responses=error_responses(400),
)
def request_retrain_job(
    body: RetrainRequest | None = None, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    from clvdrift.pipeline.jobs import request_retrain

    job = request_retrain(state.engine, "api", body.reason if body else "requested through the API")
    return job.to_dict()  # type: ignore[no-any-return]


@router.get("/jobs", summary="Retrain jobs, newest first")
def retrain_jobs(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    from clvdrift.store.jobs import RetrainJobs

    return {"jobs": [j.to_dict() for j in RetrainJobs(state.engine).list(limit=limit)]}
