"""``clvdrift deploy``: put a registered model version into service, or change nothing.

:func:`deploy` checks everything before it changes anything, then makes one change and proves it:

1. **The version.** It is registered (``clvdrift train --no-promote`` against the registry the service
   reads, e.g. PostgreSQL) and every artifact file matches the sha256 the registry recorded; the model
   loads.
2. **The quality floor** (:func:`check_quality`): the version's time-split evaluation — the newest
   matured window it did not train on, as ``clvdrift train`` reports it — against
   :class:`~clvdrift.config.QualityThresholds` (a file the operator keeps; CI's quality gate reads the
   same one through ``clvdrift models check``).
3. **The champion/challenger gate** (:func:`gate_against_champion`): ``train`` scored the version and the
   champion it found on the customers neither trained on; that comparison must be with the champion the
   registry has now, and :func:`clvdrift.model.gate.decide` (the cycle's rule, ``GateConfig``) must
   promote. A version compared with another champion, or with none while there is one now, is refused:
   train it again against this registry.
4. **The service** answers at ``service_url`` and accepts the API key (``GET /health``, ``GET /models``).

Only then the version is promoted (:func:`clvdrift.pipeline.champion.promote`, a run of kind ``promote``
with trigger ``deploy``), the service is told to reload (``POST /reload_model``) and ``GET /ready`` is
polled until it names the version. When it does not within ``timeout`` seconds, the promotion is rolled
back (a ``rollback`` run, trigger ``deploy``) so the registry names the champion the service still
serves, and :class:`ServiceError` says so. Every refusal is one :class:`ClvdriftError` with its exit code
(7 quality or gate, 8 service, 3 artifacts or store).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.config import GateConfig, QualityThresholds
from clvdrift.errors import AuthError, ClvdriftError, ConfigError, QualityGateError, ServiceError
from clvdrift.jsonable import dataclass_dict
from clvdrift.observability.logging import get_logger
from clvdrift.pipeline.common import Workspace
from clvdrift.urls import mask_url

if TYPE_CHECKING:
    from clvdrift.model.registry import ModelVersion

__all__ = ["DeployResult", "ThresholdCheck", "check_quality", "deploy", "gate_against_champion"]

log = get_logger(__name__)


@dataclass(frozen=True)
class ThresholdCheck:
    metric: str
    value: float | None
    limit: float
    bound: Literal["min", "max"]
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)

    def describe(self) -> str:
        sign = "≥" if self.bound == "min" else "≤"
        value = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{self.metric} {value} (needs {sign} {self.limit:g})"


@dataclass(frozen=True)
class DeployResult:
    """What :func:`deploy` did."""

    version: str
    previous_champion: str | None
    promoted: bool
    """False when the version was the champion already (then only the service was reloaded)."""
    run_id: str | None
    """The ``promote`` run, when there was a promotion."""
    checks: list[ThresholdCheck]
    gate: str
    """The gate's reason (or why there was nothing to compare with)."""
    service_url: str
    served_version: str
    seconds_to_serve: float

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def check_quality(version: ModelVersion, thresholds: QualityThresholds) -> list[ThresholdCheck]:
    """Each threshold against the version's time-split evaluation (its registry ``metrics``). A version
    without a time-split evaluation (e.g. the seed's random split of earlier releases) fails every check."""
    evaluation = version.metrics if version.metrics.get("split") == "time" else {}
    model: Mapping[str, Any] = evaluation.get("model") or {}
    baseline: Mapping[str, Any] = evaluation.get("baseline") or {}

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, (int, float)) and value == value else None

    mae, persistence_mae = number(model.get("mae")), number(baseline.get("mae"))
    ratio = mae / persistence_mae if mae is not None and persistence_mae else None
    wanted: list[tuple[str, float | None, float, Literal["min", "max"]]] = [
        ("spearman", number(model.get("spearman")), thresholds.min_spearman, "min"),
        ("gini_normalized", number(model.get("gini_normalized")), thresholds.min_gini_normalized, "min"),
        ("top10_capture", number(model.get("top10_capture")), thresholds.min_top10_capture, "min"),
        ("mae_vs_persistence", ratio, thresholds.max_mae_vs_persistence, "max"),
    ]
    return [
        ThresholdCheck(
            metric,
            value,
            limit,
            bound,
            value is not None and (value >= limit if bound == "min" else value <= limit),
        )
        for metric, value, limit, bound in wanted
    ]


