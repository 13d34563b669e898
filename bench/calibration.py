"""False alarms and power of the drift check, calibrated and not, on windows drawn independently of the
reference.

Design (issue 6, A4):

* a synthetic population of ``--population`` (default 1,000,000) CLV-shaped customers (heavy-tailed
  money, counts, zero-inflated target and prediction, a 38-level Country: ``make_customers`` of
  ``bench/drift_vs_evidently.py``, seeded);
* ``--references`` references (default 200: one per window) of ``--reference-rows`` (default 3,000) rows
  drawn from it without replacement; for each, ``--windows`` / ``--references`` windows of 100, 1,000
  and 10,000 rows drawn from the rows NOT in that reference (a window shares no row with its
  reference). A false-alarm rate is a property of the procedure over both samples, so each window gets
  its own reference by default;
* every window checked with ``DriftConfig(calibrate=True)`` and with the default (uncalibrated) rule:
  per-column false-alarm rate, dataset-level false-alarm rate (share of drifted columns >= 0.5 OR a key
  column - Monetary, prediction - drifted; calibrated: key columns at alpha / 2, Bonferroni);
* the same against ONE fixed reference (the rate conditional on that reference: it varies with how far
  the reference happens to lie from its population, most when the window is larger than the reference);
* power: the same windows with money columns (Monetary, AvgUnitPrice, target, prediction) x 1.3;
* the real customers: features and holdout target of the bundled file (cutoff 2011-09-09, 91 days)
  split at random into two halves ``--splits`` times (reference half, window half);
* the cost of a calibrated check of 1,000,000 rows against a profile of 1,000,000 rows.

Usage::

    .venv/bin/python bench/calibration.py                 # the full table (a few minutes)
    .venv/bin/python bench/calibration.py --quick         # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from drift_vs_evidently import CATEGORICAL, NUMERICAL, make_customers  # noqa: E402

from clvdrift.config import DriftConfig  # noqa: E402
from clvdrift.drift import DataDriftResult, ReferenceProfile, build_profile, detect_data_drift  # noqa: E402
from clvdrift.settings import SAMPLE_DATA  # noqa: E402

WINDOWS = (100, 1_000, 10_000)
KEYS = ("Monetary", "prediction")
MONEY = ("Monetary", "AvgUnitPrice", "target", "prediction")
SHIFT = 1.3
CALIBRATED = DriftConfig(calibrate=True, key_columns=KEYS)
RAW = DriftConfig(key_columns=KEYS)


def _profile(frame: pd.DataFrame) -> ReferenceProfile:
    return build_profile(frame, numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)


def _shifted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in MONEY:
        out[c] = np.round(out[c] * SHIFT, 2)
    return out


class Tally:
    """Counts of drifted decisions per column and at dataset level."""

    def __init__(self) -> None:
        self.n = 0
        self.columns: dict[str, int] = {}
        self.dataset = 0

    def add(self, res: DataDriftResult) -> None:
        self.n += 1
        self.dataset += res.dataset_drift
        for col in res.columns:
            self.columns[col.column] = self.columns.get(col.column, 0) + col.drifted

    def rate(self, column: str | None = None) -> float:
        hits = self.dataset if column is None else self.columns[column]
        return hits / self.n if self.n else math.nan

    def mean_column_rate(self) -> float:
        return sum(self.columns.values()) / (self.n * len(self.columns)) if self.n else math.nan


def run_windows(
    population: pd.DataFrame,
    references: int,
    windows: int,
    reference_rows: int,
    rng: np.random.Generator,
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    fixed: bool = False,
) -> dict[tuple[int, str], Tally]:
    """Tallies keyed by (window size, "calibrated" | "raw")."""
    tallies = {(w, kind): Tally() for w in WINDOWS for kind in ("calibrated", "raw")}
    n = len(population)
    per_ref = windows if fixed else max(1, windows // references)
    for r in range(1 if fixed else references):
        order = rng.permutation(n)
        ref_rows, rest = order[:reference_rows], order[reference_rows:]
        profile = _profile(population.iloc[ref_rows])
        for w in WINDOWS:
            for k in range(per_ref):
                window = population.iloc[rng.choice(rest, w, replace=False)].reset_index(drop=True)
                if transform is not None:
                    window = transform(window)
                seed = r * 100_000 + k
                tallies[(w, "calibrated")].add(
                    detect_data_drift(profile, window, CALIBRATED.model_copy(update={"seed": seed}))
                )
                tallies[(w, "raw")].add(detect_data_drift(profile, window, RAW))
    return tallies


def real_customer_halves(splits: int, rng: np.random.Generator) -> tuple[Tally, Tally, int]:
    """Disjoint random halves of the bundled file's customers: (calibrated, raw) tallies, customers."""
    from clvdrift.data import clean_transactions, load_transactions
    from clvdrift.features import build_training_set

    tx = clean_transactions(load_transactions(SAMPLE_DATA))[0]
    ts = build_training_set(tx, target="holdout", horizon_days=91, cutoff="2011-09-09")
    frame = ts.features.assign(target=ts.target.to_numpy()).reset_index(drop=True)
    num = [c for c in frame.columns if c != "Country"]
    cal_cfg = DriftConfig(calibrate=True, key_columns=("Monetary",))
    raw_cfg = DriftConfig(key_columns=("Monetary",))
    cal, raw = Tally(), Tally()
    half = len(frame) // 2
    for s in range(splits):
        order = rng.permutation(len(frame))
        ref, cur = frame.iloc[order[:half]], frame.iloc[order[half:]].reset_index(drop=True)
        profile = build_profile(ref, numerical_columns=num, categorical_columns=["Country"])
        cal.add(detect_data_drift(profile, cur, cal_cfg.model_copy(update={"seed": s})))
        raw.add(detect_data_drift(profile, cur, raw_cfg))
    return cal, raw, len(frame)


