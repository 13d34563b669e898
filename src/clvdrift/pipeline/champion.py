"""The registry's operations for adapters (the CLI, the service, the worker): :func:`list_versions`,
:func:`get_version`, :func:`collect_garbage`, and champion changes made by hand — ``clvdrift models
promote`` / ``models rollback`` and the HTTP API: :func:`promote` and :func:`rollback`, each recorded as
a run of its own kind and followed by a metrics publication.

- :func:`promote` makes a version the champion. A version the champion/challenger gate rejected
  (its ``training["gate"]["promote"]`` is false) is promoted only with ``force``; without it a
  :class:`ConfigError` (exit 2) quotes the gate's reason. Promoting the champion changes nothing and
  records nothing.
- :func:`rollback` takes the champion off and restores the version that was champion before it,
  walking back the promotion history (A → B → C: C → B → A, then "nothing to roll back to"); versions
  taken off by a rollback are skipped until they are promoted again. ``to`` names the version to restore:
  any version that was champion before (see :meth:`ModelRegistry.rollback`).

Every change is planned first (errors before anything is recorded: unknown version, nothing to roll
back to, the gate's refusal, the version's files missing or modified), then recorded as a ``runs`` row
(kind ``promote`` or ``rollback``, decision the same, started ``running`` with the plan as its inputs),
made in one registry transaction, followed by the champion's files
(:func:`clvdrift.model.artifacts.publish_registry_champion`), finished with ``details`` {action, from,
to; for a promotion forced and gate_reason} and published as metrics
(:func:`clvdrift.pipeline.cycle.publish_metrics`, which adds ``details["metrics"]``), so
``clv_champion_info`` names the new champion at once.

Concurrency: registry writes take turns (the champion lock, ``model/registry.py``). A rollback's
transaction checks that the champion is still the one it planned from; when another change took it
off meanwhile (two rollbacks at once), nothing changes and the run ends ``failed`` with a
:class:`RegistryError` that says so — two rollbacks never both roll back from the same champion, and
every successful run's ``from`` is the champion its transaction replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.errors import ClvdriftError, ConfigError
from clvdrift.io import ProcessIdentity
from clvdrift.jsonable import dataclass_dict
from clvdrift.observability.logging import get_logger, log_context
from clvdrift.observability.metrics import PublishOutcome
from clvdrift.pipeline.common import Workspace, new_id
from clvdrift.pipeline.cycle import CycleContext, publish_metrics

if TYPE_CHECKING:
    from clvdrift.model.registry import ChampionSwap, ModelRegistry, ModelVersion

__all__ = [
    "ChampionChange",
    "ChangeKind",
    "collect_garbage",
    "gate_rejection",
    "get_version",
    "list_versions",
    "open_registry",
    "promote",
    "rollback",
]

log = get_logger(__name__)
ChangeKind = Literal["promote", "rollback"]


@dataclass(frozen=True)
class ChampionChange:
    """One champion change made by hand, as recorded in the run history (``to_dict()`` for ``--json``
    and the API)."""

    run_id: str | None
    """The ``runs`` row of the change; ``None`` when nothing changed (the version was champion already)."""
    kind: ChangeKind
    from_version: str | None
    """The champion the change replaced (``None``: there was none)."""
    to_version: str
    """The champion now."""
    changed: bool
    forced: bool
    """A promotion that overrode the gate's rejection of ``to_version``."""
    gate_reason: str | None
    """The gate's reason recorded with ``to_version`` (promotions of a retrained version), else ``None``."""
    metrics: PublishOutcome | None
    """Where the metrics went after the change (``None`` when nothing changed)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def gate_rejection(version: ModelVersion) -> str | None:
    """The gate's reason when it rejected ``version`` (its ``training["gate"]``), else ``None``."""
    gate = version.training.get("gate")
    if isinstance(gate, dict) and gate.get("promote") is False:
        return _one_line(gate.get("reason")) or "no reason recorded"
    return None


def _gate_reason(version: ModelVersion) -> str | None:
    gate = version.training.get("gate")
    return _one_line(gate.get("reason")) if isinstance(gate, dict) else None


def _one_line(value: Any) -> str | None:
    return " ".join(str(value).split()) if value else None


def open_registry(database_url: str) -> ModelRegistry:
    """The model registry of the store at ``database_url`` (created and migrated when new)."""
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    return ModelRegistry(connect(database_url))


def list_versions(database_url: str) -> list[ModelVersion]:
    """Every registered version, newest first."""
    return open_registry(database_url).list_versions()


def get_version(database_url: str, version: str) -> ModelVersion:
    """One registered version; :class:`NotFoundError` when unknown."""
    return open_registry(database_url).get(version)


def collect_garbage(workspace: Workspace, *, dry_run: bool = False) -> list[Path]:
    """Remove artifact files of versions that are not in the registry and temporary files of killed runs
    (the models, reference, current and reports folders); the files removed (or, ``dry_run``, that would
    be)."""
    from clvdrift.io import remove_stale_temp_files
    from clvdrift.model import artifacts

    removed = artifacts.collect_garbage(
        open_registry(workspace.database_url), workspace.models_dir, dry_run=dry_run
    )
    for folder in (workspace.reference_dir, workspace.current_dir, workspace.reports_dir):
        removed += remove_stale_temp_files(folder, dry_run=dry_run)
    return removed


