"""A cp874 (TIS-620, Thai Windows) CSV against the same rows in UTF-8: the cost of transcoding while streaming.

Issue 27 asks that ``risk validate`` of a national cp874 attendance CSV take at most
1.3× its UTF-8 time. Attendance has no Thai words of its own, so every file here carries
a Thai ``remark`` column (not a contract column: the reader skips it, but the transcoder
must still turn every byte of it into UTF-8), as a teacher's note would.

Two measures, each beside its UTF-8 baseline from the same run, in child processes:

1. **read**: ``file_batches`` + ``typed_frame(source="export")`` over ``--rows`` generated rows;
2. **validate**: ``risk validate --workers 1`` of a synthetic export (``--students`` × 2 terms)
   whose attendance is one CSV with the remark column (other tables shared by symlink).

Each is run ``--repeat`` times per encoding, alternating, and the best time counts (the host is shared).

python bench/bench_encoding.py [--rows 10000000] [--students 50000] [--repeat 2] [--skip-read] [--skip-validate]
                               [--term YYYY-S] [--one-at-a-time] [--prepare-only] [--side-by-side]

``--side-by-side`` validates the two exports at once, one core each, for a host that other work shares: a
busy spell then slows both alike (on the two cores of this machine, a run one after the other would put
whatever else ran meanwhile into one side's time only). CPU seconds are printed beside wall seconds.

At national size (``--students 4000000 --term 2569-1 --one-at-a-time``) the newest term's export is validated
(~385M attendance rows, ~29 GB as UTF-8 CSV with remarks), one encoding's export on disk at a time.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from common import BENCH_DATA, RISK, ROOT, Measured, ensure_synthetic, line, measure

REMARKS = ["", "มาเรียนตามปกติ", "ขาดเรียนไม่แจ้งผู้ปกครอง", "ลาป่วย มีใบรับรองแพทย์", "มาสายเพราะรถโรงเรียนเสีย",
           "ช่วยงานที่บ้านช่วงเก็บเกี่ยว", "ครูประจำชั้นติดตามแล้ว"]
STATUSES = ["present", "absent", "leave", "sick", "late"]

READ = """
import sys, time
from pathlib import Path
from risk.data.contract import TABLES
from risk.data.formats import file_batches
from risk.data.values import typed_frame
table, rows = TABLES["attendance_daily"], 0
started = time.perf_counter()
for batch in file_batches(Path(sys.argv[1]), table, 1_000_000):
    frame, bad = typed_frame(batch, table, source="export")
    rows += len(frame)
print(rows, time.perf_counter() - started)
"""


def timed_read(path: Path) -> tuple[int, float]:
    """Rows and seconds of reading ``path`` in a child process (imports not counted)."""
    done = subprocess.run([sys.executable, "-c", READ, str(path)], cwd=ROOT, check=True, capture_output=True,
                          text=True)
    rows, seconds = done.stdout.split()
    return int(rows), float(seconds)


def with_remarks(table: pa.Table, seed: int) -> pa.Table:
    """``table`` with a Thai remark per row (most rows have none, as in a register)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(REMARKS), table.num_rows, p=[0.4] + [0.1] * 6)
    return table.append_column("remark", pa.DictionaryArray.from_arrays(pick.astype(np.int32), REMARKS).cast(
        pa.string()))


def write_utf8(blocks: Iterator[pa.Table], path: Path) -> None:
    """The blocks, one after another, as one UTF-8 CSV with a header."""
    first = next(blocks)
    with pacsv.CSVWriter(path, first.schema) as out:
        out.write_table(first)
        for block in blocks:
            out.write_table(block)


