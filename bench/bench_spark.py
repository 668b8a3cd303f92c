"""Spark local[2] against DuckDB on one machine, features and explained scoring: fixed cost and per-row cost.

Each engine runs the command a user runs, in its own process, on validated synthetic exports of several
sizes (``validated-Nx<terms>``, shared with the other benches), at one date ten weeks into the last term:

- features: ``risk features`` against ``risk features --engine spark`` (Parquet by bucket);
- scoring: ``risk score`` (features, probabilities, reasons, and the store: scores, alerts, summaries)
  against ``risk score --engine spark`` (score rows as Parquet by bucket) followed by ``risk store load``
  (the same store work), each on a fresh SQLite store; Spark's scoring alone is printed too.

The smallest size (default 1,000 students) gives each engine's fixed cost: interpreter and imports, the
JVM and the Spark session, planning, the model's load. The slope from it to each larger size gives the
per-row cost, the part a cluster divides among its executors (the fixed cost it does not). Every Spark
figure is printed beside DuckDB's of the same run, with the ratio, and the load average beside it: the
machine is shared, so read a figure taken under load as an upper bound.

The champion is trained once on ``--model-students`` × 4 terms and promoted (bench/bench_score.py's, reused
on a rerun), or taken from ``--champion-from`` (an MLflow folder of ``risk train``).

python bench/bench_spark.py [--sizes 1000 100000 1000000] [--terms 2] [--model-students 20000]
                            [--champion-from DIR] [--features-only]

At national scale (the lead's quiet window): ``python bench/bench_spark.py --sizes 1000 100000 1000000``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from bench_features import mid_term
from bench_score import champion
from common import BENCH_DATA, RISK, ensure_validated, line, measure


def load() -> str:
    return "load average " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def fresh(path: Path) -> Path:
    """``path`` with nothing at it (an earlier run's file or folder removed)."""
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    return path


def run(name: str, argv: list[str]) -> float:
    """Wall seconds of one command, printed with its CPU seconds (every process of its tree: Spark's JVM, which
    PySpark never waits for, included), its peak RSS (process tree) and the load; on a shared host the CPU
    seconds bend less."""
    done = measure(argv, quiet=True)
    print(f"  {name}: {done.seconds:,.1f} s, CPU {done.tree_cpu_seconds:,.1f} s, peak RSS {done.peak_rss_mb:,.0f} MB "
          f"({load()})", flush=True)
    return done.seconds


def features(folder: Path) -> dict[str, float]:
    """Seconds of ``risk features`` by each engine over ``folder``."""
    as_of = mid_term(folder).isoformat()
    base = [*RISK, "features", "--as-of", as_of, "--data", str(folder), "--quiet"]
    out = BENCH_DATA / f"spark-bench-features-{folder.name}"
    return {
        "duckdb": run(f"risk features, {folder.name}", [*base, "--out", str(fresh(out.with_suffix(".parquet")))]),
        "spark": run(f"risk features --engine spark, {folder.name}", [*base, "--engine", "spark", "--out",
                                                                      str(fresh(out))]),
    }


def scoring(folder: Path, tracking: Path) -> dict[str, float]:
    """Seconds of ``risk score`` (DuckDB, into a store), of Spark's scores alone, and of Spark's + ``risk store load``."""
    as_of = mid_term(folder).isoformat()
    base = [*RISK, "score", "--as-of", as_of, "--data", str(folder), "--tracking-dir", str(tracking), "--quiet"]
    out = BENCH_DATA / f"spark-bench-scores-{folder.name}"
    duck_store, spark_store = (fresh(BENCH_DATA / f"spark-bench-{e}-{folder.name}.db") for e in ("duckdb", "spark"))
    duck = run(f"risk score, {folder.name}", [*base, "--store", f"sqlite:///{duck_store}",
                                              "--out", str(fresh(out.with_suffix(".parquet")))])
    spark = run(f"risk score --engine spark, {folder.name}", [*base, "--engine", "spark", "--out", str(fresh(out))])
    stored = run(f"risk store load, {folder.name}", [*RISK, "store", "load", "--scores", str(out), "--data",
                                                     str(folder), "--store", f"sqlite:///{spark_store}",
                                                     "--tracking-dir", str(tracking)])
    return {"duckdb": duck, "spark": spark + stored, "spark_alone": spark}


def compare(title: str, sizes: list[int], times: list[dict[str, float]], spark: str = "spark") -> None:
    """Each size, then the fixed cost (the smallest size) and the per-row cost (the slope from it), Spark beside DuckDB."""
    print(f"\n{title} ({load()}):")
    for n, t in zip(sizes, times, strict=True):
        print("  " + line(f"Spark local[2], {n:,} students", t[spark], "s", "DuckDB", t["duckdb"]))
    tiny = sizes[0]
    print("  " + line(f"fixed cost (at {tiny:,} students), Spark", times[0][spark], "s", "DuckDB",
                      times[0]["duckdb"]))
    for n, t in zip(sizes[1:], times[1:], strict=True):
        per_row = {e: (t[e] - times[0][e]) / (n - tiny) * 1e6 for e in (spark, "duckdb")}
        if min(per_row.values()) <= 0:  # a slope from two runs under different loads says nothing
            print(f"  per 1M rows ({tiny:,} → {n:,}): not measured, {n:,} students ran faster than {tiny:,} "
                  "(the host's load changed between the runs: see the load averages)")
            continue
        print("  " + line(f"per 1M rows ({tiny:,} → {n:,}), Spark", per_row[spark], "s", "DuckDB",
                          per_row["duckdb"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000],
                        help="students; the first, small, gives the fixed cost (default: 1000 100000 1000000)")
    parser.add_argument("--terms", type=int, default=2)
    parser.add_argument("--model-students", type=int, default=20_000,
                        help="the champion's export (students × 4 terms), trained once")
    parser.add_argument("--champion-from", type=Path, default=None,
                        help="an MLflow folder of risk train: its challenger promoted in a copy, no training")
    parser.add_argument("--features-only", action="store_true", help="no scoring (and no champion)")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    if len(sizes) < 2:
        parser.error("--sizes needs a small size (the fixed cost) and at least one larger")
    folders = [ensure_validated(n, args.terms) for n in sizes]
    tracking = None if args.features_only else champion(args.model_students, args.champion_from)
    print(f"Spark local[2] against DuckDB, {args.terms} terms, {os.cpu_count()} cores ({load()})", flush=True)
    feature_times, score_times = [], []
    for folder in folders:  # size by size, both engines together: a change in the host's load hits both
        feature_times.append(features(folder))
        if tracking is not None:
            score_times.append(scoring(folder, tracking))
    compare("features: risk features, DuckDB against --engine spark", sizes, feature_times)
    if tracking is None:
        print("\nscoring: not measured (--features-only)")
        return
    compare("scoring into the store: risk score, DuckDB against --engine spark + risk store load", sizes, score_times)
    compare("scoring, Spark's score rows alone (no store) against DuckDB's risk score", sizes, score_times,
            spark="spark_alone")


if __name__ == "__main__":
    main()