def promote(
    workspace: Workspace,
    version: str,
    *,
    force: bool = False,
    trigger: str = "cli",
    expected_champion: str | None | bool = False,
) -> ChampionChange:
    """Make ``version`` the champion (module docstring); ``force`` overrides the gate's rejection.

    Raises :class:`RegistryError` for an unknown version, :class:`ConfigError` for a gate-rejected
    version without ``force``, :class:`ArtifactError` when its files are missing or modified,
    :class:`ConflictError` when ``expected_champion`` (a version or ``None``; ``False``: any) is no
    longer the champion when the change is made.
    """
    ctx = CycleContext.open(workspace)
    target = ctx.registry.get(version)
    current = ctx.registry.champion()
    reason = _gate_reason(target)
    if current is not None and current.version == target.version:
        return ChampionChange(None, "promote", version, version, False, False, reason, None)
    rejected = gate_rejection(target)
    if rejected is not None and not force:
        raise ConfigError(
            f"model version {version} was rejected by the champion/challenger gate: {rejected}; "
            "promote it with --force to override the gate"
        )
    _check_files(ctx, target)
    forced = rejected is not None
    return _change(
        ctx,
        "promote",
        trigger,
        planned=(current.version if current else None, version),
        change=lambda: ctx.registry.swap_champion(version, expected_champion=expected_champion),
        extra={"forced": forced, "gate_reason": reason},
        inputs={"force": force},
    )


def rollback(
    workspace: Workspace, *, to: str | None = None, trigger: str = "cli", expected_champion: str | None = None
) -> ChampionChange:
    """Restore the previous champion, or ``to`` (module docstring); with ``expected_champion``, only when
    that version is still the champion (:class:`ConflictError` otherwise, nothing changed).

    Raises :class:`RegistryError` when there is nothing to roll back to, ``to`` is unknown, the
    champion or never was one, or another change took the champion off meanwhile;
    :class:`ArtifactError` when the files of the version to restore are missing or modified.
    """
    ctx = CycleContext.open(workspace)
    if expected_champion is not None:
        current = ctx.registry.champion()
        if current is None or current.version != expected_champion:
            from clvdrift.errors import ConflictError

            raise ConflictError(
                f"the champion is {current.version if current else 'none'}, not {expected_champion}: "
                "another change was made meanwhile, so nothing was rolled back"
            )
    plan = ctx.registry.plan_rollback(to)
    assert plan.previous is not None  # a rollback starts from a champion
    _check_files(ctx, plan.champion)
    expected = plan.previous.version
    return _change(
        ctx,
        "rollback",
        trigger,
        planned=(expected, plan.champion.version),
        change=lambda: ctx.registry.rollback(to, expected_champion=expected),
        extra={},
        inputs={"requested": to},
    )


def _check_files(ctx: CycleContext, version: ModelVersion) -> None:
    """The version's files are there and unmodified (so the change can publish them), before any change."""
    from clvdrift.model.artifacts import read_metadata, verify_artifacts

    verify_artifacts(ctx.workspace.models_dir, version.artifacts)
    read_metadata(ctx.workspace.models_dir, version.version)


def _change(
    ctx: CycleContext,
    kind: ChangeKind,
    trigger: str,
    *,
    planned: tuple[str | None, str],
    change: Callable[[], ChampionSwap],
    extra: dict[str, Any],
    inputs: dict[str, Any],
) -> ChampionChange:
    """Record the run, make the change, publish the files, finish the run, publish the metrics."""
    from clvdrift.model.artifacts import publish_registry_champion
    from clvdrift.store.runs import RunStore

    runs = RunStore(ctx.engine)
    run_id = new_id(kind)
    runs.start(
        run_id,
        trigger,
        {"action": kind, "from": planned[0], "to": planned[1], **inputs},
        kind=kind,
        owner=ProcessIdentity.current(),
    )
    swap: ChampionSwap | None = None
    with log_context(run_id=run_id):
        try:
            swap = change()
            publish_registry_champion(ctx.registry, ctx.workspace.models_dir, ctx.workspace.reference_dir)
        except BaseException as exc:
            if isinstance(exc, ClvdriftError):
                error = str(exc)
            elif isinstance(exc, Exception):
                error = f"unexpected {type(exc).__name__}: {exc}"
            else:  # Ctrl-C, SIGTERM
                error = f"stopped ({type(exc).__name__})"
            if swap is not None:
                error += (
                    f" (the registry's champion is {swap.champion.version} now; the next `clvdrift monitor` "
                    "publishes its files)"
                )
            runs.finish(run_id, status="failed", error=error, decision=kind)
            log.error("%s failed: %s", kind, error, extra={"decision": kind, "status": "failed"})
            publish_metrics(ctx, run_id)
            raise
        before = swap.previous.version if swap.previous else None
        after = swap.champion.version
        runs.finish(
            run_id,
            status="success",
            decision=kind,
            champion_version=after,
            details={"action": kind, "from": before, "to": after, **extra},
        )
        with log_context(model_version=after):
            log.info(
                "%s: model version %s is the champion (was %s)",
                kind,
                after,
                before,
                extra={"decision": kind, "status": "success"},
            )
            metrics = publish_metrics(ctx, run_id)
    return ChampionChange(
        run_id=run_id,
        kind=kind,
        from_version=before,
        to_version=after,
        changed=True,
        forced=bool(extra.get("forced", False)),
        gate_reason=extra.get("gate_reason"),
        metrics=metrics,
    )
