"""Replay (issue 9): backtest retraining policies over the history of a transactions file.

At each step date D (``start``, ``start + step``, … up to ``end``) every policy runs one *real*
monitoring cycle (:mod:`clvdrift.pipeline.cycle`: :func:`start_run`, :func:`detect_history`,
:class:`DriftOutcome`, :func:`retrain`, :func:`finish_decided`) on ``raw_D``, the raw rows dated
before D + 1 day. Nothing after D leaks into step D: the file is loaded once, its *raw* rows are
truncated at each step and the pipeline's own functions clean them (cleaning nets cancellations that
may come later, so the file is never cleaned whole once).

Each policy has a workspace of its own below ``out_dir/policies/<slug>`` (a SQLite store, a registry,
folders). Its first champion is fitted on ``raw_start`` (what is known at ``start``) with the real
training functions (:func:`fit_version`, :func:`register_version`), so every policy starts from the
same model (the ``-lookback`` policies from the same model with lookback features).

A step's raw rows are cleaned once and its policies share the clean lines, aggregates, fits and
predictions (:class:`clvdrift.features.SharedLines`); they run on :data:`POLICY_THREADS` threads, each
policy's steps in date order, and every gbm fit sends its larger booster to a worker process
(:mod:`clvdrift.model.fit_worker`). Neither changes a result: each policy's cycles read only its own
workspace and what the step's lines give every policy alike.

Policies (:func:`parse_policy`):

- ``never``: the first champion forever;
- ``every:N``: retrain → gate → promote at steps N, 2N, … (counted from the first step, 1-based),
  whatever the drift check says;
- ``on-drift``: retrain when the cycle's decision says retraining is required (the seed's rule);
- ``on-drift-calibrated`` / ``on-drift-fdr``: the same with ``DriftConfig.calibrate`` / ``fdr``;
- ``<policy>-lookback`` (any of the above, e.g. ``on-drift-lookback``, ``never-lookback``): the same
  policy with features from the last L days only (``TrainConfig.lookback_days``; all-history features
  grow with the calendar, which the drift check sees as drift).

Per step and policy the timeline records the drift check (drifted columns, dataset drift, model drift
and whether it was assessable), the retraining and its gate, the champion in use, and that champion's
*realized* quality on the newest matured window — the detection's model-drift result: features at
T − H, revenue in (T − H, T], T the last day of the cleaned rows dated ≤ D, customers the champion did not
train on. A step date whose rows, cleaned, are the rows of the step before is skipped (``skipped_dates``).
That customer set depends on the champion (one refitted lately is scored on held-out and new customers
only), so the step also records a **paired** quality (:func:`_paired`): every champion of a feature group
scored on the same customers, those none of them trained on. Policies are compared on the paired figures.

Summary per policy: retrains (gated retrainings done; those the data did not allow yet — the gate
needs 2H + 30 days — are counted apart), alarms (steps whose check said retraining is required, whatever the
policy did), matured steps, mean and worst realized Spearman and mean / worst MAE over matured steps,
the paired mean Spearman and MAE, and the **alarm precision**: the share of alarms followed by a real
quality drop. An alarm at step i is
*confirmed* when, at step i or at the next step after it with a realized Spearman (a matured window
with a defined rank correlation), the realized Spearman of the champion then in use is below that
champion's own held-out Spearman by more than ``GateConfig.tolerance`` (``gate_tolerance`` in
``summary.json``). Alarms whose step and following steps have no realized Spearman count in neither
numerator nor denominator; precision is ``None`` without a judgeable alarm.

Written to ``out_dir``: ``timeline.json`` (``{"schema": "clvdrift.replay.timeline/1", "steps": […]}``,
described by ``docs/replay_timeline.schema.json``) and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clvdrift.config import DriftConfig, GateConfig, TrainConfig
from clvdrift.data import schema
from clvdrift.errors import ConfigError, DataError
from clvdrift.io import atomic_write_text
from clvdrift.jsonable import dataclass_dict, dumps
from clvdrift.observability.logging import get_logger
from clvdrift.pipeline.common import Timings, Workspace, predict_set

if TYPE_CHECKING:
    import pandas as pd

    from clvdrift.engines import EngineChoice
    from clvdrift.features import LineTable
    from clvdrift.pipeline.common import Cleaned
    from clvdrift.pipeline.cycle import CycleContext

__all__ = [
    "DEFAULT_POLICIES",
    "DEFAULT_STEP_DAYS",
    "QUALITY_METRICS",
    "SUMMARY_SCHEMA",
    "TIMELINE_SCHEMA",
    "Policy",
    "PolicySummary",
    "ReplayResult",
    "ReplayStep",
    "parse_policy",
    "parse_step",
    "replay",
    "replay_file",
]

TIMELINE_SCHEMA = "clvdrift.replay.timeline/1"
SUMMARY_SCHEMA = "clvdrift.replay.summary/1"
DEFAULT_POLICIES: tuple[str, ...] = ("never", "every:4", "on-drift", "on-drift-lookback")
DEFAULT_STEP_DAYS = 7
POLICY_THREADS = 2
"""A step's policies run on this many threads. Most of a cycle holds the GIL (pandas, scikit-learn's tree
growing), but a policy waiting for a fit (its larger booster in the worker process,
:mod:`clvdrift.model.fit_worker`) leaves it to the other: the README's seven-policy replay took 59-60 s
this way against 72-74 s one policy after the other, with the same timeline."""
QUALITY_METRICS = ("spearman", "gini_normalized", "mae", "total_ratio")
StepProgress = Callable[[int, int, str], None]  # (cycles done, cycles in all, what comes next)
log = get_logger(__name__)
LOOKBACK_SUFFIX = "-lookback"
POLICY_NAMES = (
    "never",
    "every:N",
    "on-drift",
    "on-drift-calibrated",
    "on-drift-fdr",
    "any of them + -lookback",
)


@dataclass(frozen=True)
class Policy:
    """A retraining policy (module docstring) and the configs its cycles run with."""

    name: str
    every: int | None = None  # every:N
    on_drift: bool = False
    calibrate: bool = False
    fdr: bool = False
    lookback: bool = False

    @property
    def slug(self) -> str:
        """The policy's name as a folder and run-id part: ``every:4`` → ``every-4``."""
        return self.name.replace(":", "-")

    def retrains(self, step: int, retraining_required: bool) -> bool:
        """Whether this policy retrains at ``step`` (1-based) given the cycle's decision."""
        if self.every is not None:
            return step % self.every == 0
        return self.on_drift and retraining_required

    def drift_config(self, base: DriftConfig) -> DriftConfig:
        if not (self.calibrate or self.fdr):
            return base
        return base.model_copy(
            update={"calibrate": base.calibrate or self.calibrate, "fdr": base.fdr or self.fdr}
        )

    def train_config(self, base: TrainConfig, lookback_days: int) -> TrainConfig:
        return base.model_copy(update={"lookback_days": lookback_days}) if self.lookback else base

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def parse_policy(text: str) -> Policy:
    """A policy from its name (module docstring); :class:`ConfigError` on anything else."""
    name = text.strip()
    base, lookback = (
        (name.removesuffix(LOOKBACK_SUFFIX), True) if name.endswith(LOOKBACK_SUFFIX) else (name, False)
    )
    fixed = {
        "never": Policy("never"),
        "on-drift": Policy("on-drift", on_drift=True),
        "on-drift-calibrated": Policy("on-drift-calibrated", on_drift=True, calibrate=True),
        "on-drift-fdr": Policy("on-drift-fdr", on_drift=True, fdr=True),
    }
    policy = fixed.get(base)
    match = re.fullmatch(r"every:(\d+)", base)
    if match and int(match.group(1)) >= 1:
        policy = Policy(f"every:{int(match.group(1))}", every=int(match.group(1)))
    if policy is not None:
        return (
            dataclasses.replace(policy, name=policy.name + LOOKBACK_SUFFIX, lookback=True)
            if lookback
            else policy
        )
    raise ConfigError(f"unknown replay policy {text!r}; expected one of {', '.join(POLICY_NAMES)} (N ≥ 1)")


