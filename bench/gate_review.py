"""The gate's review by replay (issue 16, point 5): which tolerance and primary metric make `on-drift`
retraining pay off, at several start dates and step sizes of the bundled file.

For every (start, step) and every gate setting, one replay of `never` and `on-drift` (the real
monitoring cycle, see `clvdrift replay`); each prints the two policies' **paired** mean realized
Spearman and MAE — both champions scored on the same customers at every matured step (the customers no
champion trained on) — and what `on-drift` did. The last table sums it up per gate setting: in how many
replays `on-drift` is not behind `never` on Spearman and ahead on MAE, and the mean differences.

    python bench/gate_review.py [--grid 2011-06-29:7d,2011-06-29:14d,...] [--gate spearman:0.02,...]
                                [--json PATH]

About 20–30 minutes on the 2-core machine with the defaults. A measurement, not a test: it exits 0
whatever the numbers, 1 only when a replay fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from clvdrift.config import GateConfig
from clvdrift.errors import ClvdriftError
from clvdrift.pipeline.replay import parse_step, replay
from clvdrift.settings import SAMPLE_DATA

DATA = SAMPLE_DATA
GRID = "2011-06-29:7d,2011-06-29:14d,2011-05-04:14d,2011-08-03:7d,2011-04-13:21d"
GATES = "spearman:0.02,spearman:0,spearman:0.05,mae:0.02"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main() -> int:
    from clvdrift.data import load_transactions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--grid", default=GRID, help="comma-separated START:STEP")
    parser.add_argument("--gate", default=GATES, help="comma-separated METRIC:TOLERANCE")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    grid = [(s, parse_step(p)) for s, p in (item.split(":") for item in args.grid.split(","))]
    gates = [
        GateConfig(primary_metric=m, tolerance=float(t))
        for m, t in (g.split(":") for g in args.gate.split(","))
    ]

    raw = load_transactions(args.data)
    results = []
    began = time.perf_counter()
    print(
        f"{'start':<10} {'step':>4} {'gate':<15} {'never Sp':>8} {'on-drift Sp':>11} "
        f"{'never MAE':>9} {'on-drift MAE':>12} {'retrains (promoted)':>19} {'s':>5}"
    )
    for start, step in grid:
        for gate in gates:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="clvdrift-bench-gate-") as tmp:
                try:
                    result = replay(
                        raw,
                        out_dir=Path(tmp) / "replay",
                        source=str(args.data),
                        start=start,
                        step_days=step,
                        policies=["never", "on-drift"],
                        gate_config=gate,
                    )
                except ClvdriftError as e:
                    print(f"replay {start} {step}d {gate}: {e}", file=sys.stderr)
                    return 1
            never, drift = (next(s for s in result.summaries if s.policy == p) for p in ("never", "on-drift"))
            row = {
                "start": start,
                "step_days": step,
                "gate": f"{gate.primary_metric}:{gate.tolerance:g}",
                "steps": len(result.dates),
                "never_spearman": never.paired_mean_spearman,
                "on_drift_spearman": drift.paired_mean_spearman,
                "never_mae": never.paired_mean_mae,
                "on_drift_mae": drift.paired_mean_mae,
                "retrains": drift.retrains,
                "promotions": drift.promotions,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            results.append(row)
            print(
                f"{start:<10} {step:>3}d {row['gate']:<15} {_fmt(row['never_spearman']):>8} "
                f"{_fmt(row['on_drift_spearman']):>11} {_fmt(row['never_mae'], 0):>9} "
                f"{_fmt(row['on_drift_mae'], 0):>12} {f'{drift.retrains} ({drift.promotions})':>19} "
                f"{row['seconds']:>5.0f}",
                flush=True,
            )
    print(f"\nper gate setting over {len(grid)} replays ({time.perf_counter() - began:.0f} s in all):")
    print(
        f"{'gate':<15} {'Sp not behind':>13} {'MAE ahead':>9} {'both':>5} {'mean ΔSp':>9} {'mean ΔMAE %':>11}"
    )
    summary = []
    for gate in {r["gate"]: None for r in results}:
        rows = [r for r in results if r["gate"] == gate and r["on_drift_spearman"] is not None]
        d_sp = [r["on_drift_spearman"] - r["never_spearman"] for r in rows]
        d_mae = [100 * (r["on_drift_mae"] / r["never_mae"] - 1) for r in rows]
        not_behind = sum(d >= -5e-4 for d in d_sp)  # printed to 3 places: -0.0005 rounds to 0.000
        ahead = sum(d < 0 for d in d_mae)
        both = sum(a >= -5e-4 and b < 0 for a, b in zip(d_sp, d_mae, strict=True))
        item = {
            "gate": gate,
            "replays": len(rows),
            "spearman_not_behind": not_behind,
            "mae_ahead": ahead,
            "both": both,
            "mean_delta_spearman": sum(d_sp) / len(d_sp) if d_sp else None,
            "mean_delta_mae_percent": sum(d_mae) / len(d_mae) if d_mae else None,
        }
        summary.append(item)
        print(
            f"{gate:<15} {f'{not_behind}/{len(rows)}':>13} {f'{ahead}/{len(rows)}':>9} "
            f"{f'{both}/{len(rows)}':>5} "
            f"{_fmt(item['mean_delta_spearman'], 4):>9} {_fmt(item['mean_delta_mae_percent'], 1):>11}"
        )
    if args.json:
        args.json.write_text(json.dumps({"replays": results, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
