"""Shared by the benchmarks: run a step in its own process and measure wall time and peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RISK = [sys.executable, "-m", "risk"]
BENCH_DATA = Path(os.environ.get("RISK_BENCH_DATA", ROOT / "data" / "bench"))


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = float("nan")  # user + system of the child and the descendants it waited for
    # user + system of every process of the tree, each as last sampled: counts what the child never waits
    # for (Spark's JVM), and misses at most a sample interval (0.2 s) of each process's end
    tree_cpu_seconds: float = float("nan")


def measure(argv: list[str], env: dict[str, str] | None = None, quiet: bool = False) -> Measured:
    """Run ``argv`` as a child process; peak RSS is that of its whole process tree (workers included).

    The tree (the child and any worker processes) is sampled every 0.2 s.
    """
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL if quiet else None)
    tree_peak = 0.0
    tree_cpu: dict[int, float] = {}
    parent = psutil.Process(process.pid)
    while _still_running(process):
        try:
            members = [parent, *parent.children(recursive=True)]
            tree_peak = max(tree_peak, sum(_rss(m) for m in members))
            tree_cpu.update((m.pid, _cpu(m, tree_cpu.get(m.pid, 0.0))) for m in members)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"benchmark step failed ({process.returncode}): {' '.join(argv)}")
    return Measured(seconds, tree_peak / 2**20, _cpu_seconds(process.pid), sum(tree_cpu.values()))


_WAITED: dict[int, float] = {}  # pid → CPU seconds of a child this module reaped itself


def _still_running(process: subprocess.Popen) -> bool:
    """Like ``process.poll() is None``, but the child is reaped with ``os.wait4`` so that its CPU time is known."""
    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    if pid == 0:
        return True
    _WAITED[pid] = usage.ru_utime + usage.ru_stime
    process.returncode = os.waitstatus_to_exitcode(status)
    return False


def _cpu_seconds(pid: int) -> float:
    return _WAITED.pop(pid, float("nan"))


def _cpu(process: psutil.Process, before: float) -> float:
    """User + system seconds of ``process`` itself (``before`` if it is gone)."""
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.NoSuchProcess:
        return before


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def line(name: str, value: float, unit: str, baseline_name: str, baseline: float) -> str:
    """One timing beside its baseline, with the ratio, said both ways."""
    ratio = value / baseline
    verdict = f"{1 / ratio:.1f}× faster" if ratio < 1 else f"{ratio:.1f}× the baseline's time"
    return (f"{name}: {value:,.2f} {unit} | baseline ({baseline_name}): {baseline:,.2f} {unit} | "
            f"ratio {ratio:.3g} ({verdict})")


def ensure_synthetic(students: int, terms: int, seed: int = 11) -> Path:
    """A synthetic export of the given size under BENCH_DATA, generated once and reused."""
    folder = BENCH_DATA / f"source-{students}x{terms}-s{seed}"
    if not (folder / "synth_report.json").exists():
        measure([*RISK, "synth", "--students", str(students), "--terms", str(terms), "--seed", str(seed),
                 "--out", str(folder)])
    return folder


def ensure_validated(students: int, terms: int) -> Path:
    """The synthetic export of that size, validated once under BENCH_DATA and reused; says which."""
    folder = BENCH_DATA / f"validated-{students}x{terms}"
    if (folder / "validation_report.json").exists():
        print(f"validated export reused: {folder}")
        return folder
    source = ensure_synthetic(students, terms)
    run = measure([*RISK, "validate", str(source), str(folder), "--demo", "--quiet"], quiet=True)
    print(f"validate {students:,} × {terms} terms: {run.seconds:,.1f} s, peak RSS {run.peak_rss_mb:,.0f} MB")
    return folder