def transcode(utf8: Path, target: Path, encoding: str = "cp874") -> None:
    """``utf8`` rewritten in ``encoding``, 16 MB at a time (a character cut at a block's end waits for the next)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with utf8.open("rb") as source, target.open("wb") as out:
        while block := source.read(16 << 20):
            out.write(decoder.decode(block).encode(encoding))
        out.write(decoder.decode(b"", final=True).encode(encoding))


def generated_attendance(rows: int, folder: Path) -> tuple[Path, Path]:
    """``rows`` attendance rows with remarks as UTF-8 and cp874 CSV under ``folder`` (made once, reused)."""
    utf8, cp874 = folder / f"attendance-{rows}-utf8.csv", folder / f"attendance-{rows}-cp874.csv"
    if cp874.exists():
        return utf8, cp874
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    ids = np.array([f"{1_100_000_000_000 + i * 7919:013d}" for i in range(50_000)])
    days = np.datetime64("2024-05-16") + np.arange(200)

    def blocks() -> Iterator[pa.Table]:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            block = pa.table({"student_id": ids[rng.integers(0, len(ids), n)],
                              "date": pa.array(days[rng.integers(0, len(days), n)].astype("datetime64[D]")),
                              "status": np.array(STATUSES)[rng.choice(5, n, p=[0.9, 0.04, 0.02, 0.02, 0.02])]})
            yield with_remarks(block, start)

    write_utf8(blocks(), utf8)
    transcode(utf8, cp874)
    return utf8, cp874


def alternating(repeat: int) -> Iterator[str]:
    """UTF-8 then cp874, then the other way round, ``repeat`` times: a busy host's slow spell hits both."""
    for i in range(repeat):
        yield from ("utf-8", "cp874") if i % 2 == 0 else ("cp874", "utf-8")


def bench_read(rows: int, repeat: int) -> None:
    utf8, cp874 = generated_attendance(rows, BENCH_DATA / "encoding")
    best = {"utf-8": float("inf"), "cp874": float("inf")}
    for encoding in alternating(repeat):
        n, seconds = timed_read(utf8 if encoding == "utf-8" else cp874)
        assert n == rows, (encoding, n, rows)
        best[encoding] = min(best[encoding], seconds)
    utf8_s, cp874_s = best["utf-8"], best["cp874"]
    mb = utf8.stat().st_size / 2**20, cp874.stat().st_size / 2**20
    print(f"read attendance CSV, {rows:,} rows with a Thai remark column ({mb[0]:,.0f} MB UTF-8, {mb[1]:,.0f} MB cp874)")
    print("  " + line("cp874 file_batches+typed_frame", cp874_s, "s", "UTF-8, same rows", utf8_s)
          + f"; target ≤ 1.3 ({'met' if cp874_s <= 1.3 * utf8_s else 'MISSED'})")


def export_with_csv_attendance(source: Path, target: Path, encoding: str, utf8_made: Path | None = None) -> None:
    """``source`` (a synthetic export) with attendance as one CSV in ``encoding``; the other tables symlinked.

    ``utf8_made``: the same export's UTF-8 attendance CSV, already written: transcoded from it rather than written
    again, so that a national size never holds two UTF-8 copies on disk at once.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for folder in source.iterdir():
        if folder.is_dir() and folder.name != "attendance_daily":
            (target / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
    csv = target / "attendance_daily.csv"
    if encoding != "utf-8" and utf8_made is not None:
        transcode(utf8_made, csv, encoding)
        return
    parts = sorted((source / "attendance_daily").glob("*.parquet"))
    write_utf8((with_remarks(pq.read_table(p), i) for i, p in enumerate(parts)), csv)
    if encoding != "utf-8":
        transcode(csv, target / "attendance_daily.tmp", encoding)
        (target / "attendance_daily.tmp").replace(csv)


def term_export(source: Path, term: str) -> Path:
    """One term's export of ``source`` (``risk split-export --term``), as a national term arrives; made once."""
    folder = BENCH_DATA / f"{source.name}-terms"
    if not (folder / term).exists():  # every term of the source, so that earlier rows go to earlier terms
        measure([*RISK, "split-export", str(source), str(folder)], quiet=True)
    return folder / term


