"""Validation throughput and memory at scale, beside the I/O floor (a plain pyarrow scan of the same files).

python bench/bench_validate.py [--quick] [--national] [--students N --terms T] [--workers W]
  --quick       100k students × 2 terms only
  --national    also 4M students × 2 terms (~800M attendance rows; long)
  --students/--terms   one size only

Each size prints ``risk validate`` beside the scan with the ratio (the issue's target:
validation within 5× the scan), wall and CPU seconds (user + system, workers included:
on a shared machine CPU time says more than wall time), the load average before and
after, and the run's own per-step seconds (from its report, ``steps``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

from common import BENCH_DATA, RISK, ensure_synthetic, line, measure

SCAN = """
import sys, pyarrow.dataset as ds, pathlib
root = pathlib.Path(sys.argv[1]); rows = 0
for folder in sorted(p for p in root.iterdir() if p.is_dir()):
    for f in sorted(folder.iterdir()):
        fmt = "csv" if f.suffix == ".csv" else "parquet"
        for batch in ds.dataset(f, format=fmt).to_batches():
            rows += batch.num_rows
print(rows)
"""
TARGET = 5.0  # issue 32: validation within 5× a pyarrow scan of the same files


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (the child and the workers it waited for) and peak RSS (MB) of ``argv``."""
    before = _children_cpu()
    run = measure(argv, quiet=True)
    return run.seconds, _children_cpu() - before, run.peak_rss_mb


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def bench(students: int, terms: int, workers: int | None) -> None:
    source = ensure_synthetic(students, terms)
    # Its own folder, started again each run (--replace): other benchmarks read validated-<size> as they find it.
    validated = BENCH_DATA / f"validate-bench-{students}x{terms}"
    load_before = _load()
    argv = [*RISK, "validate", str(source), str(validated), "--demo", "--quiet", "--replace"]
    wall, cpu, rss = _timed(argv + ([f"--workers={workers}"] if workers else []))
    scan_wall, scan_cpu, scan_rss = _timed([sys.executable, "-c", SCAN, str(source)])
    load_after = _load()
    report = json.loads((validated / "validation_report.json").read_text())
    rows = sum(t["rows_in"] for t in report["tables"])
    attendance = next(t["rows_in"] for t in report["tables"] if t["table"] == "attendance_daily")
    print(f"validate {students:,} students × {terms} terms: {rows:,} rows ({attendance:,} attendance); "
          f"load average {load_before} before, {load_after} after")
    print("  " + line("wall seconds", wall, "s", "pyarrow scan of the same files", scan_wall)
          + f"; target ≤ {TARGET:g}×: {'met' if wall / scan_wall <= TARGET else 'not met'}")
    print("  " + line("CPU seconds", cpu, "s", "pyarrow scan of the same files", scan_cpu)
          + f"; target ≤ {TARGET:g}×: {'met' if cpu / scan_cpu <= TARGET else 'not met'}")
    print(f"  rows/s: {rows / wall:,.0f} (scan {rows / scan_wall:,.0f})")
    print(f"  peak RSS: {rss:,.0f} MB (scan {scan_rss:,.0f} MB); target < 8,192 MB")
    _steps(Path(validated), wall)


def _steps(validated: Path, wall: float) -> None:
    """The run's own seconds per step (wall clock in the process that ran it; workers' steps summed)."""
    runs = sorted((validated / "validation_runs").glob("*.json"))
    steps: dict[str, float] = json.loads(runs[-1].read_text()).get("steps", {}) if runs else {}
    if not steps:
        print("  (this risk reports no per-step times)")
        return
    print("  steps (s):  " + ", ".join(f"{k} {v:,.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])))
    print(f"  sum of steps {sum(steps.values()):,.1f} s of {wall:,.1f} s wall (the rest: start-up, opening "
          "and hashing the export, publishing)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--national", action="store_true")
    parser.add_argument("--students", type=int)
    parser.add_argument("--terms", type=int, default=2)
    parser.add_argument("--workers", type=int, help="processes for the row rules (default: the settings')")
    args = parser.parse_args()
    if args.students:
        bench(args.students, args.terms, args.workers)
        return
    bench(100_000, 2, args.workers)
    if not args.quick:
        bench(1_000_000, 2, args.workers)
    if args.national:
        bench(4_000_000, 2, args.workers)


if __name__ == "__main__":
    main()
