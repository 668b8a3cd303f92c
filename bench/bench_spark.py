"""Spark local[2] against DuckDB on one machine: features, and scoring when a champion is registered.

Each engine runs ``risk features`` (and ``risk score``) as a command, in its own process, at two
sizes of the same synthetic world; the two wall times give each engine's fixed cost (the intercept:
interpreter, JVM and session start, planning) and its per-row cost (the slope), which a cluster divides
among its executors. Each Spark figure is printed beside DuckDB's from the same run, with the ratio,
and the load average beside it (the machine is shared).

python bench/bench_spark.py [--sizes 100000 1000000] [--terms 2] [--tracking-dir DIR]

Scoring runs only with ``--tracking-dir`` holding a champion trained on the same world's features
(``risk train --tracking-dir DIR``); its Spark figure covers score rows written to Parquet, the DuckDB
one scores and stores (``risk store load`` is not counted).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
from pathlib import Path

import pandas as pd
from common import BENCH_DATA, RISK, ensure_validated, line, measure


def mid_term(folder: Path) -> dt.date:
    """Six weeks into the last term of the data."""
    calendar = pd.read_parquet(folder / "calendar", columns=["date", "term"])
    last = calendar[calendar["term"] == calendar["term"].max()]
    return pd.Timestamp(last["date"].min()).date() + dt.timedelta(weeks=6)


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def run(command: str, engine: str, folder: Path, as_of: dt.date, tracking: Path | None) -> float:
    """Wall seconds of one ``risk features`` or ``risk score`` by ``engine`` over ``folder``."""
    out = BENCH_DATA / f"spark-bench-{command}-{engine}-{folder.name}"
    if out.is_dir():
        shutil.rmtree(out)
    out = out.with_suffix(".parquet") if engine == "duckdb" else out
    argv = [*RISK, command, "--engine", engine, "--as-of", as_of.isoformat(), "--data", str(folder),
            "--out", str(out), "--quiet"]
    if command == "score":
        argv += ["--tracking-dir", str(tracking), "--store", f"sqlite:///{BENCH_DATA / f'spark-bench-{engine}.db'}"]
    seconds = measure(argv, quiet=True).seconds
    print(f"  {command} {engine} at {folder.name}: {seconds:,.1f} s ({load()})", flush=True)
    return seconds


def fit(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """(fixed seconds, seconds per row) of the line through the two (rows, seconds) points."""
    (n1, n2), (t1, t2) = sizes, seconds
    per_row = (t2 - t1) / (n2 - n1)
    return t1 - per_row * n1, per_row


def compare(command: str, folders: list[Path], rows: list[int], tracking: Path | None) -> None:
    times = {engine: [run(command, engine, f, mid_term(f), tracking) for f in folders] for engine in ("duckdb", "spark")}
    duck_fixed, duck_row = fit(rows, times["duckdb"])
    spark_fixed, spark_row = fit(rows, times["spark"])
    print(f"{command}, {rows[0]:,} and {rows[1]:,} students ({load()}):")
    for i, n in enumerate(rows):
        print("  " + line(f"Spark local[2], {n:,} students", times["spark"][i], "s", "DuckDB", times["duckdb"][i]))
    print("  " + line("fixed cost, Spark", spark_fixed, "s", "DuckDB", duck_fixed))
    print("  " + line("per 1M rows, Spark", spark_row * 1e6, "s", "DuckDB", duck_row * 1e6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--terms", type=int, default=2)
    parser.add_argument("--tracking-dir", type=Path, default=None)
    args = parser.parse_args()
    folders = [ensure_validated(n, args.terms) for n in args.sizes]
    rows = list(args.sizes)
    print(f"Spark local[2] vs DuckDB, {args.terms} terms, {os.cpu_count()} cores ({load()})")
    compare("features", folders, rows, None)
    if args.tracking_dir is not None:
        compare("score", folders, rows, args.tracking_dir)
    else:
        print("score: not measured (no --tracking-dir with a champion trained on this world)")


if __name__ == "__main__":
    main()