def require_quality(version: ModelVersion, thresholds: QualityThresholds) -> list[ThresholdCheck]:
    """:func:`check_quality`, raising :class:`QualityGateError` naming every failed check."""
    checks = check_quality(version, thresholds)
    failed = [c for c in checks if not c.passed]
    if failed:
        how = "" if version.metrics.get("split") == "time" else " (it has no time-split evaluation)"
        raise QualityGateError(
            f"model version {version.version} is below the quality thresholds{how}: "
            + "; ".join(c.describe() for c in failed)
        )
    return checks


def gate_against_champion(version: ModelVersion, champion: ModelVersion | None, config: GateConfig) -> str:
    """The gate's reason for promoting ``version`` over ``champion`` (module docstring, point 3);
    :class:`QualityGateError` when the gate refuses or cannot compare them."""
    from clvdrift.model.gate import decide

    if champion is None:
        return "no champion yet: nothing to compare with"
    compared = version.metrics.get("champion")
    if not isinstance(compared, Mapping) or compared.get("version") != champion.version:
        against = compared.get("version") if isinstance(compared, Mapping) else None
        raise QualityGateError(
            f"model version {version.version} was compared with "
            f"{'champion ' + str(against) if against else 'no champion'} when it was trained, not with "
            f"the champion {champion.version}: train it against this registry (clvdrift train "
            "--no-promote) so that the gate can compare the two"
        )
    if compared.get("skipped") or not compared.get("customers"):
        raise QualityGateError(
            f"the gate cannot compare model version {version.version} with the champion "
            f"{champion.version}: {compared.get('skipped') or 'no customer that neither trained on'}"
        )
    decision = decide(compared["champion"], compared["model"], config)
    if not decision.promote:
        raise QualityGateError(
            f"the champion/challenger gate refuses model version {version.version} against the champion "
            f"{champion.version}: {decision.reason}"
        )
    return decision.reason