def parse_step(text: str) -> int:
    """Days of a step written ``7d`` (or ``7``); :class:`ConfigError` unless a whole number ≥ 1."""
    match = re.fullmatch(r"\s*(-?\d+)\s*d?\s*", text)
    if not match:
        raise ConfigError(f"--step: expected a number of days such as 7d, got {text!r}")
    days = int(match.group(1))
    if days < 1:
        raise ConfigError(f"--step: a step must be at least 1 day, got {text!r}")
    return days


@dataclass(frozen=True)
class ReplayStep:
    """One policy's monitoring cycle at one step date (one element of ``timeline.json``'s ``steps``)."""

    step: int  # 1-based
    date: str  # D, YYYY-MM-DD
    policy: str
    run_id: str
    status: str  # "success" | "failed" (the cycle could not check this step's data; see error)
    error: str | None
    rows: int  # raw rows known at D
    cutoff: str | None  # where the step's features were computed (T − H); None when failed
    drifted_columns: list[str]
    column_drift: dict[str, dict[str, Any]]  # column → drifted, test, statistic, p_value
    dataset_drift: bool
    model_drift: bool
    model_drift_assessable: bool  # labels matured and customers left to score
    retraining_required: bool  # the cycle's decision (an alarm)
    retrained: bool  # the policy asked for retraining (gate_outcome says whether it could run)
    gate_outcome: str | None  # "promoted" | "rejected" | "error" | None (no retraining)
    gate_reason: str | None
    challenger_version: str | None
    champion_version: str  # the champion the check ran against (whose quality is realized)
    champion_after: str  # the champion once the step is done
    champion_reference_spearman: float | None  # that champion's held-out Spearman
    quality: dict[str, float | None] | None  # spearman, gini_normalized, mae, total_ratio; None: not matured
    customers_scored: int | None
    # the same metrics on the customers that no policy's champion with the same features trained on
    # (:func:`_paired`): every policy of the group is scored on the same customers at this step
    paired_quality: dict[str, float | None] | None = None
    customers_paired: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class PolicySummary:
    """One policy over the whole replay (see the module docstring for alarm precision)."""

    policy: str
    steps: int
    failed_steps: int  # steps whose cycle failed on their data (not checked)
    retrains: int  # retrain → gate done (promoted or rejected)
    retrain_errors: int  # the policy asked, but no gated retraining was possible (e.g. too little history)
    promotions: int
    alarms: int
    alarm_rate: float | None
    data_drift_alarms: int  # steps with dataset drift (calendar effects show here)
    model_drift_alarms: int  # steps with model drift
    matured_steps: int
    mean_spearman: float | None
    worst_spearman: float | None
    mean_mae: float | None
    worst_mae: float | None
    confirmed_alarms: int
    judged_alarms: int
    alarm_precision: float | None
    paired_mean_spearman: float | None = None  # over the steps with a paired quality
    paired_mean_mae: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: its steps, the policies' timelines and summaries, and where they were written."""

    source: str
    start: str
    end: str
    step_days: int
    dates: list[str]  # the step dates replayed
    skipped_dates: list[str]  # step dates without a usable transaction since the previous one: not replayed
    rows_after_last_step: int  # raw rows dated after the last step date, up to end: not replayed
    policies: list[str]
    horizon_days: int
    lookback_days: int
    gate_tolerance: float  # an alarm is confirmed by a realized Spearman this far below the champion's
    steps: list[ReplayStep]
    summaries: list[PolicySummary]
    timeline_path: str
    summary_path: str
    chart_paths: dict[str, str]  # "svg", "html"
    seconds: float  # the whole replay, loading the file included when replay_file loaded it
    phases: dict[str, float]  # wall seconds per phase: load, first champions, clean, detect, retrain, …

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _day(value: str | date | pd.Timestamp, what: str) -> date:
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
            raise ConfigError(f"{what}: expected a date YYYY-MM-DD, got {value!r}")
        try:
            return date.fromisoformat(value.strip())
        except ValueError as e:  # 2011-02-30
            raise ConfigError(f"{what}: {value.strip()} is no calendar date ({e})") from None
    return value if type(value) is date else value.date()  # type: ignore[union-attr]


