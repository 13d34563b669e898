"""``clvdrift deploy`` end to end: the real command line against the real PostgreSQL registry and a running
``clvdrift serve`` (a subprocess on 127.0.0.1).

A champion v1 is trained into a fresh PostgreSQL database and served; a candidate v2 is trained against
the same registry without promotion (``clvdrift train --no-promote`` does the same), so its record holds
the comparison with v1 that the gate reads. Then:

- refusals, each with a clear one-line message, its exit code, and nothing changed (the registry's
  champion, the run history and what the service serves are as before): a tampered artifact (3), a model
  below the thresholds (7), a wrong API key (2), an unreachable service (8);
- the deployment itself: v2 is the champion, the service answers with it, a ``promote`` run with trigger
  ``deploy`` is recorded;
- a service that cannot load the version (its artifact folder lacks v2's files): the promotion is rolled
  back (exit 8, the message says the previous champion was restored) and v1 is still served.

The gate's own decisions (refusal, a comparison with another champion) are tested on typed records in
``test_gate_against_champion_*`` (fast, no server)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from clvdrift.config import GateConfig
from clvdrift.errors import QualityGateError
from clvdrift.pipeline.common import Workspace
from service.conftest import SMALL, seed_workspace  # type: ignore[import-not-found]
from service.server import env_for, free_port, running_server  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = REPO / "deploy" / "model_thresholds.toml"
LENIENT = "min_spearman = -1\nmin_gini_normalized = -1\nmin_top10_capture = 0\nmax_mae_vs_persistence = 100\n"
STRICT = (
    "min_spearman = 0.99\nmin_gini_normalized = -1\nmin_top10_capture = 0\nmax_mae_vs_persistence = 100\n"
)


@dataclass(frozen=True)
class Deployment:
    ws: Workspace
    v1: str
    v2: str
    key: str
    lenient: Path
    strict: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    from clvdrift import pipeline
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys
    from store.pgdb import fresh_database  # type: ignore[import-not-found]

    root = tmp_path_factory.mktemp("deploy")
    with fresh_database() as url:
        (root / "seed").mkdir()
        sqlite_ws, _ = seed_workspace(root / "seed")
        ws = replace(sqlite_ws, database_url=url, models_dir=root / "models", history_dir=root / "history")
        registry = open_registry(url)
        train = dict(models_dir=ws.models_dir, reference_dir=ws.reference_dir, config=SMALL)
        v1 = pipeline.train(ws.raw_data, registry=registry, **train).version  # type: ignore[arg-type]
        v2 = pipeline.train(ws.raw_data, registry=registry, champion=False, **train).version  # type: ignore[arg-type]
        _, key = ApiKeys(connect(url)).create("deploy tests")
        lenient, strict = root / "lenient.toml", root / "strict.toml"
        lenient.write_text(LENIENT)
        strict.write_text(STRICT)
        yield Deployment(ws, v1, v2, key, lenient, strict)


def _deploy(
    d: Deployment, *args: str, key: str | None = None, ws: Workspace | None = None
) -> subprocess.CompletedProcess[str]:
    env = env_for(ws or d.ws, CLVDRIFT_API_KEY=key or d.key, CLVDRIFT_GATE__TOLERANCE="1.0")
    return subprocess.run(
        [sys.executable, "-m", "clvdrift", "deploy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _state(d: Deployment, base: str) -> tuple[str | None, list[tuple[str, str, str]], str | None]:
    """The registry's champion, the runs (kind, trigger, status) and the version the service serves."""
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.store import RunStore, connect

    champion = open_registry(d.ws.database_url).champion()
    runs = [(r.kind, r.trigger, r.status) for r in RunStore(connect(d.ws.database_url)).list(limit=50)]
    served = httpx.get(f"{base}/ready", timeout=5).json().get("champion")
    return (champion.version if champion else None), runs, served