_BODY_LIMIT = 1 << 20
"""Bytes read of an answer at most (the service's answers to these calls are small)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: the API key must not travel to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Service:
    """The running service, over plain HTTP (the standard library: no client dependency). Every call is
    bounded as a whole (a service that trickles its answer cannot hold the deployment), follows no
    redirect, and turns every failure into one :class:`ServiceError` that never shows the API key."""

    def __init__(self, url: str, api_key: str, timeout: float = 10.0) -> None:
        self.shown = mask_url(url)
        try:
            parts = urllib.parse.urlsplit(url.strip())
            parts.port  # noqa: B018  (a port that is not a number raises here)
        except ValueError:
            raise ConfigError(f"--service-url {self.shown}: not a URL with a valid host and port") from None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(c.isspace() for c in url.strip())
        ):
            raise ConfigError(
                f"--service-url {self.shown}: give the service's http(s) address, e.g. http://127.0.0.1:8000"
            )
        key = api_key.strip()
        if not key or any(c.isspace() or not c.isprintable() for c in key):
            raise AuthError("the API key holds whitespace or control characters: not a clvdrift API key")
        self.url, self.api_key, self.timeout = url.strip().rstrip("/"), key, timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def call(self, method: str, path: str, *, within: float | None = None) -> tuple[int, dict[str, Any]]:
        """(status, JSON body or ``{}``) of one call, in at most ``within`` seconds (default
        ``timeout``)."""
        limit = self.timeout if within is None else max(0.1, min(within, self.timeout))
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(self._call(method, path, limit))
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)

        worker = threading.Thread(target=run, name="clvdrift-deploy-http", daemon=True)
        worker.start()
        worker.join(limit + 1.0)
        if not outcome:
            raise ServiceError(
                f"the service at {self.shown} did not answer {method} {path} within {limit:g} s"
            )
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        result: tuple[int, dict[str, Any]] = outcome[0]
        return result

    def _call(self, method: str, path: str, limit: float) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + path, method=method, headers={"X-API-Key": self.api_key, "Accept": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=limit) as answer:
                return answer.status, _json(answer.read(_BODY_LIMIT))
        except urllib.error.HTTPError as answer:
            if 300 <= answer.code < 400:
                where = mask_url(answer.headers.get("Location") or "elsewhere")
                raise ServiceError(
                    f"the service at {self.shown} answers {method} {path} with a redirect ({answer.code}) to "
                    f"{where}: give the service's own address"
                ) from None
            return answer.code, _json(answer.read(_BODY_LIMIT))
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise ServiceError(
                f"the service at {self.shown} cannot be reached: {mask_url(str(reason))}"
            ) from None

    def check(self) -> None:
        """A clvdrift service answers, and it accepts the key (before anything changes)."""
        status, body = self.call("GET", "/health")
        if status != 200 or body.get("status") != "ok":
            raise ServiceError(
                f"the service at {self.shown} is not a clvdrift service: GET /health answered {status} "
                f"{'with ' + repr(body)[:80] if body else 'without a JSON status'}"
            )
        status, body = self.call("GET", "/models")
        if status == 401:
            raise AuthError(f"the service at {self.shown} refuses the API key: {_message(body)}")
        if status != 200 or not isinstance(body.get("versions"), list):
            raise ServiceError(
                f"the service at {self.shown} answers GET /models with {status}: {_message(body)}"
            )

    def serve(self, version: str, timeout: float) -> float:
        """Ask for a reload, then wait until ``GET /ready`` names ``version``; the seconds it took. A
        failed reload request is not the end: the service also reloads by itself when it sees the new
        champion, so ``/ready`` is polled until the timeout either way."""
        started = time.monotonic()
        deadline = started + timeout
        last = ""
        try:
            status, body = self.call("POST", "/reload_model", within=timeout)
            if status not in (200, 503):
                last = f"POST /reload_model answered {status}: {_message(body)}"
        except ServiceError as exc:
            last = str(exc)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceError(
                    f"the service at {self.shown} did not serve model version {version} within "
                    f"{timeout:g} s: {last}"
                )
            try:
                status, body = self.call("GET", "/ready", within=left)
                if status == 200 and body.get("champion") == version:
                    return time.monotonic() - started
                last = f"GET /ready answered {status}, serving {body.get('champion')}"
                if body.get("problems"):
                    last += f" ({'; '.join(map(str, body['problems']))})"
            except ServiceError as exc:
                last = str(exc)
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _message(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    return mask_url(str(error.get("message"))) if isinstance(error, Mapping) else "no message"


def _undo(workspace: Workspace, service: _Service, version: str, previous: str | None, problem: str) -> str:
    """Restore ``previous`` after ``version`` was promoted and not served; the message saying what
    happened."""
    from clvdrift.pipeline.champion import rollback

    if previous is None:
        return (
            f"{problem}; there was no champion before, so {version} stays the registry's champion: "
            "make the service serve it, or promote another version"
        )
    try:
        rollback(workspace, to=previous, trigger="deploy", expected_champion=version)
    except ClvdriftError as undo:
        return f"{problem}; the champion was not restored to {previous}: {mask_url(str(undo))}"
    try:
        service.call("POST", "/reload_model")
    except ServiceError:
        return (
            f"{problem}; the champion {previous} was restored in the registry (the service could not be "
            "told to reload: it picks the champion up by itself when it answers again)"
        )
    return f"{problem}; the champion {previous} was restored"


def deploy(
    workspace: Workspace,
    version: str,
    *,
    service_url: str,
    api_key: str,
    thresholds: QualityThresholds,
    gate_config: GateConfig = GateConfig(),
    timeout: float = 60.0,
) -> DeployResult:
    """Promote ``version`` and have the service at ``service_url`` serve it, or change nothing (module
    docstring)."""
    from clvdrift.model.artifacts import load_model
    from clvdrift.pipeline.champion import gate_rejection, open_registry, promote

    service = _Service(service_url, api_key)  # the URL and the key are checked before anything else
    registry = open_registry(workspace.database_url)
    record = registry.get(version)
    load_model(workspace.models_dir, record.version, expected=record.artifacts)  # checksums, then it loads
    checks = require_quality(record, thresholds)
    champion = registry.champion()
    already = champion is not None and champion.version == version
    rejected = gate_rejection(record)
    if rejected is not None and not already:
        raise QualityGateError(
            f"model version {version} was rejected by the champion/challenger gate: {rejected}"
        )
    gate = "the champion already" if already else gate_against_champion(record, champion, gate_config)
    service.check()
    previous = champion.version if champion is not None else None
    change = None
    if not already:  # only over the champion the gate compared with (another deploy may have won)
        change = promote(workspace, version, trigger="deploy", expected_champion=previous)
        log.info("deploy: %s promoted over %s (run %s)", version, previous, change.run_id)
    try:
        seconds = service.serve(version, timeout)
    except Exception as exc:
        problem = (
            mask_url(str(exc))
            if isinstance(exc, ClvdriftError)
            else f"{type(exc).__name__}: {mask_url(str(exc))}"
        )
        if change is None:
            raise ServiceError(problem) from None
        raise ServiceError(_undo(workspace, service, version, previous, problem)) from None
    return DeployResult(
        version=version,
        previous_champion=previous,
        promoted=change is not None and change.changed,
        run_id=change.run_id if change is not None else None,
        checks=checks,
        gate=gate,
        service_url=service.shown,
        served_version=version,
        seconds_to_serve=round(seconds, 2),
    )
