"""Scale benchmark of the synthetic generator (``risk synth``).

Runs 100,000 students × 6 terms and 4,000,000 students × 2 terms, each in its
own process (so peak RSS is per run), and prints seconds, rows/s, peak RSS and
the oracle AUC, each beside a baseline measured in the same session:

* **I/O floor**: pyarrow writing the same number of pre-built attendance rows
  (same schema, codec and row groups): the generator cannot beat it.
* **naive loop**: a per-student, per-day Python loop making attendance rows for
  a small sample, extrapolated to the run's attendance rows.

Usage::

    python bench/bench_synth.py            # both runs (the big one takes ~10 min)
    python bench/bench_synth.py --quick    # 100k × 6 only
    python bench/bench_synth.py --skip-big # same as --quick
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_generator(out: Path, students: int, terms: int, seed: int) -> dict:
    """One generator run in a child process; returns its report as a dict."""
    code = (
        "import sys; from pathlib import Path; from risk.data.synth import generate, SynthConfig;"
        f"r = generate(Path({str(out)!r}), students={students}, terms={terms}, seed={seed},"
        f" config=SynthConfig.from_yaml({str(ROOT / 'configs/synth.yaml')!r}), progress=sys.stderr.isatty());"
        "print(r.model_dump_json())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def io_floor_seconds(rows: int, out: Path, compression: str = "zstd", row_group: int = 1 << 20) -> float:
    """Seconds for pyarrow to write ``rows`` pre-built attendance rows (a 10M-row table written repeatedly)."""
    block = min(rows, 10_000_000)
    per_student = 95
    n_students = block // per_student + 1
    ids = pa.array([f"{1_000_000_000_000 + i * 7919:013d}" for i in range(n_students)])
    student = np.repeat(np.arange(n_students, dtype=np.int32), per_student)[:block]
    days = np.tile(np.arange(19_860, 19_860 + per_student, dtype=np.int32), n_students)[:block]
    status = np.random.default_rng(0).choice(5, block, p=[0.9, 0.04, 0.02, 0.02, 0.02]).astype(np.int32)
    cats = pa.array(["present", "absent", "leave", "sick", "late"])
    groups = []
    for lo in range(0, block, row_group):
        hi = min(lo + row_group, block)
        s = student[lo:hi]
        groups.append(pa.table({
            "student_id": pa.DictionaryArray.from_arrays(pa.array(s - s[0]), ids.slice(int(s[0]), int(s[-1] - s[0] + 1))),
            "date": pa.array(days[lo:hi]).view(pa.date32()),
            "status": pa.DictionaryArray.from_arrays(pa.array(status[lo:hi]), cats),
        }))
    started = time.perf_counter()
    written = 0
    with pq.ParquetWriter(str(out), groups[0].schema, compression=compression, store_schema=False) as writer:
        while written < rows:
            for table in groups:
                take = min(table.num_rows, rows - written)
                writer.write_table(table.slice(0, take))
                written += take
                if written >= rows:
                    break
    return time.perf_counter() - started


def naive_loop_rows_per_second(students: int = 2000, days: int = 97) -> float:
    """Attendance rows per second of a plain Python loop over students and days (one term)."""
    rnd = random.Random(0)
    started = time.perf_counter()
    rows = []
    for s in range(students):
        p_absent = 0.02 + 0.1 * rnd.random()
        absent = False
        sid = f"{1_000_000_000_000 + s:013d}"
        for d in range(days):
            p = p_absent + 0.5 * (1 - p_absent) if absent else p_absent * 0.5
            absent = rnd.random() < p
            status = ("absent" if rnd.random() < 0.6 else "sick") if absent else (
                "late" if rnd.random() < 0.04 else "present")
            rows.append((sid, 19_860 + d, status))
    table = pa.table({"student_id": [r[0] for r in rows], "date": pa.array([r[1] for r in rows], pa.int32()),
                      "status": [r[2] for r in rows]})
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(table, f"{tmp}/naive.parquet")
    return len(rows) / (time.perf_counter() - started)


def bench(students: int, terms: int, workdir: Path, naive_rps: float) -> None:
    out = workdir / f"synth-{students}x{terms}"
    report = run_generator(out, students, terms, seed=42)
    rows = sum(report["rows"].values())
    att = report["rows"]["attendance_daily"]
    secs = report["seconds"]
    floor = io_floor_seconds(att, workdir / "floor.parquet")
    (workdir / "floor.parquet").unlink(missing_ok=True)
    naive_secs = att / naive_rps
    size_gb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e9
    print(f"\n== {students:,} students × {terms} terms ==")
    print(f"  seconds          {secs:10.1f}   baseline I/O floor (pyarrow writing {att:,} pre-built attendance rows): "
          f"{floor:.1f} s → generator/floor = {secs / floor:.1f}×")
    print(f"  rows/s (all)     {rows / secs:12,.0f}   ({rows:,} rows in 9 tables, {size_gb:.2f} GB on disk)")
    print(f"  attendance rows/s{att / secs:12,.0f}   baseline naive per-student Python loop: {naive_rps:,.0f} rows/s "
          f"(extrapolated {naive_secs / 60:.1f} min) → speed-up {naive_secs / secs:.0f}×")
    print(f"  peak RSS         {report['peak_rss_mb']:10,.0f} MB")
    print(f"  oracle AUC       {report['oracle_auc']:10.3f}   (target 0.85–0.92)" if report["oracle_auc"] else
          "  oracle AUC          n/a (no term with a known outcome)")
    yearly = {y: v["overall"] for y, v in report["dropout_rate_by_year"].items()}
    print(f"  dropout          yearly {yearly}, non-returners at M3 {report['share_m3']:.0%}, "
          f"at P6 {report['share_p6']:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k × 6 only")
    parser.add_argument("--skip-big", action="store_true", help="skip the 4M × 2 run")
    parser.add_argument("--big-students", type=int, default=4_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-synth-", dir=args.workdir) if not args.keep else None
    workdir = Path(tmp.name) if tmp else (args.workdir or Path(tempfile.mkdtemp(prefix="bench-synth-")))
    naive = naive_loop_rows_per_second()
    print(f"naive per-student Python loop: {naive:,.0f} attendance rows/s (2,000 students × 97 days, measured now)")
    bench(100_000, 6, workdir, naive)
    if not (args.quick or args.skip_big):
        bench(args.big_students, 2, workdir, naive)
    if tmp:
        tmp.cleanup()
    else:
        print(f"\ndata kept in {workdir}")


if __name__ == "__main__":
    main()