def test_deploy_refuses_without_changing_anything_then_deploys(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    with running_server(env_for(d.ws), tmp_path / "serve.log") as server:
        before = _state(d, server.base)
        assert before[0] == d.v1 and before[2] == d.v1
        ok_args = [d.v2, "--service-url", server.base, "--thresholds", str(d.lenient), "--timeout", "30"]

        # a tampered artifact: its sha256 differs from the registry's
        model_file = next(d.ws.models_dir.glob(f"clv_model_{d.v2}.joblib"))
        saved = model_file.read_bytes()
        model_file.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
        try:
            proc = _deploy(d, *ok_args)
        finally:
            model_file.write_bytes(saved)
        assert proc.returncode == 3 and "sha256" in proc.stderr and "Traceback" not in proc.stderr, (
            proc.stderr
        )
        assert _state(d, server.base) == before

        # below the thresholds
        proc = _deploy(d, d.v2, "--service-url", server.base, "--thresholds", str(d.strict))
        assert proc.returncode == 7, proc.stderr
        assert "below the quality thresholds" in proc.stderr and "spearman" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert _state(d, server.base) == before

        # a key the service refuses
        proc = _deploy(d, *ok_args, key="not-a-key")
        assert proc.returncode == 2 and "refuses the API key" in proc.stderr, proc.stderr
        assert _state(d, server.base) == before

        # nothing listens there
        unreachable = [
            d.v2,
            "--service-url",
            f"http://127.0.0.1:{free_port()}",
            "--thresholds",
            str(d.lenient),
        ]
        proc = _deploy(d, *unreachable)
        assert proc.returncode == 8 and "cannot be reached" in proc.stderr, proc.stderr
        assert _state(d, server.base) == before

        # the deployment
        proc = _deploy(d, *ok_args)
        assert proc.returncode == 0, proc.stderr
        assert f"deployed {d.v2} (was {d.v1})" in proc.stdout
        champion, runs, served = _state(d, server.base)
        assert champion == d.v2 and served == d.v2
        assert runs[0] == ("promote", "deploy", "success") and runs[1:] == before[1]
        loaded = httpx.post(f"{server.base}/reload_model", headers={"X-API-Key": d.key}).json()["champion"]
        assert loaded["version"] == d.v2
        row = {c: ("United Kingdom" if c == "Country" else 1.0) for c in loaded["input_features"]}
        answer = httpx.post(f"{server.base}/predict", json={"rows": [row]}, headers={"X-API-Key": d.key})
        assert answer.status_code == 200 and answer.json()["model_version"] == d.v2

        # deploying the champion again changes nothing and still checks that it is served
        proc = _deploy(d, *ok_args)
        assert proc.returncode == 0 and "the champion already" in proc.stdout, proc.stderr
        assert _state(d, server.base) == (d.v2, runs, d.v2)


def test_a_service_that_cannot_load_the_version_gets_the_previous_champion_back(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The service's artifact folder lacks the new version's files (not shared with the registry's): it
    never serves it, so the promotion is rolled back and the champion it serves stays the champion."""
    from clvdrift.pipeline.champion import open_registry, promote

    d = deployment
    current = open_registry(d.ws.database_url).champion()
    assert current is not None
    target = d.v1 if current.version == d.v2 else d.v2
    if current.version != d.v1:  # the other test may have run first: start from v1 served
        promote(d.ws, d.v1, force=True)
        target = d.v2
    lonely = tmp_path / "service-models"
    shutil.copytree(d.ws.models_dir, lonely, ignore=shutil.ignore_patterns(f"*{target}*"))
    service_ws = replace(d.ws, models_dir=lonely)
    with running_server(env_for(service_ws), tmp_path / "serve.log") as server:
        before = _state(d, server.base)
        assert before[0] == d.v1 and before[2] == d.v1
        args = [target, "--service-url", server.base, "--thresholds", str(d.lenient), "--timeout", "4"]
        proc = _deploy(d, *args)
        assert proc.returncode == 8, proc.stderr
        assert (
            f"did not serve model version {target}" in proc.stderr and f"{d.v1} was restored" in proc.stderr
        )
        champion, runs, served = _state(d, server.base)
        assert champion == d.v1 and served == d.v1
        assert [r[:2] for r in runs[:2]] == [("rollback", "deploy"), ("promote", "deploy")]


# ------------------------------------------------------------------------- the gate, on typed records
def _version(name: str, metrics: dict[str, object]):  # type: ignore[no-untyped-def]
    from clvdrift.model.registry import ModelVersion

    fields = {f: None for f in ModelVersion.__dataclass_fields__}
    return ModelVersion(**{**fields, "version": name, "metrics": metrics, "training": {}})  # type: ignore[arg-type]


def test_gate_against_champion_promotes_refuses_and_wants_the_same_champion() -> None:
    from clvdrift.pipeline.deploy import gate_against_champion

    scores = {"spearman": 0.50, "gini_normalized": 0.7, "mae": 100.0}
    champion = _version("v1", {})
    compared = {"version": "v1", "customers": 50, "clean": True, "champion": scores}
    better = _version("v2", {"champion": {**compared, "model": {**scores, "spearman": 0.55}}})
    assert "promot" in gate_against_champion(better, champion, GateConfig()).lower()
    worse = _version("v2", {"champion": {**compared, "model": {**scores, "spearman": 0.40}}})
    with pytest.raises(QualityGateError, match="gate refuses model version v2"):
        gate_against_champion(worse, champion, GateConfig())
    elsewhere = _version("v2", {"champion": {**compared, "version": "v0", "model": scores}})
    with pytest.raises(QualityGateError, match=r"compared with champion v0 .* not with the champion v1"):
        gate_against_champion(elsewhere, champion, GateConfig())
    alone = _version("v2", {})
    with pytest.raises(QualityGateError, match="compared with no champion"):
        gate_against_champion(alone, champion, GateConfig())
    assert "no champion" in gate_against_champion(alone, None, GateConfig())


def test_the_repository_thresholds_pass_the_bundled_default_model(trained) -> None:  # type: ignore[no-untyped-def]
    """deploy/model_thresholds.toml against the bundled file's model (the session's trained fixture)."""
    from clvdrift.config import QualityThresholds
    from clvdrift.pipeline.deploy import check_quality

    _, registry, result = trained
    checks = check_quality(registry.get(result.version), QualityThresholds.from_file(THRESHOLDS))
    assert [c.metric for c in checks if not c.passed] == []


# ------------------------------------------------- services that misbehave (found by an adversarial check)
class _Fake:
    """An HTTP server on 127.0.0.1 in a thread: ``mode`` says how it answers; ``seen`` keeps every
    request's path and headers."""

    def __init__(self, mode: str, champion: str = "", target: str = "") -> None:
        import http.server
        import threading

        fake = self
        self.seen: list[tuple[str, dict[str, str]]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                fake.seen.append((self.path, dict(self.headers)))
                if mode == "trickle":  # headers, then one byte a second, for ever
                    import time as _time

                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            _time.sleep(1)
                    except OSError:
                        return
                if mode == "truncated-ready" and self.path == "/ready":  # promises 100 bytes, sends 10
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"ready": ')
                    self.close_connection = True
                    return
                if mode == "html":
                    body, kind, status = b"<html>hello</html>", "text/html", 200
                elif mode == "redirect":
                    self.send_response(301)
                    self.send_header("Location", target + self.path)
                    self.end_headers()
                    return
                else:  # a clvdrift that never serves anything but `champion`
                    import json as _json

                    answers = {
                        "/health": {"status": "ok"},
                        "/models": {"versions": []},
                        "/reload_model": {"reloaded": False},
                        "/ready": {"ready": True, "champion": champion, "problems": []},
                    }
                    body, kind, status = (
                        _json.dumps(answers.get(self.path, {})).encode(),
                        "application/json",
                        200,
                    )
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _champion_is(d: Deployment, version: str) -> None:
    from clvdrift.pipeline.champion import open_registry, promote

    if open_registry(d.ws.database_url).champion().version != version:
        promote(d.ws, version, force=True)


def _registry_state(d: Deployment) -> tuple[str | None, list[str]]:
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.store import RunStore, connect

    champion = open_registry(d.ws.database_url).champion()
    return (champion.version if champion else None), [
        r.run_id for r in RunStore(connect(d.ws.database_url)).list()
    ]


def test_a_service_that_is_not_clvdrift_or_redirects_is_refused_and_the_key_stays_home(
    deployment: Deployment,
) -> None:
    d = deployment
    _champion_is(d, d.v1)
    before = _registry_state(d)
    html, elsewhere = _Fake("html"), _Fake("html")
    redirect = _Fake("redirect", target=elsewhere.url)
    try:
        proc = _deploy(d, d.v2, "--service-url", html.url, "--thresholds", str(d.lenient))
        assert proc.returncode == 8 and "not a clvdrift service" in proc.stderr, proc.stderr
        proc = _deploy(d, d.v2, "--service-url", redirect.url, "--thresholds", str(d.lenient))
        assert proc.returncode == 8 and "redirect (301)" in proc.stderr, proc.stderr
        assert elsewhere.seen == [], "the key travelled to the redirect's target"
    finally:
        for fake in (html, elsewhere, redirect):
            fake.close()
    assert _registry_state(d) == before


def test_urls_and_keys_that_cannot_work_are_one_line_errors_without_secrets(deployment: Deployment) -> None:
    d = deployment
    _champion_is(d, d.v1)
    before = _registry_state(d)
    port = free_port()
    cases = [
        ([f"http://user:S3cretPW@127.0.0.1:{port}"], d.key, 8, "cannot be reached"),
        (["http://user:S3cretPW@127.0.0.1:notaport/"], d.key, 2, "not a URL"),
        (["ftp://127.0.0.1/"], d.key, 2, "http(s) address"),
        ([f"http://127.0.0.1:{port}"], "clv_S3cretPW with space", 2, "whitespace"),
        ([f"http://127.0.0.1:{port}"], d.key + "\n", 8, "cannot be reached"),  # a key file's newline: dropped
    ]
    for url, key, code, words in cases:
        proc = _deploy(d, d.v2, "--service-url", *url, "--thresholds", str(d.lenient), key=key)
        assert proc.returncode == code and words in proc.stderr, (url, proc.stderr)
        assert "S3cretPW" not in proc.stderr and d.key not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _registry_state(d) == before


def test_the_timeout_rollback_leaves_a_change_made_meanwhile_alone(deployment: Deployment) -> None:
    """While deploy waits for a service that never serves v2, another operator makes v1 the champion
    again: deploy must not roll back over that change, and says so."""
    import time

    from clvdrift.pipeline.champion import open_registry, promote

    d = deployment
    _champion_is(d, d.v1)
    fake = _Fake("clvdrift", champion=d.v1)
    env = env_for(d.ws, CLVDRIFT_API_KEY=d.key, CLVDRIFT_GATE__TOLERANCE="1.0")
    args = [d.v2, "--service-url", fake.url, "--thresholds", str(d.lenient), "--timeout", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "clvdrift", "deploy", *args], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while open_registry(d.ws.database_url).champion().version != d.v2:
            assert time.monotonic() < deadline and proc.poll() is None, "deploy never promoted v2"
            time.sleep(0.1)
        promote(d.ws, d.v1, trigger="cli")  # the other operator
        _, err = proc.communicate(timeout=60)
    finally:
        fake.close()
    assert proc.returncode == 8 and "did not serve model version" in err, err
    assert "not restored" in err and "another change was made meanwhile" in err, err
    assert open_registry(d.ws.database_url).champion().version == d.v1


def test_a_promotion_decided_against_one_champion_never_replaces_another(deployment: Deployment) -> None:
    """What keeps two deploys from both passing the gate against v1 and the second replacing the first
    unchecked: the promotion names the champion it was decided against."""
    from clvdrift.errors import ConflictError
    from clvdrift.pipeline.champion import open_registry, promote

    d = deployment
    _champion_is(d, d.v1)
    with pytest.raises(ConflictError, match="the champion changed meanwhile"):
        promote(d.ws, d.v2, trigger="deploy", expected_champion="someone-else")
    assert open_registry(d.ws.database_url).champion().version == d.v1
    assert promote(d.ws, d.v2, trigger="deploy", expected_champion=d.v1).to_version == d.v2
    _champion_is(d, d.v1)


def test_a_trickling_service_or_a_broken_answer_cannot_hold_or_half_do_the_deploy(
    deployment: Deployment,
) -> None:
    """A service that sends its answer a byte a second is given up within the call's bound (nothing
    changed); an answer cut short after the promotion (an HTTP protocol error) is rolled back."""
    import time

    from clvdrift.pipeline.champion import open_registry

    d = deployment
    _champion_is(d, d.v1)
    before = _registry_state(d)
    trickle = _Fake("trickle")
    try:
        started = time.monotonic()
        proc = _deploy(
            d, d.v2, "--service-url", trickle.url, "--thresholds", str(d.lenient), "--timeout", "3"
        )
        took = time.monotonic() - started
    finally:
        trickle.close()
    assert proc.returncode == 8 and "did not answer GET /health" in proc.stderr, proc.stderr
    assert took < 30, took
    assert _registry_state(d) == before
    broken = _Fake("truncated-ready", champion=d.v1)
    try:
        proc = _deploy(d, d.v2, "--service-url", broken.url, "--thresholds", str(d.lenient), "--timeout", "3")
    finally:
        broken.close()
    assert proc.returncode == 8 and f"the champion {d.v1} was restored" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert open_registry(d.ws.database_url).champion().version == d.v1
