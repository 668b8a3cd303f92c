"""Validation throughput and memory at scale, beside the I/O floor (a plain pyarrow scan of the same files).

python bench/bench_validate.py [--quick] [--national]
  --quick     100k students × 2 terms only
  --national  also 4M students × 2 terms (~800M attendance rows; long)
"""

from __future__ import annotations

import argparse
import json
import sys

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


def bench(students: int, terms: int) -> None:
    source = ensure_synthetic(students, terms)
    validated = BENCH_DATA / f"validated-{students}x{terms}"
    run = measure([*RISK, "validate", str(source), str(validated), "--demo", "--quiet"], quiet=True)
    report = json.loads((validated / "validation_report.json").read_text())
    rows = sum(t["rows_in"] for t in report["tables"])
    attendance = next(t["rows_in"] for t in report["tables"] if t["table"] == "attendance_daily")
    scan = measure([sys.executable, "-c", SCAN, str(source)], quiet=True)
    print(f"validate {students:,} students × {terms} terms: {rows:,} rows ({attendance:,} attendance)")
    print("  " + line("seconds", run.seconds, "s", "pyarrow scan of the same files", scan.seconds))
    print(f"  rows/s: {rows / run.seconds:,.0f} (scan {rows / scan.seconds:,.0f})")
    print(f"  peak RSS: {run.peak_rss_mb:,.0f} MB (scan {scan.peak_rss_mb:,.0f} MB); target < 8,192 MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--national", action="store_true")
    args = parser.parse_args()
    bench(100_000, 2)
    if not args.quick:
        bench(1_000_000, 2)
    if args.national:
        bench(4_000_000, 2)


if __name__ == "__main__":
    main()
