"""Scale: "features + reference profile + drift check" per engine on histories of N rows.

For each N a deterministic Online-Retail-like history (``clvdrift.data.synthetic.write_parts``: parts of
2M rows over two years, a fifth without a customer, cancellations, postage, duplicates) is written once
under ``--cache`` (default /tmp/clvdrift-scale). Each (engine, N) then runs in a fresh process:

1. clean the history's parts (every cleaning rule) into the engine's line table;
2. the features, target and baseline at the last day − 90 days (``build_training_set``);
3. the reference profile of those features (``build_profile``);
4. the features at the last day (the current window) checked against that profile
   (``detect_data_drift``, the drift engine's defaults).

It prints each step's wall time, the total and the peak resident memory of the process (for Dask, the
client's plus the peak of each worker process). The engines' features are compared: each row says
whether its features and profile equal pandas' (bit for bit) when pandas ran at that N.

Separately (``--drift-rows``, default 10M) it times a drift check of that many current rows against a
stored profile: the check alone, the profile built beforehand.

Usage::

    .venv/bin/python bench/scale.py                                  # 1M, 10M, 50M; pandas up to 10M
    .venv/bin/python bench/scale.py --sizes 1e6 --engines pandas,duckdb,dask
    .venv/bin/python bench/scale.py --sizes 5e7 --engines pandas     # pandas at 50M (needs > 10 GB)

Targets (issue 19, this 2-core machine): DuckDB 10M ≤ 5 s and ≤ 1.5 GB, 50M ≤ 30 s and ≤ 4 GB; a drift
check of 10M current rows ≤ 2 s; Dask LocalCluster within 2× of pandas at 10M.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CUTOFF_DAYS = 90
PANDAS_MAX_DEFAULT = 10_000_000


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux → GB


def history(cache: Path, rows: int) -> list[Path]:
    from clvdrift.data.synthetic import write_parts

    root = cache / f"rows-{rows}"
    done = root / "DONE"
    if not done.exists():
        t = time.perf_counter()
        write_parts(root, rows, seed=19)
        done.write_text("ok\n")
        print(f"  generated {rows:,} rows in {time.perf_counter() - t:.1f} s → {root}", file=sys.stderr)
    return sorted(root.glob("part-*.parquet"))


def run_one(engine: str, rows: int, cache: Path, out: Path) -> None:
    """One engine at one size, in this (fresh) process; the result as JSON in ``out``."""
    from clvdrift.config import DriftConfig
    from clvdrift.drift import build_profile, detect_data_drift
    from clvdrift.engines import Source, open_lines
    from clvdrift.features import NUMERIC_FEATURES, build_training_set

    parts = history(cache, rows)
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    memory = os.environ.get("CLVDRIFT_DUCKDB_MEMORY_LIMIT")
    with open_lines(
        Source.of_parts(parts, name="synthetic history"), engine=engine, memory_limit=memory
    ) as opened:
        steps["clean"] = time.perf_counter() - t0
        t = time.perf_counter()
        last = opened.lines.last_day()
        ts = build_training_set(opened.lines, cutoff=last - pd.Timedelta(days=CUTOFF_DAYS))
        steps["features"] = time.perf_counter() - t
        t = time.perf_counter()
        columns = [*NUMERIC_FEATURES, "Revenue90d", "Country"]
        profile = build_profile(
            ts.features[columns], numerical_columns=columns[:-1], categorical_columns=["Country"]
        )
        steps["profile"] = time.perf_counter() - t
        t = time.perf_counter()
        current = build_training_set(opened.lines, cutoff=last, require_labels=False).features
        result = detect_data_drift(profile, current[columns], DriftConfig(), columns=columns)
        steps["drift"] = time.perf_counter() - t
        worker_peaks: list[float] = []
        if engine == "dask":
            client = opened.lines.client  # type: ignore[attr-defined]
            worker_peaks = list(client.run(_peak_gb).values())
        customers = len(ts.features)
        digest = pd.util.hash_pandas_object(ts.features.reset_index(), index=False).sum()
    total = time.perf_counter() - t0
    out.write_text(
        json.dumps(
            {
                "engine": engine,
                "rows": rows,
                "steps": steps,
                "total": total,
                "peak_gb": _peak_gb() + sum(worker_peaks),
                "worker_peaks_gb": worker_peaks,
                "customers": customers,
                "features_digest": int(digest),
                "profile": profile.checksum,
                "drifted": result.drifted_columns,
            }
        )
    )


def drift_only(rows: int) -> dict[str, float]:
    """A drift check of ``rows`` current rows against a stored profile (built beforehand, saved, loaded)."""
    import tempfile

    from clvdrift.config import DriftConfig
    from clvdrift.drift import ReferenceProfile, build_profile, detect_data_drift

    rng = np.random.default_rng(7)

    def frame(n: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "Recency": rng.integers(0, 365, n).astype(np.int64),
                "Frequency": rng.geometric(0.05, n).astype(np.int64),
                "Monetary": rng.lognormal(6 + shift, 1.2, n),
                "AvgUnitPrice": rng.lognormal(1, 0.8, n),
                "Country": rng.choice(["United Kingdom", "Germany", "France", "EIRE", "Spain"], n),
            }
        )

    reference = frame(1_000_000, 0.0)
    profile = build_profile(
        reference,
        numerical_columns=["Recency", "Frequency", "Monetary", "AvgUnitPrice"],
        categorical_columns=["Country"],
    )
    with tempfile.TemporaryDirectory() as folder:
        stored = ReferenceProfile.load(profile.save(Path(folder) / "profile.json"))
    current = frame(rows, 0.05)
    t = time.perf_counter()
    detect_data_drift(stored, current, DriftConfig())
    return {"rows": rows, "check_seconds": time.perf_counter() - t}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1e6,1e7,5e7", help="rows, comma-separated")
    parser.add_argument("--engines", default="pandas,duckdb,dask")
    parser.add_argument("--pandas-max", type=float, default=PANDAS_MAX_DEFAULT, help="skip pandas above this")
    parser.add_argument("--drift-rows", type=float, default=1e7, help="0: skip the stored-profile check")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/clvdrift-scale"))
    parser.add_argument("--duckdb-memory", help="DuckDB's memory limit, e.g. 1GB (default: DuckDB's own)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--one", nargs=3, metavar=("ENGINE", "ROWS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one[0], int(args.one[1]), args.cache, Path(args.one[2]))
        return
    if args.duckdb_memory:
        os.environ["CLVDRIFT_DUCKDB_MEMORY_LIMIT"] = args.duckdb_memory
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    engines = args.engines.split(",")
    results = []
    print(
        f"{'rows':>12} {'engine':>7} {'clean':>7} {'features':>9} {'profile':>8} {'drift':>7} {'total':>8} "
        f"{'peak GB':>8}  same as pandas"
    )
    for rows in sizes:
        history(args.cache, rows)  # generated once, outside the timings
        reference = None
        for engine in engines:
            if engine == "pandas" and rows > args.pandas_max:
                print(f"{rows:>12,} {engine:>7}   skipped (--pandas-max {int(args.pandas_max):,})")
                continue
            out = args.cache / f"result-{engine}-{rows}.json"
            run = subprocess.run(
                [sys.executable, __file__, "--cache", str(args.cache), "--one", engine, str(rows), str(out)],
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                print(f"{rows:>12,} {engine:>7}   failed: {run.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.read_text())
            results.append(r)
            if engine == "pandas":
                reference = r
            same = (
                "—"
                if reference is None or engine == "pandas"
                else (
                    "yes"
                    if (r["features_digest"], r["profile"])
                    == (reference["features_digest"], reference["profile"])
                    else "NO"
                )
            )
            s = r["steps"]
            print(
                f"{rows:>12,} {engine:>7} {s['clean']:>6.2f}s {s['features']:>8.2f}s {s['profile']:>7.2f}s "
                f"{s['drift']:>6.2f}s {r['total']:>7.2f}s {r['peak_gb']:>8.2f}  {same}",
                flush=True,
            )
    drift = None
    if args.drift_rows:
        drift = drift_only(int(args.drift_rows))
        print(
            f"drift check of {drift['rows']:,} current rows against a stored profile: "
            f"{drift['check_seconds']:.2f} s"
        )
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "drift_only": drift}, indent=2))


if __name__ == "__main__":
    main()
