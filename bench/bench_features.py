"""Feature building at scale.

1. Attendance features for 1M students × one term (as_of at the end of the first term), by the engine (DuckDB, by bucket) and by the same
   features written plainly in pandas (bench/pandas_attendance.py), on the same data: time, peak RSS,
   the ratio, and the largest difference between the two results.
2. The whole catalog for every student (with --national: 4M students), time and peak RSS (< 8 GiB).
3. One point early in the last term (school week 4: its 60-day windows reach 40 days into the term
   before), three ways, each in its own process: last term read from rows (the baseline: what every
   point did before per-term aggregates), the first point that stores last term's days
   (risk.features.aggregates), and a point that reads them stored. The three matrices must be equal.
4. (--points) The fixed cost of a small point: the same point bucket by bucket (32 passes of the
   feature SQL, as before) and with the buckets grouped (risk.features.batch.bucket_groups).

python bench/bench_features.py [--quick] [--national] [--students N] [--only-points]

Measured 2026-12-07 on a copy of bench-train's 200k x 4 terms store, one point at 2026-06-16 (week 4
of 2569-1), load average 15-27 throughout (five people's work on 2 cores: read CPU seconds, not wall):
last term from rows 311.8 s wall / 29.0 s CPU; storing last term's days 465.0 s / 49.4 s; stored
275.3 s / 23.7 s; peak RSS 843 / 1,308 / 823 MB; the three matrices equal. The code before this
section (whole previous term joined at every point, 32 passes) took 323.7 s / 52.0 s at the same point,
same matrix. On a 20k x 6 terms store, 5 points: 15.6-17.4 s CPU a point before, 3.1-3.5 s grouped
with stored days (load 14-18). Sections 3 and 4 were not run through this script at 1M: the 1M store's
validation did not finish under that load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
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


_POINT = """
import datetime as dt, sys
from pathlib import Path
from risk.config import load_settings
from risk.features.batch import build_feature_matrix
from risk.features.catalog import INSTALLED_CATALOG, load_catalog
folder, as_of, out, stored, group_rows = sys.argv[1:6]
build_feature_matrix(Path(folder), dt.date.fromisoformat(as_of), Path(out), settings=load_settings(),
                     catalog=load_catalog(INSTALLED_CATALOG), progress=False, check_data=False,
                     stored_terms=stored == "1", group_rows=int(group_rows) or None)
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread's CPU: the figure load on shared cores bends least
print(f"  ({Path(out).stem}: CPU {usage.ru_utime + usage.ru_stime:,.1f} s)")
"""


def week_of_last_term(folder: Path, week: int) -> dt.date:
    """The last school day of school week ``week`` of the last term (5 school days a week)."""
    calendar = pd.read_parquet(folder / "calendar", columns=["date", "term"])
    days = sorted(calendar.loc[calendar["term"] == calendar["term"].max(), "date"].unique())
    return pd.Timestamp(days[5 * week - 1]).date()


def point(folder: Path, as_of: dt.date, out: Path, *, stored: bool, group_rows: int = 0):
    return measure([sys.executable, "-c", _POINT, str(folder), as_of.isoformat(), str(out), str(int(stored)),
                    str(group_rows)])


def same(a: Path, b: Path) -> bool:
    x, y = pd.read_parquet(a), pd.read_parquet(b)
    return x["student_key"].equals(y["student_key"]) and bool(
        np.array_equal(x.iloc[:, 4:].to_numpy(), y.iloc[:, 4:].to_numpy(), equal_nan=True))


def stored_terms(students: int) -> None:
    folder = ensure_validated(students, 2)
    as_of = week_of_last_term(folder, 4)
    shutil.rmtree(folder / "_derived" / "aggregates", ignore_errors=True)
    outs = [BENCH_DATA / f"point-{students}-{name}.parquet" for name in ("rows", "storing", "stored")]
    load = os.getloadavg()[0]
    rows = point(folder, as_of, outs[0], stored=False)
    storing = point(folder, as_of, outs[1], stored=True)
    stored = point(folder, as_of, outs[2], stored=True)
    print(f"one point at {as_of} (school week 4 of the last term), {students:,} students, "
          f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after:")
    print("  " + line("storing last term's days", storing.seconds, "s", "last term from rows", rows.seconds))
    print("  " + line("last term's days stored", stored.seconds, "s", "last term from rows", rows.seconds))
    print(f"  peak RSS: rows {rows.peak_rss_mb:,.0f} MB, storing {storing.peak_rss_mb:,.0f} MB, "
          f"stored {stored.peak_rss_mb:,.0f} MB; matrices equal: {same(outs[0], outs[1]) and same(outs[0], outs[2])}")


def fixed_cost(students: int) -> None:
    folder = ensure_validated(students, 2)
    as_of = week_of_last_term(folder, 10)
    outs = [BENCH_DATA / f"point-{students}-{name}.parquet" for name in ("by-bucket", "grouped")]
    point(folder, as_of, outs[1], stored=True)  # last term's days stored once, for both runs below
    load = os.getloadavg()[0]
    by_bucket = point(folder, as_of, outs[0], stored=True, group_rows=1)
    grouped = point(folder, as_of, outs[1], stored=True)
    print(f"one point at {as_of}, {students:,} students, load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (each a fresh process: imports included):")
    print("  " + line("buckets grouped", grouped.seconds, "s", "bucket by bucket", by_bucket.seconds))
    print(f"  matrices equal: {same(outs[0], outs[1])}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--national", action="store_true")
    parser.add_argument("--students", type=int, help="the size of sections 3 and 4 (default: as section 1)")
    parser.add_argument("--only-points", action="store_true", help="sections 3 and 4 only")
    args = parser.parse_args()
    size = 100_000 if args.quick else 1_000_000
    if not args.only_points:
        versus_pandas(size)
        whole_catalog(size)
        if args.national:
            whole_catalog(4_000_000)
    stored_terms(args.students or size)
    fixed_cost(20_000)


if __name__ == "__main__":
    main()
