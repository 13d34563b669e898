"""Operations: liveness, readiness, metrics, forced reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from clvdrift.service.deps import ServiceState, error_responses, get_state, require_key

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: a champion is loaded and the store answers",
    responses={503: {"description": "not ready; the body says why"}},
)
def ready(state: ServiceState = Depends(get_state)) -> JSONResponse:
    from clvdrift.pipeline.serving import champion_version

    problems = []
    try:
        champion_version(state.engine)
    except Exception as exc:
        problems.append(f"the store cannot be read ({type(exc).__name__}; see the server log)")
    loaded = state.champion.loaded
    warnings = []
    if loaded is None:
        problems.append(f"no champion loaded: {state.champion.problem}")
    elif state.champion.problem:  # serving, but not the registry's champion: said, not hidden
        warnings.append(state.champion.problem)
    body: dict[str, Any] = {
        "ready": not problems,
        "champion": loaded.version if loaded else None,
        "problems": problems,
        "warnings": warnings,
    }
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.post(
    "/reload_model", summary="Reload the champion from the registry now", responses=error_responses(401, 503)
)
async def reload_model(
    state: ServiceState = Depends(get_state), _key: str = Depends(require_key)
) -> dict[str, Any]:
    changed = await run_in_threadpool(state.champion.refresh, force=True)
    champion = state.champion.get()
    return {"reloaded": changed, "champion": champion.describe(), "problem": state.champion.problem}
