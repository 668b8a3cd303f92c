"""The terms a model learns from, is calibrated on and is tested on, and the school weeks its samples are taken at.

A term's outcome is known once the following term's register is validated
(:func:`known_outcome_terms`). The known terms split in time, oldest first:
train on the earlier ones, calibrate on the next, test on the latest
(:func:`split_terms`, a pure function of the term list and ``split`` settings).
Within a term, features are taken at school weeks (:func:`sample_points`): week 1
is the week (Monday to Sunday) holding the term's first school day in any
school's calendar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from risk.data.contract import next_term
from risk.errors import RiskError
from risk.models.settings import SplitSettings

__all__ = ["SamplePoint", "TermSplit", "TrainingDataError", "first_school_day", "known_outcome_terms",
           "sample_points", "school_week_of", "split_terms"]


class TrainingDataError(RiskError):
    """The validated data cannot give training samples (no outcomes, too few terms, no dropouts)."""


@dataclass(frozen=True)
class SamplePoint:
    """One point of a term at which features are taken: ``week`` N, or the last school day (``week`` None)."""

    term: str
    as_of: dt.date
    week: int | None
    school_week: int = 0  # the week of the term it falls in (the last school day too)

    @property
    def label(self) -> str:
        return f"week {self.week}" if self.week is not None else "last day"


@dataclass(frozen=True)
class TermSplit:
    """Terms by role, oldest first: train on the earlier ones, calibrate on the next, test on the latest."""

    train: list[str]
    calibration: list[str]
    test: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": self.train, "calibration": self.calibration, "test": self.test}

    @property
    def terms(self) -> list[str]:
        """Every term of the split, oldest first."""
        return self.train + self.calibration + self.test


def known_outcome_terms(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Terms whose following term's register is present, oldest first."""
    terms = [r[0] for r in con.execute("SELECT DISTINCT term FROM enrollments ORDER BY term").fetchall()]
    present = set(terms)
    return [t for t in terms if next_term(t) in present]


def split_terms(terms: list[str], split: SplitSettings) -> TermSplit:
    """Temporal split of the known-outcome terms; raises TrainingDataError when there are too few."""
    needed = split.min_train_terms + split.calibration_terms + split.test_terms
    if len(terms) < needed:
        have = ", ".join(terms) or "none"
        raise TrainingDataError(
            f"training needs {needed} terms with a known outcome ({split.min_train_terms} to train, "
            f"{split.calibration_terms} to calibrate, {split.test_terms} to test) but the data has {len(terms)} "
            f"({have}); a term's outcome is known once the next term's enrollments are validated")
    test = terms[-split.test_terms:]
    calibration = terms[-split.test_terms - split.calibration_terms:-split.test_terms]
    return TermSplit(train=terms[:-split.test_terms - split.calibration_terms], calibration=calibration, test=test)


def sample_points(con: duckdb.DuckDBPyConnection, term: str, weeks: list[int], last_school_day: bool
                  ) -> list[SamplePoint]:
    """The points of ``term``: the Friday of each school week (week 1 holds the first school day), clamped
    to the last school day, and the last school day itself; from the schools' calendars."""
    first, last = con.execute("SELECT min(date), max(date) FROM calendar WHERE term = ?", [term]).fetchone()
    if first is None:
        raise TrainingDataError(f"term {term} has no school days in the calendar: its samples cannot be placed")
    monday = first - dt.timedelta(days=first.weekday())
    points: dict[dt.date, SamplePoint] = {}
    for week in sorted(weeks):
        day = min(monday + dt.timedelta(weeks=week - 1, days=4), last)
        points.setdefault(day, SamplePoint(term, day, week, school_week_of(day, first)))
    if last_school_day:
        points.setdefault(last, SamplePoint(term, last, None, school_week_of(last, first)))
    return sorted(points.values(), key=lambda p: p.as_of)


def school_week_of(day: dt.date, first_school_day: dt.date) -> int:
    """Week of the term holding ``day``: week 1 is the week (Monday to Sunday) of the first school day."""
    monday = first_school_day - dt.timedelta(days=first_school_day.weekday())
    return (day - monday).days // 7 + 1


def first_school_day(con: duckdb.DuckDBPyConnection, term: str) -> dt.date | None:
    """The first day any school was open in ``term``, from the calendars."""
    return con.execute("SELECT min(date) FROM calendar WHERE term = ?", [term]).fetchone()[0]
