"""Benchmark clvdrift's data-drift check against Evidently 0.7's DataDriftPreset.

For each size N (rows per side) it generates a synthetic customer-feature reference table, with five
narrow-spread, large-offset columns beside the CLV features (coordinates, kelvin, epoch seconds within a
month, epoch milliseconds within a year, a price of 1000 +- 5), and two current tables (no drift,
injected drift); and one "chi-square with new categories" case: a reference of 800 rows (so Evidently
picks KS and chi-square) against a window of the same distribution where 5 % of the rows hold countries
the reference never saw.  In the same run it measures:

* building the reference profile (time, JSON size);
* our check with the profile already built (wall time; peak traced memory in a second run);
* Evidently's ``Report([DataDriftPreset(drift_share=0.5)], include_tests=True).run(current, reference)``
  (wall time including ``Dataset.from_pandas``);
* agreement of the per-column drift decisions (ours vs the ValueDrift tests' statuses).

Usage::

    DO_NOT_TRACK=1 .venv/bin/python bench/drift_vs_evidently.py --sizes 4000,100000 --json out.json
    DO_NOT_TRACK=1 .venv/bin/python bench/drift_vs_evidently.py            # 4000,100000,1000000

Targets (checked and printed): check at 1,000,000 rows <= 1.5 s and >= 30x faster than Evidently;
profile build at 1,000,000 rows <= 3 s; agreement >= 99 %; peak memory of the check <= 2 x (current
frame + profile).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("DO_NOT_TRACK", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from clvdrift.config import DriftConfig
from clvdrift.drift import build_profile, detect_data_drift
from clvdrift.features import NUMERIC_FEATURES

NUMERICAL = [*NUMERIC_FEATURES, "target", "prediction"]
CATEGORICAL = ["Country"]
COUNTRIES = ["United Kingdom"] + [f"Country{i:02d}" for i in range(1, 38)]
NARROW = ["Latitude", "Kelvin", "EpochSeconds", "EpochMillis", "Price1000"]
TABLE_NUMERICAL = [*NUMERICAL, *NARROW]
NEW_CATEGORIES_REFERENCE_ROWS = 800  # <= 1000: Evidently's chi-square for Country, KS for numbers
NEW_CATEGORY_SHARE = 0.05


def make_customers(n: int, seed: int, drift: bool = False) -> pd.DataFrame:
    """Synthetic customer features with realistic skewed / integer distributions.

    ``drift=True`` shifts Recency (+30 days), scales Monetary (x1.4) and AvgUnitPrice (x1.25),
    inflates Frequency/NumOrders (x1.5) and moves Country mix (UK 90 % -> 70 %).
    """
    rng = np.random.default_rng(seed)
    frequency = 1 + rng.negative_binomial(1, 0.22, n)  # 1.., mean ~4.5, heavy tail
    if drift:
        frequency = np.ceil(frequency * 1.5).astype(np.int64)
    num_orders = np.maximum(1, frequency - rng.binomial(frequency - 1, 0.1))
    avg_quantity = np.round(rng.lognormal(2.3, 0.8, n), 2)
    total_quantity = np.maximum(1, np.round(avg_quantity * frequency * rng.uniform(0.8, 1.2, n))).astype(
        np.int64
    )
    avg_unit_price = np.round(rng.lognormal(1.0, 0.6, n) * (1.25 if drift else 1.0), 2)
    monetary = np.round(
        total_quantity * avg_unit_price * rng.lognormal(0.0, 0.3, n) * (1.4 if drift else 1.0), 2
    )
    recency = np.minimum(373, rng.exponential(85.0, n).astype(np.int64) + (30 if drift else 0))
    num_products = 1 + rng.poisson(np.sqrt(total_quantity) * 2.0)
    p_uk = 0.70 if drift else 0.90
    weights = 1.0 / np.arange(1, 38) ** 1.3
    probs = np.concatenate(([p_uk], (1 - p_uk) * weights / weights.sum()))
    country = rng.choice(np.array(COUNTRIES, dtype=object), size=n, p=probs)
    active = rng.random(n) > 0.3 + recency / 1500.0
    target = np.round(np.where(active, monetary * rng.lognormal(-0.3, 0.5, n), 0.0), 2)
    prediction = np.round(np.maximum(0.0, monetary * 0.6 * rng.lognormal(0.0, 0.3, n) - recency * 0.5), 2)
    return pd.DataFrame(
        {
            "Recency": recency,
            "Frequency": frequency,
            "Monetary": monetary,
            "AvgQuantity": avg_quantity,
            "TotalQuantity": total_quantity,
            "AvgUnitPrice": avg_unit_price,
            "NumOrders": num_orders,
            "NumProducts": num_products,
            "Country": country,
            "target": target,
            "prediction": prediction,
        }
    )


def add_narrow_spread(frame: pd.DataFrame, seed: int, drift: bool = False) -> pd.DataFrame:
    """Add the five narrow-spread, large-offset columns, at the precision such data has.

    ``drift=True`` moves each by about half a standard deviation or more: +0.03 degrees, +3 K,
    +10 days, +2 months, +3 (price).
    """
    rng = np.random.default_rng(seed + 1000)
    n = len(frame)
    month, year_ms = 30 * 86_400, 365 * 86_400_000
    return frame.assign(
        Latitude=np.round(51.5 + rng.normal(0.0, 0.05, n) + (0.03 if drift else 0.0), 6),
        Kelvin=np.round(290.0 + rng.normal(0.0, 5.0, n) + (3.0 if drift else 0.0), 2),
        EpochSeconds=1_700_000_000 + rng.integers(0, month, n) + (10 * 86_400 if drift else 0),
        EpochMillis=1_700_000_000_000 + rng.integers(0, year_ms, n) + (year_ms // 6 if drift else 0),
        Price1000=np.round(1000.0 + rng.normal(0.0, 5.0, n) + (3.0 if drift else 0.0), 2),
    )


def table(n: int, seed: int, drift: bool = False) -> pd.DataFrame:
    """The benchmark table: :func:`make_customers` plus :func:`add_narrow_spread`."""
    return add_narrow_spread(make_customers(n, seed, drift), seed, drift)


def with_new_categories(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``frame`` with :data:`NEW_CATEGORY_SHARE` of its Country values replaced by unseen countries."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    hit = rng.random(len(out)) < NEW_CATEGORY_SHARE
    out.loc[hit, "Country"] = rng.choice([f"NewCountry{i}" for i in range(5)], int(hit.sum()))
    return out


def evidently_verdicts(
    current: pd.DataFrame, reference: pd.DataFrame
) -> tuple[dict[str, dict[str, Any]], float]:
    """Per-column Evidently verdicts (method, score, drifted) and the wall time."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    dd = DataDefinition(numerical_columns=TABLE_NUMERICAL, categorical_columns=CATEGORICAL)
    cur_ds = Dataset.from_pandas(current, data_definition=dd)
    ref_ds = Dataset.from_pandas(reference, data_definition=dd)
    snapshot = Report([DataDriftPreset(drift_share=0.5)], include_tests=True).run(cur_ds, ref_ds)
    elapsed = time.perf_counter() - t0
    d = snapshot.dict()
    out: dict[str, dict[str, Any]] = {}
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith(":ValueDrift"):
            out[cfg["column"]] = {"method": cfg["method"], "score": float(m["value"])}
    for t in d["tests"]:
        params = t["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            out[params["column"]]["drifted"] = str(t["status"]).endswith("FAIL")
    return out, elapsed


def traced_peak(fn: Any) -> int:
    """Peak bytes allocated (tracemalloc) while running ``fn``."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def run_size(n: int, *, repeats: int, skip_evidently: bool) -> dict[str, Any]:
    """The no-drift and drift cases at ``n`` rows per side."""
    reference = table(n, seed=1)
    cases = {"no_drift": table(n, seed=2), "drift": table(n, seed=3, drift=True)}
    return measure(reference, cases, repeats=repeats, skip_evidently=skip_evidently)


def run_new_categories(*, repeats: int, skip_evidently: bool) -> dict[str, Any]:
    """A small reference (chi-square for Country) against a window holding unseen countries."""
    n = NEW_CATEGORIES_REFERENCE_ROWS
    current = with_new_categories(table(n, seed=5), seed=6)
    return measure(table(n, seed=4), {"new_cats": current}, repeats=repeats, skip_evidently=skip_evidently)


def measure(
    reference: pd.DataFrame, cases: dict[str, pd.DataFrame], *, repeats: int, skip_evidently: bool
) -> dict[str, Any]:
    """Profile ``reference`` and compare our check with Evidently's on every case."""
    n = len(reference)
    t0 = time.perf_counter()
    profile = build_profile(reference, numerical_columns=TABLE_NUMERICAL, categorical_columns=CATEGORICAL)
    build_s = time.perf_counter() - t0
    profile_bytes = len(profile.to_json().encode("utf-8"))

    row: dict[str, Any] = {
        "rows_per_side": n,
        "profile_build_s": build_s,
        "profile_json_bytes": profile_bytes,
        "cases": {},
    }
    for case, current in cases.items():
        detect_data_drift(profile, current)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ours = detect_data_drift(profile, current)
            times.append(time.perf_counter() - t0)
        our_s = min(times)
        frame_bytes = int(current.memory_usage(deep=True).sum())
        peak = traced_peak(lambda cur=current: detect_data_drift(profile, cur))
        t0 = time.perf_counter()
        detect_data_drift(profile, current, DriftConfig(calibrate=True, fdr=True))
        calibrated_s = time.perf_counter() - t0
        c: dict[str, Any] = {
            "our_s": our_s,
            "our_calibrated_s": calibrated_s,
            "our_dataset_drift": ours.dataset_drift,
            "our_drifted": ours.drifted_columns,
            "current_frame_bytes": frame_bytes,
            "check_peak_traced_bytes": peak,
            "memory_ratio": peak / (frame_bytes + profile_bytes),
        }
        if not skip_evidently:
            ev, ev_s = evidently_verdicts(current, reference)
            pairs = agree = 0
            disagreements = []
            for col in ours.columns:
                e = ev[col.column]
                pairs += 1
                if e["drifted"] == col.drifted:
                    agree += 1
                else:
                    ours_val = col.p_value if col.p_value is not None else col.statistic
                    disagreements.append(
                        f"{case}/{col.column}: ours {col.test}={ours_val:.6g} drifted={col.drifted}; "
                        f"evidently {e['method']}={e['score']:.6g} drifted={e['drifted']}"
                    )
            c.update(
                {
                    "evidently_s": ev_s,
                    "speedup": ev_s / our_s,
                    "pairs": pairs,
                    "agree": agree,
                    "disagreements": disagreements,
                    "evidently_drifted": [k for k, v in ev.items() if v["drifted"]],
                    "score_pairs": {
                        col.column: [
                            col.p_value if col.p_value is not None else col.statistic,
                            ev[col.column]["score"],
                        ]
                        for col in ours.columns
                    },
                }
            )
        row["cases"][case] = c
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="4000,100000,1000000", help="comma-separated rows per side")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of our check (min is kept)")
    parser.add_argument("--skip-evidently", action="store_true", help="only time our side")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    print("... chi-square with new categories", file=sys.stderr, flush=True)
    rows = [run_new_categories(repeats=args.repeats, skip_evidently=args.skip_evidently)]
    for n in sizes:
        print(f"... {n:,} rows per side", file=sys.stderr, flush=True)
        rows.append(run_size(n, repeats=args.repeats, skip_evidently=args.skip_evidently))

    header = (
        f"{'rows/side':>10} {'case':>9} {'build s':>8} {'prof KB':>8} {'ours s':>8} {'calib s':>8} "
        f"{'evid s':>8} {'speedup':>8} {'agree':>7} {'peak MB':>8} {'frame MB':>9} {'mem x':>6}"
    )
    print(header)
    print("-" * len(header))
    total_pairs = total_agree = 0
    all_disagreements: list[str] = []
    for r in rows:
        for case, c in r["cases"].items():
            ev_s = f"{c['evidently_s']:8.2f}" if "evidently_s" in c else f"{'-':>8}"
            sp = f"{c['speedup']:7.0f}x" if "speedup" in c else f"{'-':>8}"
            ag = f"{c['agree']:>3}/{c['pairs']:<3}" if "pairs" in c else f"{'-':>7}"
            print(
                f"{r['rows_per_side']:>10,} {case:>9} {r['profile_build_s']:8.3f} "
                f"{r['profile_json_bytes'] / 1024:8.0f} {c['our_s']:8.3f} {c['our_calibrated_s']:8.3f} "
                f"{ev_s} {sp} {ag} {c['check_peak_traced_bytes'] / 2**20:8.1f} "
                f"{c['current_frame_bytes'] / 2**20:9.1f} {c['memory_ratio']:6.2f}"
            )
            total_pairs += c.get("pairs", 0)
            total_agree += c.get("agree", 0)
            all_disagreements += [f"{r['rows_per_side']}: {d}" for d in c.get("disagreements", [])]
    summary: dict[str, Any] = {"sizes": rows}
    if total_pairs:
        share = total_agree / total_pairs
        summary["agreement"] = share
        print(f"\nper-column decision agreement with Evidently: {total_agree}/{total_pairs} = {share:.1%}")
        print("disagreements:" if all_disagreements else "disagreements: none")
        for d in all_disagreements:
            print("  " + d)
    checks = []
    for r in rows:
        if r["rows_per_side"] >= 1_000_000:
            worst = max(c["our_s"] for c in r["cases"].values())
            checks.append((f"check at {r['rows_per_side']:,} rows <= 1.5 s", worst <= 1.5, f"{worst:.3f} s"))
            checks.append(
                (
                    f"profile build at {r['rows_per_side']:,} rows <= 3 s",
                    r["profile_build_s"] <= 3.0,
                    f"{r['profile_build_s']:.3f} s",
                )
            )
            if all("speedup" in c for c in r["cases"].values()):
                sp = min(c["speedup"] for c in r["cases"].values())
                checks.append((f"speed-up at {r['rows_per_side']:,} rows >= 30x", sp >= 30, f"{sp:.0f}x"))
    if total_pairs:
        checks.append(
            ("agreement >= 99 %", total_agree / total_pairs >= 0.99, f"{total_agree / total_pairs:.1%}")
        )
    worst_mem = max(c["memory_ratio"] for r in rows for c in r["cases"].values())
    checks.append(("check peak memory <= 2 x (frame + profile)", worst_mem <= 2.0, f"{worst_mem:.2f} x"))
    print("\ntargets:")
    for name, ok, val in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {val}")
    summary["targets"] = [{"target": n, "pass": ok, "value": v} for n, ok, v in checks]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
