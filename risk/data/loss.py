"""The data-health gate of a validation run, and what a failed run leaves on disk.

A table *loses* the rows it quarantines, except exact copies (``duplicate``), whose
content is already there. A run warns when a table loses more than ``warn_share`` of
its incoming rows, and fails when it loses ``fail_share`` or more (the default 1.0:
all of them), unless the table is named in ``accept_loss`` (``--accept-loss TABLE``).
A table with no incoming rows loses nothing.

A failed run publishes nothing: the store keeps its tables, reports and manifest
byte for byte. What the run found stays for people to read, under
``failed_runs/<batch>/``: ``report.json`` (its counts so far and the reason) and
``quarantine/<table>/*.parquet`` (every row it rejected, with its rule).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from risk.data.report import TableCounts, ValidationReport
from risk.errors import ContractError
from risk.logs import get_logger

__all__ = ["FAILED_RUNS", "DataLossError", "empty_table_reason", "judge_loss", "keep_failed_run"]

log = get_logger(__name__)
FAILED_RUNS = "failed_runs"


class DataLossError(ContractError):
    """A table of the export lost too many rows (or, in a new store, every row); nothing of the run was published.

    ``table`` names the table; ``failed_run`` the folder that keeps the run's quarantine and report.
    """

    def __init__(self, message: str, *, table: str, failed_run: Path | None = None) -> None:
        super().__init__(message)
        self.table = table
        self.failed_run = failed_run


def judge_loss(counts: TableCounts, *, accept_loss: frozenset[str], warn_share: float,
               fail_share: float) -> tuple[TableCounts, str]:
    """``counts`` with its warning and acceptance set, and why the run must stop ("" when it may go on)."""
    if counts.rows_in == 0 or counts.lost == 0:
        return counts, ""
    share = counts.lost / counts.rows_in
    what = (f"table {counts.table!r} lost {_share(counts.lost, counts.rows_in)} of its {counts.rows_in:,} incoming "
            f"rows ({counts.top_rules()})")
    if share >= fail_share and counts.table not in accept_loss:
        return counts, (f"{what}, so the run stopped; fix the export, or pass --accept-loss {counts.table} "
                        "to take it anyway")
    if share >= fail_share:
        log.warning("table loss accepted", table=counts.table, rows_in=counts.rows_in, lost=counts.lost,
                    share=round(share, 4))
        return counts.model_copy(update={"warning": f"{what}; taken as --accept-loss {counts.table} asked",
                                         "loss_accepted": True}), ""
    if share > warn_share:
        log.warning("table lost rows", table=counts.table, rows_in=counts.rows_in, lost=counts.lost,
                    share=round(share, 4))
        return counts.model_copy(update={"warning": f"{what}; see the quarantine"}), ""
    return counts, ""


def empty_table_reason(counts: TableCounts, files: list[Path]) -> str:
    """Why a new store cannot start: the table brought no usable row (never "has no rows" when rows came in)."""
    where = ", ".join(str(p) for p in files)
    if counts.rows_in == 0:
        return f"table {counts.table!r} has no rows in {where}, and a new store cannot start without it"
    return (f"table {counts.table!r} had {counts.rows_in:,} rows in {where} and every one was rejected "
            f"({counts.top_rules()}), and a new store cannot start without it; fix the export and validate again")


def keep_failed_run(out_dir: Path, incoming: Path, report: ValidationReport) -> Path:
    """Move the run's quarantine from ``incoming`` to ``out_dir/failed_runs/<batch>/`` beside its report.

    ``report.json`` is written last: a folder without it was cut short while being kept.
    """
    folder = out_dir / FAILED_RUNS / report.batch
    folder.mkdir(parents=True, exist_ok=True)
    quarantine = incoming / "quarantine"
    if quarantine.is_dir():
        shutil.rmtree(folder / "quarantine", ignore_errors=True)
        shutil.move(quarantine, folder / "quarantine")
    temporary = folder / "report.json.tmp"
    temporary.write_text(json.dumps(report.model_dump(), indent=2, ensure_ascii=False))
    os.replace(temporary, folder / "report.json")
    log.warning("run failed", batch=report.batch, reason=report.failure, kept=str(folder))
    return folder


def _share(lost: int, rows_in: int) -> str:
    if lost == rows_in:
        return "all"
    return f"{lost:,} ({lost / rows_in:.1%})"
