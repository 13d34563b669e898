"""The closed loop as ``make demo`` shows it, in a workspace of its own (its own SQLite store and
folders, so a re-run starts afresh and the user's store is untouched): train a champion, then two
monitoring cycles — an unchanged batch (nothing happens) and a drifted one (drift → retrain → gate →
promote or reject)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clvdrift.config import SCENARIO_SEED, DriftConfig, GateConfig, LoopConfig, TrainConfig
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.common import Progress, Workspace
from clvdrift.pipeline.cycle import CycleResult, monitor_cycle
from clvdrift.pipeline.simulate import simulate
from clvdrift.pipeline.train import train


@dataclass(frozen=True)
class LoopStep:
    """One monitoring cycle of the demo and the scenario file it was given."""

    scenario: str
    cycle: CycleResult

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def demo_loop(
    raw_data: Path,
    workspace: Path,
    *,
    seed: int = SCENARIO_SEED,
    train_config: TrainConfig = TrainConfig(),
    drift_config: DriftConfig = DriftConfig(),
    gate_config: GateConfig = GateConfig(),
    scenarios: tuple[str, ...] = ("none", "data-drift"),
    progress: Progress | None = None,
) -> list[LoopStep]:
    """Train a champion in ``workspace``, then one monitoring cycle per scenario file."""
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    ws = Workspace.under(workspace, raw_data)
    train(
        ws.raw_data,
        registry=ModelRegistry(connect(ws.database_url)),
        models_dir=ws.models_dir,
        reference_dir=ws.reference_dir,
        config=train_config,
        progress=progress,
    )
    steps = []
    for scenario in scenarios:
        simulate(ws.raw_data, scenario, seed=seed, current_dir=ws.current_dir)
        cycle = monitor_cycle(
            ws,
            mode="snapshot",
            trigger="cli",
            train_config=train_config,
            drift_config=drift_config,
            gate_config=gate_config,
            # the demo wrote the file itself, atomically (simulate renames it into place): no settling
            loop_config=LoopConfig(settle_seconds=0),
            progress=progress,
        )
        steps.append(LoopStep(scenario, cycle))
    return steps
