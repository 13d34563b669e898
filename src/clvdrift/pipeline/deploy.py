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

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.config import GateConfig, QualityThresholds
from clvdrift.errors import AuthError, ClvdriftError, QualityGateError, ServiceError
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


class _Service:
    """The running service, over plain HTTP (the standard library: no client dependency)."""

    def __init__(self, url: str, api_key: str, timeout: float = 10.0) -> None:
        self.url, self.shown, self.api_key, self.timeout = url.rstrip("/"), mask_url(url), api_key, timeout

    def call(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + path, method=method, headers={"X-API-Key": self.api_key, "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, _json(answer.read())
        except urllib.error.HTTPError as answer:
            return answer.code, _json(answer.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"the service at {self.shown} cannot be reached: {reason}") from None

    def check(self) -> None:
        """Reachable, and the key is accepted (before anything changes)."""
        status, _ = self.call("GET", "/health")
        if status != 200:
            raise ServiceError(f"the service at {self.shown} answers GET /health with {status}")
        status, body = self.call("GET", "/models")
        if status == 401:
            raise AuthError(f"the service at {self.shown} refuses the API key: {_message(body)}")
        if status != 200:
            raise ServiceError(
                f"the service at {self.shown} answers GET /models with {status}: {_message(body)}"
            )

    def serve(self, version: str, timeout: float) -> float:
        """Ask for a reload, then wait until ``GET /ready`` names ``version``; the seconds it took."""
        started = time.monotonic()
        status, body = self.call("POST", "/reload_model")
        if status not in (200, 503):
            raise ServiceError(
                f"the service at {self.shown} answers POST /reload_model with {status}: {_message(body)}"
            )
        last = ""
        while True:
            try:
                status, body = self.call("GET", "/ready")
                if status == 200 and body.get("champion") == version:
                    return time.monotonic() - started
                last = f"GET /ready answered {status}, serving {body.get('champion')}"
                if body.get("problems"):
                    last += f" ({'; '.join(map(str, body['problems']))})"
            except ServiceError as exc:
                last = str(exc)
            if time.monotonic() - started > timeout:
                raise ServiceError(
                    f"the service at {self.shown} did not serve model version {version} within "
                    f"{timeout:g} s: {last}"
                )
            time.sleep(0.25)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _message(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    return str(error.get("message")) if isinstance(error, Mapping) else "no message"


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
    from clvdrift.pipeline.champion import open_registry, promote, rollback

    registry = open_registry(workspace.database_url)
    record = registry.get(version)
    load_model(workspace.models_dir, record.version, expected=record.artifacts)  # checksums, then it loads
    checks = require_quality(record, thresholds)
    champion = registry.champion()
    already = champion is not None and champion.version == version
    gate = "the champion already" if already else gate_against_champion(record, champion, gate_config)
    service = _Service(service_url, api_key)
    service.check()
    previous = champion.version if champion is not None else None
    change = None
    if not already:
        change = promote(workspace, version, trigger="deploy")
        log.info("deploy: %s promoted over %s (run %s)", version, previous, change.run_id)
    try:
        seconds = service.serve(version, timeout)
    except ServiceError as exc:
        if change is None or previous is None:
            raise
        try:
            rollback(workspace, to=previous, trigger="deploy")
            service.call("POST", "/reload_model")
        except ClvdriftError as undo:
            raise ServiceError(f"{exc}; restoring the champion {previous} failed too: {undo}") from None
        raise ServiceError(f"{exc}; the champion {previous} was restored") from None
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