def cost_at(n: int, repeats: int = 3) -> tuple[float, float]:
    """Best-of wall time of the check of ``n`` rows against a profile of ``n`` rows: (raw, calibrated)."""
    profile = _profile(make_customers(n, seed=11))
    current = make_customers(n, seed=12)
    out = []
    for cfg in (DriftConfig(), DriftConfig(calibrate=True)):
        detect_data_drift(profile, current, cfg)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            detect_data_drift(profile, current, cfg)
            times.append(time.perf_counter() - t0)
        out.append(min(times))
    return out[0], out[1]


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def print_rates(title: str, tallies: dict[tuple[int, str], Tally], columns: list[str]) -> None:
    print(f"\n### {title}\n")
    head = " | ".join(f"{w:,} cal" for w in WINDOWS) + " | " + " | ".join(f"{w:,} raw" for w in WINDOWS)
    print(f"| column | {head} |")
    print("| --- |" + " ---: |" * (2 * len(WINDOWS)))
    for c in columns:
        cells = [_pct(tallies[(w, k)].rate(c)) for k in ("calibrated", "raw") for w in WINDOWS]
        print(f"| {c} | " + " | ".join(cells) + " |")
    cells = [_pct(tallies[(w, k)].mean_column_rate()) for k in ("calibrated", "raw") for w in WINDOWS]
    print("| **mean over columns** | " + " | ".join(cells) + " |")
    cells = [_pct(tallies[(w, k)].rate()) for k in ("calibrated", "raw") for w in WINDOWS]
    print("| **dataset level** | " + " | ".join(cells) + " |")
    print(f"\n({tallies[(WINDOWS[0], 'calibrated')].n} windows per size)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", type=int, default=1_000_000)
    ap.add_argument("--reference-rows", type=int, default=3_000)
    ap.add_argument("--references", type=int, default=200, help="references drawn (default: one per window)")
    ap.add_argument("--windows", type=int, default=200, help="windows per size (spread over the references)")
    ap.add_argument("--power-windows", type=int, default=100)
    ap.add_argument("--splits", type=int, default=200, help="random halves of the real customers")
    ap.add_argument("--quick", action="store_true", help="100k population, 60 windows, 40 splits")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    if args.quick:
        args.population, args.windows, args.power_windows, args.splits, args.references = (
            100_000,
            60,
            30,
            40,
            6,
        )
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    population = make_customers(args.population, seed=args.seed)
    columns = [*NUMERICAL, *CATEGORICAL]
    print(
        f"population {args.population:,} rows; reference {args.reference_rows:,} rows; windows disjoint from "
        f"their reference; calibration: {CALIBRATED.calibration_trials} permutation splits, level "
        f"{CALIBRATED.calibration_alpha:g}; key columns {', '.join(KEYS)}"
    )

    nulls = run_windows(population, args.references, args.windows, args.reference_rows, rng)
    print_rates(f"False alarms: {args.references} references, windows spread over them", nulls, columns)
    fixed = run_windows(population, 1, args.windows, args.reference_rows, rng, fixed=True)
    print_rates("False alarms against ONE fixed reference (conditional on it)", fixed, columns)
    power = run_windows(
        population, args.references, args.power_windows, args.reference_rows, rng, transform=_shifted
    )
    print_rates(f"Power: {', '.join(MONEY)} x {SHIFT}", power, columns)

    cal, raw, n_customers = real_customer_halves(args.splits, rng)
    print(f"\n### Real customers: {n_customers:,} customers split into random halves {cal.n} times\n")
    print("| | calibrated | raw |\n| --- | ---: | ---: |")
    print(f"| mean column false alarms | {_pct(cal.mean_column_rate())} | {_pct(raw.mean_column_rate())} |")
    print(f"| dataset level (key column Monetary) | {_pct(cal.rate())} | {_pct(raw.rate())} |")
    for c in sorted(cal.columns):
        print(f"| {c} | {_pct(cal.rate(c))} | {_pct(raw.rate(c))} |")

    raw_s, cal_s = cost_at(1_000_000 if not args.quick else 100_000)
    rows = "1,000,000" if not args.quick else "100,000"
    print(f"\n### Cost of one check, {rows} rows vs a profile of {rows} rows (best of 3)\n")
    print(f"| uncalibrated | calibrated |\n| ---: | ---: |\n| {raw_s:.2f} s | {cal_s:.2f} s |")
    print(f"\nbench total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
