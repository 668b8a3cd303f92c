"""Feature building at scale.

1. Attendance features for 1M students × one term (as_of at the end of the first term), by the engine (DuckDB, by bucket) and by the same
   features written plainly in pandas (bench/pandas_attendance.py), on the same data: time, peak RSS,
   the ratio, and the largest difference between the two results.
2. The whole catalog for every student (with --national: 4M students), time and peak RSS (< 8 GiB).

python bench/bench_features.py [--quick] [--national]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from common import BENCH_DATA, RISK, ROOT, ensure_validated, line, measure

ATTENDANCE = ["att_rate_term", "att_rate_20d", "att_rate_60d", "att_unexcused_term",
              "att_longest_absence_streak", "att_current_absence_streak"]


def mid_term(folder: Path) -> dt.date:
    """A date ten weeks into the last term of the data."""
    calendar = pd.read_parquet(folder / "calendar", columns=["date", "term"])
    last = calendar[calendar["term"] == calendar["term"].max()]
    return pd.Timestamp(last["date"].min()).date() + dt.timedelta(weeks=10)


def end_of_first_term(folder: Path) -> dt.date:
    """The last school day of the first term of the data: one whole term of attendance before it."""
    calendar = pd.read_parquet(folder / "calendar", columns=["date", "term"])
    first = calendar[calendar["term"] == calendar["term"].min()]
    return pd.Timestamp(first["date"].max()).date()


def attendance_catalog() -> Path:
    data = yaml.safe_load((ROOT / "configs" / "features.yaml").read_text(encoding="utf-8"))
    data["features"] = [f for f in data["features"] if f["name"] in ATTENDANCE]
    path = BENCH_DATA / "attendance-catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def versus_pandas(students: int) -> None:
    folder = ensure_validated(students, 2)
    as_of = end_of_first_term(folder).isoformat()
    engine_out, pandas_out = BENCH_DATA / "att-engine.parquet", BENCH_DATA / "att-pandas.parquet"
    engine = measure([*RISK, "features", "--as-of", as_of, "--data", str(folder), "--out", str(engine_out),
                      "--catalog", str(attendance_catalog()), "--quiet"], quiet=True)
    plain = measure([sys.executable, str(ROOT / "bench" / "pandas_attendance.py"), str(folder), as_of,
                     str(pandas_out)])
    a = pd.read_parquet(engine_out).set_index("student_key")[ATTENDANCE].sort_index()
    b = pd.read_parquet(pandas_out).set_index("student_key")[ATTENDANCE].sort_index()
    difference = np.nanmax(np.abs(a.to_numpy() - b.loc[a.index].to_numpy()))
    same_missing = bool((a.isna().to_numpy() == b.loc[a.index].isna().to_numpy()).all())
    print(f"attendance features, {len(a):,} students × one term of daily attendance, at {as_of}:")
    print("  " + line("engine", engine.seconds, "s", "plain pandas", plain.seconds))
    print(f"  peak RSS: engine {engine.peak_rss_mb:,.0f} MB, pandas {plain.peak_rss_mb:,.0f} MB")
    print(f"  results agree: max |difference| {difference:.2e}, same missing cells: {same_missing}")


def whole_catalog(students: int) -> None:
    folder = ensure_validated(students, 2)
    as_of = mid_term(folder).isoformat()
    out = BENCH_DATA / f"features-{students}.parquet"
    run = measure([*RISK, "features", "--as-of", as_of, "--data", str(folder), "--out", str(out), "--quiet"],
                  quiet=True)
    rows = len(pd.read_parquet(out, columns=["student_key"]))
    report = json.loads((folder / "validation_report.json").read_text())
    attendance = next(t["used"] for t in report["tables"] if t["table"] == "attendance_daily")
    print(f"whole catalog, {rows:,} students ({attendance:,} attendance rows) at {as_of}: {run.seconds:,.1f} s, "
          f"{rows / run.seconds:,.0f} students/s, peak RSS {run.peak_rss_mb:,.0f} MB (target < 8,192 MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--national", action="store_true")
    args = parser.parse_args()
    size = 100_000 if args.quick else 1_000_000
    versus_pandas(size)
    whole_catalog(size)
    if args.national:
        whole_catalog(4_000_000)


if __name__ == "__main__":
    main()
