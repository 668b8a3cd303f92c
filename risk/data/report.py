"""What a validation run reports: per table, rows in = used + unchanged + quarantined.

``unchanged`` counts rows of a reference table (schools, calendar) sent again exactly
as the store holds them: not new, not rejected. A run report also says which tables
lost more rows than ``loss_warn_share`` (``warning``) and which were taken although
they lost more than ``loss_fail_share`` (``loss_accepted``, from ``--accept-loss``).
"""

from __future__ import annotations

from pydantic import BaseModel

from risk.data.formats import FileInfo

__all__ = ["TableCounts", "ValidationReport"]


class TableCounts(BaseModel):
    """Rows of one table: read, used, unchanged, quarantined (in total and per rule)."""

    table: str
    files: int
    rows_in: int
    used: int
    quarantined: int
    by_rule: dict[str, int]
    unchanged: int = 0
    warning: str = ""
    loss_accepted: bool = False

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.used + self.unchanged + self.quarantined

    @property
    def lost(self) -> int:
        """Rejected rows whose content the store does not hold: all but exact copies (``duplicate``)."""
        return self.quarantined - self.by_rule.get("duplicate", 0)

    def top_rules(self, n: int = 3) -> str:
        """``bad_date 9,006, missing_required 12``: the most frequent rules, for people."""
        return ", ".join(f"{r} {k:,}" for r, k in sorted(self.by_rule.items(), key=lambda kv: -kv[1])[:n])

    def __add__(self, other: TableCounts) -> TableCounts:
        """The two runs together; the warning and acceptance of the later run (``other``) are kept."""
        rules = {r: self.by_rule.get(r, 0) + other.by_rule.get(r, 0) for r in {*self.by_rule, *other.by_rule}}
        return TableCounts(table=self.table, files=self.files + other.files, rows_in=self.rows_in + other.rows_in,
                           used=self.used + other.used, unchanged=self.unchanged + other.unchanged,
                           quarantined=self.quarantined + other.quarantined, by_rule=dict(sorted(rules.items())),
                           warning=other.warning, loss_accepted=other.loss_accepted)


class ValidationReport(BaseModel):
    """One run (``batch``), or the store's cumulative state (``runs``: the batches that added rows).

    ``mode`` is ``new`` (a fresh store), ``append`` (into an existing one), ``skipped``
    (this export was taken before, by ``skipped_as``; nothing was read or written) or
    ``failed`` (a data error stopped it, ``failure`` says why; nothing was published).
    """

    source: str
    output: str
    seconds: float
    tables: list[TableCounts]
    batch: str = ""
    mode: str = "new"
    skipped_as: str = ""
    runs: list[str] = []
    failure: str = ""
    # How each table's files were read (format, encoding or sheet, header mapping); of the latest run.
    files: dict[str, list[FileInfo]] = {}
    # Seconds per step of the latest run, over all tables (read, pseudonymise, lookups, checks, quarantine,
    # stage, duplicates, write, count, references); a step run in worker processes sums their time.
    steps: dict[str, float] = {}

    @property
    def skipped(self) -> bool:
        return self.mode == "skipped"

    @property
    def changed(self) -> bool:
        """Whether the run added rows to the validated tables."""
        return any(t.used for t in self.tables)

    def summary_lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.source} was validated into {self.output} before (batch {self.skipped_as}): "
                    "nothing to do; --replace starts the store again"]
        lines = [f"{'table':<18}{'in':>14}{'used':>14}{'unchanged':>11}{'quarantined':>13}  top reasons"]
        for t in self.tables:
            lines.append(f"{t.table:<18}{t.rows_in:>14,}{t.used:>14,}{t.unchanged:>11,}{t.quarantined:>13,}  "
                         f"{t.top_rules()}")
        total = [sum(getattr(t, c) for t in self.tables) for c in ("rows_in", "used", "unchanged", "quarantined")]
        lines.append(f"{'all':<18}{total[0]:>14,}{total[1]:>14,}{total[2]:>11,}{total[3]:>13,}  "
                     f"in {self.seconds:.1f} s")
        lines += [f"warning: {t.warning}" for t in self.tables if t.warning]
        if self.mode == "append":
            lines.append(f"appended to the validated store in {self.output} as batch {self.batch}"
                         + ("" if self.changed else ": no new rows, the tables are unchanged"))
        return lines