def _known_at(raw: pd.DataFrame, day: date) -> pd.DataFrame:
    """The raw rows dated before ``day`` + 1 day: what was known at the end of ``day``."""
    import pandas as pd

    return raw.loc[raw[schema.INVOICE_DATE] < pd.Timestamp(day + timedelta(days=1))]


def _dates(start: date, end: date, step_days: int) -> list[date]:
    return [start + timedelta(days=i * step_days) for i in range((end - start).days // step_days + 1)]


def _first_champion(
    ctx: CycleContext, fitted: Any, cleaning: dict[str, Any], source: str, start: date
) -> str:
    """Register ``fitted`` (the model known at ``start``) as the policy's first champion."""
    from clvdrift.pipeline.train import register_version

    version, _, _, _ = register_version(
        fitted,
        registry=ctx.registry,
        models_dir=ctx.workspace.models_dir,
        reference_dir=ctx.workspace.reference_dir,
        cleaning=cleaning,
        fingerprint={"source": source, "known_at": start.isoformat()},
        champion=True,
        run_id=f"replay-initial-{start.isoformat()}",
    )
    return version


def _cycle(
    ctx: CycleContext,
    policy: Policy,
    step: int,
    day: date,
    raw_d: pd.DataFrame,
    cleaned: Cleaned,
    source: str,
    *,
    drift_config: DriftConfig,
    train_config: TrainConfig,
    gate_config: GateConfig,
    timings: Timings,
) -> ReplayStep:
    """One real monitoring cycle of ``policy`` on ``raw_d`` (module docstring; ``cleaned``: its clean
    lines and cleaning report), in its run history; the phases' time is added to ``timings``."""
    from clvdrift.pipeline.cycle import (
        DriftOutcome,
        detect_history,
        finish_decided,
        finish_run,
        retrain,
        start_run,
    )

    run_id = f"replay-{policy.slug}-{day.isoformat()}"
    with timings.step("run history"):
        start_run(ctx, run_id, "replay", "snapshot")
    try:
        with timings.step("detect"):
            detected = detect_history(ctx, raw_d, source, drift_config, cleaned=cleaned)
        outcome = DriftOutcome.of(detected)
        retrained = policy.retrains(step, outcome.retraining_required)
        challenger, gate_outcome, gate_reason = None, None, None
        if retrained:
            try:
                with timings.step("retrain"):
                    challenger = retrain(
                        raw_d,
                        ctx,
                        run_id=run_id,
                        train_config=train_config,
                        gate_config=gate_config,
                        source=source,
                        cleaned=cleaned,
                    )
                gate_outcome, gate_reason = challenger.outcome, challenger.reason
            except DataError as exc:  # e.g. too little history before the step for a gated retraining
                gate_outcome, gate_reason = "error", str(exc)
        # the run history records what the policy did, and why
        why = f"replay policy {policy.name}: " + ("retrain" if retrained else "no retraining")
        recorded = dataclasses.replace(
            outcome, retraining_required=retrained, reasons=[*outcome.reasons, why]
        )
        with timings.step("run history"):
            finish_decided(ctx, run_id, recorded, challenger=challenger)
    except DataError as exc:  # this step cannot be checked (e.g. no customer at its cutoff): recorded
        finish_run(ctx, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        log.info("replay step %s of %s failed: %s", day, policy.name, exc)
        return _failed_step(ctx, policy, step, day, run_id, len(raw_d), str(exc))
    except Exception as exc:  # a bug: the run is recorded as failed and the replay stops
        finish_run(ctx, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    md = detected.model_drift
    champion = ctx.registry.champion()
    ref = md.reference.get("spearman")
    return ReplayStep(
        step=step,
        date=day.isoformat(),
        policy=policy.name,
        run_id=run_id,
        status="success",
        error=None,
        rows=len(raw_d),
        cutoff=detected.current.cutoff,
        drifted_columns=list(detected.data_drift.drifted_columns),
        column_drift={
            c.column: {
                "drifted": bool(c.drifted),
                "test": c.test,
                "statistic": _finite(c.statistic),
                "p_value": _finite(c.p_value),
            }
            for c in detected.data_drift.columns
        },
        dataset_drift=bool(detected.data_drift.dataset_drift),
        model_drift=bool(md.detected),
        model_drift_assessable=bool(md.labels_available),
        retraining_required=bool(detected.retraining_required),
        retrained=retrained,
        gate_outcome=gate_outcome,
        gate_reason=gate_reason,
        challenger_version=challenger.version if challenger else None,
        champion_version=detected.model_version,
        champion_after=champion.version if champion else detected.model_version,
        champion_reference_spearman=ref if ref is not None and math.isfinite(ref) else None,
        quality=(
            {k: _finite(md.current.get(k)) for k in QUALITY_METRICS}
            if md.labels_available and md.current is not None
            else None
        ),
        customers_scored=detected.model_drift_scope.customers_scored if md.labels_available else None,
    )


def _failed_step(
    ctx: CycleContext, policy: Policy, step: int, day: date, run_id: str, rows: int, error: str
) -> ReplayStep:
    """The record of a step whose cycle failed on its data: nothing checked, the champion unchanged."""
    champion = ctx.registry.champion()
    version = champion.version if champion else "?"
    return ReplayStep(
        step=step,
        date=day.isoformat(),
        policy=policy.name,
        run_id=run_id,
        status="failed",
        error=error,
        rows=rows,
        cutoff=None,
        drifted_columns=[],
        column_drift={},
        dataset_drift=False,
        model_drift=False,
        model_drift_assessable=False,
        retraining_required=False,
        retrained=False,
        gate_outcome=None,
        gate_reason=None,
        challenger_version=None,
        champion_version=version,
        champion_after=version,
        champion_reference_spearman=None,
        quality=None,
        customers_scored=None,
    )


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _dropped(step: ReplayStep, tolerance: float) -> bool | None:
    """Whether the step's realized Spearman is below its champion's held-out one by more than
    ``tolerance``; ``None`` when not judgeable (not matured, or undefined)."""
    realized = (step.quality or {}).get("spearman")
    if realized is None or step.champion_reference_spearman is None:
        return None
    return realized < step.champion_reference_spearman - tolerance


def summarize(policy: str, steps: list[ReplayStep], tolerance: float) -> PolicySummary:
    """The :class:`PolicySummary` of one policy's steps (in step order)."""
    matured = [s for s in steps if s.quality is not None]
    spearman = [s.quality["spearman"] for s in matured if s.quality and s.quality["spearman"] is not None]
    mae = [s.quality["mae"] for s in matured if s.quality and s.quality["mae"] is not None]
    confirmed = judged = 0
    for i, s in enumerate(steps):
        if not s.retraining_required:
            continue
        verdicts = [_dropped(s, tolerance)]
        following = next((t for t in steps[i + 1 :] if _dropped(t, tolerance) is not None), None)
        if following is not None:
            verdicts.append(_dropped(following, tolerance))
        known = [v for v in verdicts if v is not None]
        if known:
            judged += 1
            confirmed += any(known)
    alarms = sum(s.retraining_required for s in steps)
    return PolicySummary(
        policy=policy,
        steps=len(steps),
        failed_steps=sum(s.status == "failed" for s in steps),
        retrains=sum(s.gate_outcome in ("promoted", "rejected") for s in steps),
        retrain_errors=sum(s.gate_outcome == "error" for s in steps),
        promotions=sum(s.gate_outcome == "promoted" for s in steps),
        alarms=alarms,
        alarm_rate=alarms / len(steps) if steps else None,
        data_drift_alarms=sum(s.dataset_drift for s in steps),
        model_drift_alarms=sum(s.model_drift for s in steps),
        matured_steps=len(matured),
        mean_spearman=sum(spearman) / len(spearman) if spearman else None,
        worst_spearman=min(spearman) if spearman else None,
        mean_mae=sum(mae) / len(mae) if mae else None,
        worst_mae=max(mae) if mae else None,
        confirmed_alarms=confirmed,
        judged_alarms=judged,
        alarm_precision=confirmed / judged if judged else None,
        paired_mean_spearman=_mean(s.paired_quality.get("spearman") for s in steps if s.paired_quality),
        paired_mean_mae=_mean(s.paired_quality.get("mae") for s in steps if s.paired_quality),
    )


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _check_arguments(
    start: str | date | None, end: str | date | None, step_days: int, policies: list[str] | tuple[str, ...]
) -> list[Policy]:
    """The policies, once the step, the policies and the dates given are known to be valid."""
    if step_days < 1:
        raise ConfigError(f"--step: a step must be at least 1 day, got {step_days}")
    parsed = [parse_policy(p) for p in policies]
    if not parsed:
        raise ConfigError("no replay policy given")
    names = [p.name for p in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"replay policies given twice: {sorted({n for n in names if names.count(n) > 1})}")
    first, last = (
        _day(d, what) if d is not None else None for d, what in ((start, "--start"), (end, "--end"))
    )
    if first is not None and last is not None and first > last:
        raise ConfigError(f"--start {first} is after --end {last}")
    return parsed


REPLAY_LOCK = ".replay.lock"
OUTPUT_FILES = ("timeline.json", "summary.json", "chart.svg", "chart.html")


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Claim:
    """``out_dir`` taken by one replay: its lock file and the folders it created."""

    out_dir: Path
    lock: Path
    folders: list[Path]  # the policy folders
    made: list[Path]  # out_dir and the parents of it that did not exist, deepest first

    def release(self) -> None:
        """Remove the lock, and the folders the replay created when that leaves them empty."""
        self.lock.unlink(missing_ok=True)
        for folder in (self.out_dir / "policies", *self.made):
            with contextlib.suppress(OSError):  # not empty (a finished replay, a user's files): kept
                folder.rmdir()


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _outputs(out_dir: Path, slugs: list[str]) -> list[Path]:
    """What a replay of the policies ``slugs`` writes in ``out_dir``, and so what a killed one leaves:
    its policy folders and the output files; never a path that leads out of ``out_dir``."""
    root = out_dir.resolve()
    paths = [out_dir / "policies" / s for s in slugs if _SLUG.match(s)]
    paths += [out_dir / name for name in OUTPUT_FILES]
    return [p for p in paths if not p.is_symlink() and p.resolve().parent in (root, root / "policies")]


def _read_lock(lock: Path, patience: float = 1.0) -> tuple[int, str, list[str]]:
    """The PID, host tag and policy slugs in ``lock``. Its owner creates it first and writes it next,
    so a lock read in between is empty or partial: read again for up to ``patience`` seconds before
    taking it as unreadable (the last error is raised)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            owner = json.loads(lock.read_text(encoding="utf-8"))
            return int(owner["pid"]), str(owner["host"]), [str(p) for p in owner["policies"]]
        except (ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _take_lock(lock: Path, slugs: list[str]) -> None:
    """Create ``lock`` (O_EXCL) naming this process and the ``slugs`` of its policies. A lock of a
    replay that died without releasing it (killed: its PID is gone on this host) is taken over after
    removing what that replay wrote (:func:`_outputs`); a lock of a live replay, or one that cannot be
    read (:func:`_read_lock`), is a :class:`ConfigError`."""
    from clvdrift.io import host_tag, owner_is_gone

    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid, host, theirs = _read_lock(lock)
            except FileNotFoundError:  # released meanwhile
                continue
            except (OSError, ValueError, KeyError, TypeError):
                raise ConfigError(
                    f"{lock}: a replay lock that cannot be read; choose another output folder (--out), "
                    "or remove the lock if no replay is running there"
                ) from None
            if not owner_is_gone(pid, host):
                raise ConfigError(
                    f"{lock.parent}: another replay (pid {pid}) is writing there; choose another output "
                    f"folder (--out), or remove {lock} if no replay is running"
                ) from None
            log.warning("removing what replay pid %d left in %s when it was killed", pid, lock.parent)
            _remove(_outputs(lock.parent, theirs))
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"pid": os.getpid(), "host": host_tag(), "policies": slugs}, fh)
        return
    raise ConfigError(f"{lock.parent}: other replays keep taking this folder; choose another (--out)")


def _unwritable(out_dir: Path, e: OSError) -> ConfigError:
    return ConfigError(
        f"{out_dir}: cannot write a replay there ({e.strerror or e}); choose another output folder (--out)"
    )


def _claim(out_dir: Path, parsed: list[Policy]) -> _Claim:
    """Take ``out_dir`` for one replay (a lock file, then its policy folders), or a :class:`ConfigError`
    naming why not: a file, a folder that cannot be written, a replay running there or finished there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: is a file, not a folder; choose another output folder (--out)")
    made, folder = [], out_dir.absolute()
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    folders = [out_dir / "policies" / p.slug for p in parsed]
    lock = out_dir / REPLAY_LOCK
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _take_lock(lock, [p.slug for p in parsed])
    except OSError as e:
        for empty in made:
            with contextlib.suppress(OSError):
                empty.rmdir()
        raise _unwritable(out_dir, e) from None
    claim = _Claim(out_dir, lock, [], made)
    try:
        taken = [out_dir / n for n in OUTPUT_FILES[:2] if (out_dir / n).exists()]  # timeline, summary
        taken += [f for f in folders if f.exists()]
        if taken:
            raise ConfigError(
                f"{', '.join(map(str, taken))}: already hold(s) a replay; choose another output "
                "folder (--out)"
            )
        for folder in folders:
            folder.mkdir(parents=True)
            claim.folders.append(folder)
    except BaseException as e:
        _remove(claim.folders)
        claim.release()
        if isinstance(e, OSError):
            raise _unwritable(out_dir, e) from None
        raise
    return claim


def _fit_first_champion(
    clean_start: LineTable,
    tc: TrainConfig,
    start_day: date,
    total: int,
    progress: StepProgress | None,
) -> Any:
    from clvdrift.pipeline.train import fit_version

    features = f"{tc.lookback_days}-day lookback" if tc.lookback_days else "all-history"
    if progress:
        progress(0, total, f"first champion ({features})")
    try:
        return fit_version(clean_start, config=tc)
    except DataError as e:
        raise DataError(f"the first champion at start {start_day} ({features} features): {e}") from e


@dataclass(frozen=True)
class _Champion:
    """What :func:`_paired` needs of a champion: its model, its training facts and customers."""

    model: Any
    training: Any  # TrainingRecord
    trained_on: pd.Index


def _load_champion(ctx: CycleContext, version: str) -> _Champion:
    from clvdrift.model.artifacts import load_model, read_verified
    from clvdrift.model.base import TrainingRecord
    from clvdrift.pipeline.detect import training_customers

    record = ctx.registry.get(version)
    models_dir = ctx.workspace.models_dir
    model = load_model(models_dir, version, expected=record.artifacts)
    trained_on = training_customers(read_verified(models_dir, record.artifacts["reference"]))
    return _Champion(model, TrainingRecord.from_dict(record.training), trained_on)


def _paired(
    day_steps: list[ReplayStep],
    contexts: list[tuple[Policy, CycleContext, TrainConfig, DriftConfig]],
    lines: LineTable,
    champions: dict[tuple[str, str], _Champion],
) -> list[ReplayStep]:
    """``day_steps`` (one per policy, in ``contexts`` order) with each champion's quality on the
    customers that no champion of the same features (target, H, lookback) trained on.

    Each step's own ``quality`` is scored on the customers *its* champion did not train on: a champion
    refitted lately leaves out its training customers, one kept for longer is scored on every customer,
    so their means compare different customers (new customers rank worst). The paired figures score
    every champion of a group on the same customers: the held-out ones (the same for every version,
    :func:`clvdrift.pipeline.train.held_out`) and those new since the latest champion's cutoff."""
    import numpy as np

    from clvdrift.features import build_training_set
    from clvdrift.model.evaluate import regression_metrics

    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (step, (policy, ctx, _tc, _dc)) in enumerate(zip(day_steps, contexts, strict=True)):
        if step.quality is None or step.cutoff is None:
            continue
        key = (policy.slug, step.champion_version)
        if key not in champions:
            champions[key] = _load_champion(ctx, step.champion_version)
        t = champions[key].training
        groups.setdefault((t.target, t.horizon_days, t.lookback_days, step.cutoff), []).append(i)
    out = list(day_steps)
    if not groups:
        return out
    for (target, horizon, lookback, cutoff), members in groups.items():
        ts = build_training_set(
            lines,
            target=target,
            horizon_days=horizon,
            cutoff=cutoff,
            lookback_days=lookback,
            require_labels=False,
        )
        customers = ts.features.index.astype(str)
        common = np.ones(len(customers), dtype=bool)
        group = [champions[(contexts[i][0].slug, day_steps[i].champion_version)] for i in members]
        for champ in group:
            if champ.training.labels_overlap(cutoff, horizon):
                common &= ~customers.isin(champ.trained_on)
        actual = ts.target.to_numpy()[common]  # only these are scored
        for i, champ in zip(members, group, strict=True):
            # every customer's prediction, as the step's drift check made it (shared), then the common ones
            predicted = predict_set(lines, champ.model, ts)[common] if common.any() else np.empty(0)
            metrics = regression_metrics(actual, predicted)
            out[i] = dataclasses.replace(
                out[i],
                paired_quality={k: _finite(metrics[k]) for k in QUALITY_METRICS},
                customers_paired=int(common.sum()),
            )
    return out


def _run_steps(
    contexts: list[tuple[Policy, CycleContext, TrainConfig, DriftConfig]],
    raw: pd.DataFrame,
    dates: list[date],
    source: str,
    gate_config: GateConfig,
    timings: Timings,
    progress: StepProgress | None,
    engines: EngineChoice,
) -> tuple[list[ReplayStep], list[date]]:
    """One cycle per step date and policy, on the raw rows known at that date, cleaned once per step;
    and the step dates skipped: those without a raw row since the step before, or whose new rows
    cleaning removes all (guests, postage, …). Such a step would check the same window again and count
    its alarms, retrains and quality twice. "The same clean rows" is judged on every customer's
    whole-history aggregates (lines, quantities, money, first and last purchase, invoices, products,
    country), which every engine computes alike."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from clvdrift.engines import OpenLines
    from clvdrift.features import AggregateQuery, SharedLines
    from clvdrift.model.fit_worker import active_worker

    total = len(dates) * len(contexts)
    steps: list[ReplayStep] = []
    skipped: list[date] = []
    previous: pd.DataFrame | None = None  # the customers' aggregates of the last step replayed
    opened: OpenLines | None = None  # the engine's lines of the step being replayed
    champions: dict[tuple[str, str], _Champion] = {}  # (policy, version) → its model and training facts
    known = -1  # how many raw rows it had
    cycle_log = logging.getLogger("clvdrift.pipeline.cycle")
    level = cycle_log.level
    cycle_log.setLevel(logging.CRITICAL)  # a line per cycle is noise over hundreds: they are in the timeline
    pool = ThreadPoolExecutor(max_workers=POLICY_THREADS, thread_name_prefix="replay-policy")
    try:
        i = 0
        for day in dates:
            with timings.step("clean"):
                raw_d = _known_at(raw, day)
                if len(raw_d) == known:  # no new row: no need to clean them
                    skipped.append(day)
                    continue
                known = len(raw_d)
                if opened is not None:
                    opened.close()
                    opened = None
                opened = engines.open(raw_d)
                whole = opened.lines.aggregate(AggregateQuery(opened.lines.last_day() + pd.Timedelta(days=1)))
                if previous is not None and previous.equals(whole):
                    skipped.append(day)
                    continue
                previous = whole
                # once for every policy: their checks share its features, their retrainings its fits
                shared = SharedLines(opened.lines)
                cleaned = OpenLines(shared, opened.cleaning, opened.engine, opened.reason, opened.rows)
                lines = shared
            i += 1

            # the step's policies on two threads (each policy's steps stay in date order): while one waits for
            # a fit, the other checks; work they share is done once (SharedLines.once)
            running = []
            for k, (policy, ctx, tc, dc) in enumerate(contexts):
                if progress:
                    progress(len(steps) + k, total, f"{day} {policy.name}")
                running.append(
                    pool.submit(
                        _cycle,
                        ctx,
                        policy,
                        i,
                        day,
                        raw_d,
                        cleaned,
                        f"{source} up to {day}",
                        drift_config=dc,
                        train_config=tc,
                        gate_config=gate_config,
                        timings=timings,
                    )
                )
            steps.extend(future.result() for future in running)
            with timings.step("paired scoring"):
                try:
                    steps[-len(contexts) :] = _paired(steps[-len(contexts) :], contexts, lines, champions)
                except DataError as exc:  # e.g. no customer at the cutoff: the steps keep no paired figure
                    log.info("replay step %s: no paired scoring: %s", day, exc)
            log.info("replay step %s (%d/%d) done", day, i, len(dates))
    except BaseException:  # an error, Ctrl-C or SIGTERM: the cycles under way finish first, without waiting
        worker = (
            active_worker()
        )  # for a fit in the worker process (a stuck one would hold them up for minutes)
        if worker is not None:
            worker.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        cycle_log.setLevel(level)
        if opened is not None:
            opened.close()
    return steps, skipped


def replay(
    raw: pd.DataFrame,
    *,
    out_dir: Path,
    source: str = "transactions",
    start: str | date | None = None,
    end: str | date | None = None,
    step_days: int = DEFAULT_STEP_DAYS,
    policies: list[str] | tuple[str, ...] = DEFAULT_POLICIES,
    lookback_days: int | None = None,
    train_config: TrainConfig = TrainConfig(),
    drift_config: DriftConfig = DriftConfig(),
    gate_config: GateConfig = GateConfig(),
    progress: StepProgress | None = None,
    timings: Timings | None = None,
    engines: EngineChoice | None = None,
) -> ReplayResult:
    """Replay ``policies`` over the raw transactions ``raw`` (module docstring); writes
    ``out_dir/timeline.json``, ``out_dir/summary.json`` and the chart (``chart.svg``, ``chart.html``).
    ``engines`` cleans each step's rows and computes their features (default: pandas).

    ``lookback_days`` (L of the ``-lookback`` policies) defaults to H: features of the last H days
    predict the next H days, and with the default start the first champion's L-day window is full.
    ``progress(done, total, label)`` is called before each cycle (``total``: steps × policies).
    The wall time of each phase is added to ``timings`` (a new one when ``None``) and reported in
    ``ReplayResult.phases``.

    ``start`` defaults to the first day + 2H + ``MIN_FEATURE_DAYS`` (the first date a gated
    retraining is possible; the first day + 2H when the data ends before), ``end`` to the last day
    of the data. :class:`ConfigError` on a bad step, policy or date range; :class:`DataError` when
    the data spans fewer than 2H days (no matured window).
    """
    import time

    from clvdrift.model.fit_worker import booster_worker
    from clvdrift.pipeline.cycle import CycleContext
    from clvdrift.pipeline.retrain import MIN_FEATURE_DAYS
    from clvdrift.render.replay_chart import write_charts

    t0 = time.perf_counter()
    timings = timings if timings is not None else Timings()
    parsed = _check_arguments(start, end, step_days, policies)
    if lookback_days is not None:
        if lookback_days < 1:
            raise ConfigError(
                f"--lookback-days: a lookback window must be at least 1 day, got {lookback_days}"
            )
        if not any(p.lookback for p in parsed):
            raise ConfigError(
                f"--lookback-days {lookback_days}: only the -lookback policies use it, and none is given "
                "(e.g. --policy on-drift-lookback)"
            )
    lookback_days = lookback_days or train_config.horizon_days
    names = [p.name for p in parsed]
    if raw.empty:
        raise DataError(f"{source}: no transactions to replay")
    horizon = train_config.horizon_days
    first = raw[schema.INVOICE_DATE].min().date()
    last = raw[schema.INVOICE_DATE].max().date()
    span = (last - first).days
    if span < 2 * horizon:
        raise DataError(
            f"no matured window: the data spans {span} days, a replay needs at least 2×H = {2 * horizon} days"
        )
    end_day = _day(end, "--end") if end is not None else last
    if end_day > last:  # later steps would repeat the last one and inflate every count
        raise ConfigError(
            f"--end {end_day} is after the data's last day {last}; leave --end out to stop there"
        )
    if end_day < first:
        raise ConfigError(f"--end {end_day} is before the data's first day {first}")
    if start is not None:
        start_day = _day(start, "--start")
        if start_day > end_day:
            raise ConfigError(f"--start {start_day} is after --end {end_day}")
    else:  # the first day a gated retraining is possible, when the data reaches it
        start_day = first + timedelta(days=2 * horizon + MIN_FEATURE_DAYS)
        if start_day > last:
            start_day = first + timedelta(days=2 * horizon)
        if start_day > end_day:
            raise ConfigError(
                f"--end {end_day} is before the default start {start_day} (the data's first day {first} + "
                f"2H + {MIN_FEATURE_DAYS} days); give a later --end, or an earlier --start"
            )
    if (start_day - first).days < horizon + MIN_FEATURE_DAYS:
        raise ConfigError(
            f"--start {start_day} is too early: the first champion needs H + {MIN_FEATURE_DAYS} = "
            f"{horizon + MIN_FEATURE_DAYS} days of data before it (the data starts {first})"
        )
    dates = _dates(start_day, end_day, step_days)
    out_dir = Path(out_dir)
    claim = _claim(out_dir, parsed)
    total = len(dates) * len(parsed)
    timeline_path, summary_path = out_dir / "timeline.json", out_dir / "summary.json"
    from clvdrift.engines import EngineChoice

    chosen = engines or EngineChoice("pandas")
    written = _outputs(out_dir, [p.slug for p in parsed])  # removed when the replay does not finish
    try:
        # many fits in a row: the larger booster of each in a worker process (clvdrift.model.fit_worker)
        with booster_worker():
            # the first champion: what is known at start, fitted once per training config
            contexts: list[tuple[Policy, CycleContext, TrainConfig, DriftConfig]] = []
            with timings.step("first champions"):
                raw_start = _known_at(raw, start_day)
                try:
                    opened = chosen.open(raw_start)
                except DataError as e:
                    raise DataError(
                        f"the first champion, on the rows dated up to the start {start_day}: {e}"
                    ) from e
                with opened:
                    cleaning = opened.cleaning
                    fitted_by_lookback: dict[int | None, Any] = {}
                    for policy in parsed:
                        tc = policy.train_config(train_config, lookback_days)
                        if tc.lookback_days not in fitted_by_lookback:
                            fitted_by_lookback[tc.lookback_days] = _fit_first_champion(
                                opened.lines, tc, start_day, total, progress
                            )
                        ws = Workspace.under(out_dir / "policies" / policy.slug, raw_data=Path(source))
                        ctx = CycleContext.open(ws)
                        _first_champion(
                            ctx, fitted_by_lookback[tc.lookback_days], cleaning.to_dict(), source, start_day
                        )
                        contexts.append((policy, ctx, tc, policy.drift_config(drift_config)))
            steps, skipped = _run_steps(contexts, raw, dates, source, gate_config, timings, progress, chosen)
        dates = [d for d in dates if d not in skipped]
        left_out = len(_known_at(raw, end_day)) - len(_known_at(raw, dates[-1]))
        if progress:
            progress(total, total, "summary")
        summaries = [summarize(p, [s for s in steps if s.policy == p], gate_config.tolerance) for p in names]
        with timings.step("write"):
            timeline = {"schema": TIMELINE_SCHEMA, "steps": [s.to_dict() for s in steps]}
            atomic_write_text(timeline_path, dumps(timeline))
            result = ReplayResult(
                source=source,
                start=start_day.isoformat(),
                end=end_day.isoformat(),
                step_days=step_days,
                dates=[d.isoformat() for d in dates],
                skipped_dates=[d.isoformat() for d in skipped],
                rows_after_last_step=left_out,
                policies=names,
                horizon_days=horizon,
                lookback_days=lookback_days,
                gate_tolerance=gate_config.tolerance,
                steps=steps,
                summaries=summaries,
                timeline_path=str(timeline_path),
                summary_path=str(summary_path),
                chart_paths={"svg": str(out_dir / "chart.svg"), "html": str(out_dir / "chart.html")},
                seconds=0.0,
                phases={},
            )
            summary = {k: v for k, v in result.to_dict().items() if k != "steps"}
            write_charts(timeline, summary, out_dir)
        elapsed = time.perf_counter() - t0 + timings.seconds.get("load", 0.0)
        result = dataclasses.replace(result, seconds=round(elapsed, 3), phases=dict(timings.seconds))
        summary = {k: v for k, v in result.to_dict().items() if k != "steps"}
        atomic_write_text(summary_path, dumps({"schema": SUMMARY_SCHEMA, **summary}))
        return result
    except BaseException:  # an error, Ctrl-C or SIGTERM: remove what this replay wrote, so it can run again
        _remove(written)
        raise
    finally:
        claim.release()


def replay_file(
    path: Path, *, date_format: str | None = None, columns: dict[str, str] | None = None, **kwargs: Any
) -> ReplayResult:
    """:func:`replay` on a transactions file, loaded once."""
    from clvdrift.data import load_transactions

    _check_arguments(
        kwargs.get("start"),
        kwargs.get("end"),
        kwargs.get("step_days", DEFAULT_STEP_DAYS),
        kwargs.get("policies", DEFAULT_POLICIES),
    )
    timings = Timings()
    with timings.step("load"):
        raw = load_transactions(path, date_format=date_format, columns=columns)
    return replay(raw, source=str(path), timings=timings, **kwargs)


def latest_replay(workspace: Workspace) -> Path:
    """The folder of the newest finished replay under ``<reports dir>/replay`` (the default ``--out``):
    the newest by name (a timestamp) with a ``summary.json``; :class:`NotFoundError` when there is none."""
    from clvdrift.errors import NotFoundError

    root = Path(workspace.reports_dir) / "replay"
    done = sorted(p for p in root.glob("*/summary.json") if p.is_file()) if root.is_dir() else []
    if not done:
        raise NotFoundError(f"no replay yet under {root.name}/ of the reports folder; run `clvdrift replay`")
    return done[-1].parent


def latest_replay_summary(workspace: Workspace) -> dict[str, Any]:
    """The newest replay's ``summary.json`` (:func:`latest_replay`), with its folder's name as ``replay``."""
    import json

    folder = latest_replay(workspace)
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary["replay"] = folder.name
    return summary
