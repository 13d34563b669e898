"""The processes of ``bench/serve_load.py`` other than the bench itself (each started as a subprocess):

- ``naive --port N``: the naive serving of the champion, the baseline of the throughput comparison: a
  minimal FastAPI app whose ``POST /predict`` takes ``{"rows": [feature row]}`` (pydantic), builds a
  one-row pandas DataFrame and calls the champion's scikit-learn estimators on it with their own
  ``predict``, per request (for ``gbm``: each view's ``HistGradientBoostingRegressor`` on its columns,
  averaged, as the model does; no API key, no metrics, no prediction log: it does less than the real
  server). Served by uvicorn exactly as ``clvdrift serve``
  serves ours (one worker, the same loop and HTTP parser, no access log). The workspace comes from the
  ``CLVDRIFT_*`` environment, as for ``clvdrift serve``.
- ``load SPEC.json``: a closed-loop HTTP/1.1 keep-alive load generator written on raw
  ``asyncio.open_connection`` (uvloop when installed): ``concurrency`` connections, each sending the
  next of ``bodies`` as soon as the previous answer has been read whole, for ``warmup`` seconds (not
  counted) and then ``duration`` seconds (counted). Prints one JSON object: answers by status, requests/s,
  latency percentiles (ms, each request timed from just before its write to the end of its body) and the
  client's own CPU use (near 100% of a core would mean the client, not the server, is the limit).
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def naive_app() -> Any:
    """The naive app over the workspace of the ``CLVDRIFT_*`` environment."""
    import pandas as pd
    from fastapi import FastAPI
    from pydantic import BaseModel

    from clvdrift.pipeline.serving import load_serving_champion
    from clvdrift.settings import get_settings

    champion = load_serving_champion(get_settings().workspace())
    model: Any = champion.model
    app = FastAPI(title="naive")

    def scikit_learn_predict(frame: pd.DataFrame) -> float:
        if champion.family != "gbm":
            return float(model.predict(frame)[0])
        views = [b.predict(model._matrix(frame, model.views_[v])) for v, b in model.boosters_.items()]
        return float(sum(v[0] for v in views) / len(views))

    class Body(BaseModel):
        rows: list[dict[str, float | str | None]]

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"champion": champion.version}

    @app.post("/predict")  # the module has no `from __future__ import annotations`: FastAPI sees Body
    async def predict(body: Body) -> dict[str, Any]:
        row = body.rows[0]
        value = scikit_learn_predict(pd.DataFrame([row]))
        return {"model_version": champion.version, "predicted_revenue": value}

    return app


def serve_naive(port: int) -> None:
    import uvicorn

    uvicorn.run(
        naive_app(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


# --- the load generator -------------------------------------------------------------------------------


def _requests(spec: dict[str, Any]) -> list[bytes]:
    head = (
        f"POST {spec['path']} HTTP/1.1\r\nHost: {spec['host']}:{spec['port']}\r\n"
        "Content-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    )
    out = []
    for body in spec["bodies"]:
        data = body.encode()
        out.append(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return out


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response whole; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    start = head.find(b"content-length:")
    if start < 0:
        start = head.lower().find(b"content-length:")
    if start < 0:
        raise RuntimeError("a response without Content-Length (chunked answers are not supported)")
    end = head.index(b"\r\n", start)
    await reader.readexactly(int(head[start + 15 : end]))
    return status


async def _connection(
    spec: dict[str, Any], requests: list[bytes], offset: int, t_count: float, t_stop: float, out: dict
) -> None:
    reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
    latencies: list[float] = out["latencies"]
    statuses: dict[int, int] = out["statuses"]
    n, i = len(requests), offset
    clock = time.perf_counter
    try:
        while True:
            start = clock()
            if start >= t_stop:
                break
            writer.write(requests[i % n])
            i += 1
            status = await _answer(reader)
            end = clock()
            out["sent"] += 1
            if start >= t_count and end <= t_stop:
                latencies.append(end - start)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    requests = _requests(spec)
    out: dict[str, Any] = {"latencies": [], "statuses": {}, "sent": 0}
    now = time.perf_counter()
    t_count = now + spec["warmup"]
    t_stop = t_count + spec["duration"]
    cpu = time.process_time()
    concurrency = spec["concurrency"]
    step = max(1, len(requests) // concurrency)
    await asyncio.gather(
        *(_connection(spec, requests, c * step, t_count, t_stop, out) for c in range(concurrency))
    )
    client_cpu = (time.process_time() - cpu) / (time.perf_counter() - now)
    latencies = sorted(out["latencies"])
    ok = out["statuses"].get(200, 0)

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    return {
        "concurrency": concurrency,
        "seconds": spec["duration"],
        "requests": len(latencies),
        "sent": out["sent"],
        "statuses": {str(k): v for k, v in sorted(out["statuses"].items())},
        "errors": len(latencies) - ok,
        "rps": round(ok / spec["duration"], 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "client_cpu": round(client_cpu, 3),
    }


def run_load(spec_path: Path) -> None:
    import gc

    spec = json.loads(spec_path.read_text())
    gc.freeze()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(_load(spec))
    else:
        result = uvloop.run(_load(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["naive"] and sys.argv[2:3] == ["--port"]:
        serve_naive(int(sys.argv[3]))
    elif sys.argv[1:2] == ["load"]:
        run_load(Path(sys.argv[2]))
    else:
        sys.exit("usage: _serve_fixture.py naive --port N | load SPEC.json")
