"""The run report: rows, injected errors, dropout shape and the oracle's AUC."""

from __future__ import annotations

import resource

import numpy as np
from pydantic import BaseModel, Field

from risk.data.contract import GRADE_LEVELS

__all__ = ["DropoutTally", "SynthReport", "auc", "peak_rss_mb"]


class SynthReport(BaseModel):
    """What a synth run wrote and how the generated world behaves (also ``synth_report.json``)."""

    students: int
    terms: list[str]
    seed: int
    schools: int
    chunks: int
    clean: bool = Field(description="no injected errors")
    rows: dict[str, int] = Field(description="rows written per table, injected rows included")
    injected: dict[str, dict[str, int]] = Field(description="injected errors per table and kind")
    injected_share: dict[str, float] = Field(description="injected rows / rows, per table")
    dropout_rate_by_term: dict[str, dict[str, float]] = Field(
        description="per term whose next term exists: share of enrolled students not enrolled next term, by grade and overall")
    dropout_rate_by_year: dict[str, dict[str, float]] = Field(
        description="per academic year with both semesters' outcomes known: 1 − Π(1 − term rate), by grade and overall")
    mid_term_dropout_rate: dict[str, float] = Field(description="share of enrolled students dropping out mid-term, per term, by grade (all terms pooled)")
    non_returner_share: dict[str, float] = Field(description="share of all non-returners by grade")
    share_m3: float
    share_p6: float
    recorded_as_transferred: int = Field(description="non-returners the school recorded as transferred (unknown)")
    oracle_auc: float | None = Field(description="AUC of the true p_dropout against what happened (known terms)")
    seconds: float
    peak_rss_mb: float

    def summary_lines(self) -> list[str]:
        """A few human-readable lines for the CLI."""
        years = ", ".join(f"{y}: {v['overall']:.1%}" for y, v in self.dropout_rate_by_year.items())
        if not years:  # no academic year with both semesters' outcomes: show the terms
            years = "n/a; per term " + (", ".join(f"{t}: {v['overall']:.1%}"
                                                  for t, v in self.dropout_rate_by_term.items()) or "n/a")
        injected = sum(sum(k.values()) for k in self.injected.values())
        total = sum(self.rows.values())
        lines = [
            f"{self.students:,} students × {len(self.terms)} terms ({self.terms[0]} … {self.terms[-1]}), "
            f"{self.schools:,} schools, seed {self.seed}: {total:,} rows in {self.seconds:.1f} s, "
            f"peak RSS {self.peak_rss_mb:,.0f} MB",
            "rows: " + ", ".join(f"{t} {n:,}" for t, n in self.rows.items()),
            f"injected errors: {injected:,} ({injected / max(total, 1):.2%} of rows)"
            + (" — clean run" if self.clean else ""),
            f"yearly non-return: {years}; non-returners at M3 {self.share_m3:.0%}, at P6 {self.share_p6:.0%}",
            "oracle AUC (true p_dropout vs outcome): "
            + (f"{self.oracle_auc:.3f}" if self.oracle_auc is not None else "n/a (no term with a known outcome)"),
        ]
        return lines


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB (Linux: KB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Area under the ROC curve (ties averaged); None when one class is absent."""
    label = label.astype(bool)
    pos = int(label.sum())
    neg = label.shape[0] - pos
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(s.shape[0], dtype=np.float64)
    # Average ranks over ties.
    boundaries = np.r_[0, np.flatnonzero(np.diff(s)) + 1, s.shape[0]]
    for_runs = (boundaries[:-1] + boundaries[1:] - 1) / 2 + 1
    ranks[order] = np.repeat(for_runs, np.diff(boundaries))
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


class DropoutTally:
    """Counts per known term and grade, accumulated over chunks."""

    def __init__(self, terms: list[str]) -> None:
        g = len(GRADE_LEVELS)
        self.terms = terms
        self.enrolled = np.zeros((len(terms), g), dtype=np.int64)
        self.dropped = np.zeros((len(terms), g), dtype=np.int64)
        self.mid_term = np.zeros((len(terms), g), dtype=np.int64)
        self.transferred = 0
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, t: int, grade: np.ndarray, dropout: np.ndarray, within: np.ndarray, p: np.ndarray,
            recorded_transferred: int) -> None:
        g = len(GRADE_LEVELS)
        self.enrolled[t] += np.bincount(grade, minlength=g)
        self.dropped[t] += np.bincount(grade[dropout], minlength=g)
        self.mid_term[t] += np.bincount(grade[within], minlength=g)
        self.transferred += recorded_transferred
        self.scores.append(p.astype(np.float32))
        self.labels.append(dropout)

    def known(self) -> list[int]:
        return [t for t in range(len(self.terms) - 1)]

    def fill(self) -> dict:
        known = self.known()
        by_term: dict[str, dict[str, float]] = {}
        for t in known:
            rate = self.dropped[t] / np.maximum(self.enrolled[t], 1)
            row = {GRADE_LEVELS[g]: round(float(rate[g]), 5) for g in range(len(GRADE_LEVELS))}
            row["overall"] = round(float(self.dropped[t].sum() / max(self.enrolled[t].sum(), 1)), 5)
            by_term[self.terms[t]] = row
        by_year: dict[str, dict[str, float]] = {}
        for term in by_term:
            year, sem = term.split("-")
            other = f"{year}-{3 - int(sem)}"
            if sem == "1" and other in by_term:
                by_year[year] = {k: round(1 - (1 - by_term[term][k]) * (1 - by_term[other][k]), 5)
                                 for k in by_term[term]}
        dropped = self.dropped[known].sum(axis=0) if known else np.zeros(len(GRADE_LEVELS))
        total = max(int(dropped.sum()), 1)
        share = {GRADE_LEVELS[g]: round(float(dropped[g] / total), 4) for g in range(len(GRADE_LEVELS))}
        mid = self.mid_term.sum(axis=0) / np.maximum(self.enrolled.sum(axis=0), 1)
        mid_rate = {GRADE_LEVELS[g]: round(float(mid[g]), 5) for g in range(len(GRADE_LEVELS))}
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, bool)
        return {
            "dropout_rate_by_term": by_term, "dropout_rate_by_year": by_year, "mid_term_dropout_rate": mid_rate,
            "non_returner_share": share, "share_m3": share["M3"], "share_p6": share["P6"],
            "recorded_as_transferred": self.transferred, "oracle_auc": auc(scores, labels),
        }