def validate_once(source: Path, students: int, encoding: str, built: bool) -> tuple[Measured, list]:
    """One ``risk validate --workers 1`` of the export in ``encoding``: its measure and (table, in, used, quarantined).

    ``built``: the export was made beforehand and is kept; otherwise it is made now and removed after the run, so
    that only one national attendance CSV is on disk at a time (UTF-8 with remarks: ~76 bytes a row).
    """
    export = BENCH_DATA / f"encoding-export-{students}-{encoding}"
    if not built:
        export_with_csv_attendance(source, export, encoding)
    out = BENCH_DATA / f"encoding-validated-{students}-{encoding}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        run = measure([*RISK, "validate", str(export), str(out), "--demo", "--quiet", "--workers", "1"], quiet=True)
        report = json.loads((out / "validation_report.json").read_text())
    finally:
        if not built:
            shutil.rmtree(export, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    print(f"  validate ({encoding} attendance): {run.seconds:,.1f} s, CPU {run.cpu_seconds:,.1f} s, "
          f"peak RSS {run.peak_rss_mb:,.0f} MB, {load()}", flush=True)
    return run, [(t["table"], t["rows_in"], t["used"], t["quarantined"]) for t in report["tables"]]


def side_by_side(source: Path, students: int) -> dict[str, tuple[Measured, list]]:
    """Both encodings' validations at once, one core each: whatever else the host runs meanwhile slows both alike."""
    with ThreadPoolExecutor(2) as pool:
        runs = {e: pool.submit(validate_once, source, students, e, True) for e in ("utf-8", "cp874")}
        return {e: run.result() for e, run in runs.items()}


def load() -> str:
    return "load average " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def bench_validate(students: int, repeat: int, term: str | None, one_at_a_time: bool, prepare_only: bool,
                   at_once: bool) -> None:
    source = ensure_synthetic(students, 2)
    if term:
        source = term_export(source, term)
    seconds, counts = {"utf-8": float("inf"), "cp874": float("inf")}, {}
    if not one_at_a_time:
        for encoding in ("utf-8", "cp874"):
            export = BENCH_DATA / f"encoding-export-{students}-{encoding}"
            made = export.with_name(export.name + ".made")
            if not made.exists():  # made once, reused by later runs of the same size
                utf8 = BENCH_DATA / f"encoding-export-{students}-utf-8" / "attendance_daily.csv"
                export_with_csv_attendance(source, export, encoding, utf8 if encoding != "utf-8" else None)
                made.touch()
    if prepare_only:
        print(f"exports made under {BENCH_DATA}; run again without --prepare-only to time them")
        return
    cpu = dict(seconds)
    if at_once and not one_at_a_time:
        for encoding, (run, counts[encoding]) in side_by_side(source, students).items():
            seconds[encoding], cpu[encoding] = run.seconds, run.cpu_seconds
    else:
        for encoding in alternating(repeat):
            run, counts[encoding] = validate_once(source, students, encoding, built=not one_at_a_time)
            seconds[encoding] = min(seconds[encoding], run.seconds)
            cpu[encoding] = min(cpu[encoding], run.cpu_seconds)
    assert counts["utf-8"] == counts["cp874"], "the two encodings validated to different counts"
    rows = next(n for table, n, *_ in counts["cp874"] if table == "attendance_daily")
    what = f"term {term}" if term else "2 terms"
    print(f"risk validate, {students:,} students × {what}, attendance one CSV of {rows:,} rows with a Thai remark")
    how = "both at once, one core each" if at_once and not one_at_a_time else f"best of {repeat}, one after the other"
    print(f"  ({how})")
    print("  " + line("cp874 attendance", seconds["cp874"], "s", "UTF-8 attendance", seconds["utf-8"])
          + f"; target ≤ 1.3 ({'met' if seconds['cp874'] <= 1.3 * seconds['utf-8'] else 'MISSED'})")
    print("  " + line("cp874 attendance, CPU", cpu["cp874"], "s", "UTF-8 attendance, CPU", cpu["utf-8"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000, help="attendance rows of the read measure")
    parser.add_argument("--students", type=int, default=50_000, help="students of the validate measure (2 terms)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per encoding, alternating; the best counts")
    parser.add_argument("--term", help="validate only this term's export (YYYY-S), as a national term arrives")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="make each encoding's export just before its run and remove it after (national sizes: "
                             "one attendance CSV on disk at a time)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="make both encodings' exports (kept for later runs) and stop: the slow, untimed part")
    parser.add_argument("--side-by-side", action="store_true",
                        help="validate both encodings' exports at once, one core each (a shared host slows both alike)")
    parser.add_argument("--skip-read", action="store_true")
    parser.add_argument("--skip-validate", action="store_true")
    args = parser.parse_args()
    if not args.skip_read:
        bench_read(args.rows, args.repeat)
    if not args.skip_validate:
        bench_validate(args.students, args.repeat, args.term, args.one_at_a_time, args.prepare_only,
                       args.side_by_side)


if __name__ == "__main__":
    main()
