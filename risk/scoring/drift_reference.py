"""What a scoring run's drift is measured against: the model's own held-out term at the same school day.

Many features move with the calendar, not with the children: school days so far,
late arrivals this term, the months since the last CCT payment, a 365-day sum of
payments, an attendance rate whose values are ratios of the days so far (2 days
missed of 47 is 0.957, of 49 is 0.959, and a quantile cut between them moves a
tenth of the population across it). The training rows exist only at the sampled
weeks, so a run at week 10 compared with the week-12 training rows read 3 to 6 of
those features as drifted on a population that had not moved (measured on a
synthetic term at six dates, 2026-11-27).

So the reference is rebuilt for the point being scored: the latest term of the
model's held-out window (its test, else calibration term) of the same semester,
on the date that term reached the same number of school days, its features built
by the same builders from the validated folder, for a uniform sample of students
(whole pseudonym buckets, at least ``min_rows``), and scored by the same model.
When that term is not in the validated folder, the stored profile of the nearest
sampled week is used, and the run's record says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from risk.config import Settings
from risk.features.base import AsOf
from risk.features.batch import buckets_of
from risk.features.build import build_features
from risk.features.context_rates import open_validated
from risk.features.sources import view_validated
from risk.models.bundle import ModelBundle
from risk.models.profile import TrainingProfile, discrete_features, training_profile
from risk.models.samples import first_school_day, school_week_of

__all__ = ["DriftReference", "date_of_school_day", "drift_reference", "school_days_elapsed"]

MIN_REFERENCE_ROWS = 50_000


@dataclass(frozen=True)
class DriftReference:
    """The profile a run is compared with and a sentence saying what it is."""

    profile: TrainingProfile
    label: str


def school_days_elapsed(con: duckdb.DuckDBPyConnection, term: str, as_of: dt.date) -> float:
    """How far into ``term`` ``as_of`` is: the mean over students of their school's open days so far."""
    dates, days = _school_days(con, term)
    passed = np.searchsorted(dates, np.datetime64(as_of), side="right")
    return float(days[passed - 1]) if passed else 0.0


def date_of_school_day(con: duckdb.DuckDBPyConnection, term: str, day: float) -> dt.date | None:
    """The date of ``term`` whose :func:`school_days_elapsed` is nearest ``day`` (the earlier of two);
    None when ``term`` is not in the calendar."""
    dates, days = _school_days(con, term)
    if not dates.size:
        return None
    return dates[int(np.argmin(np.abs(days - day)))].astype("datetime64[D]").astype(dt.date)


def _school_days(con: duckdb.DuckDBPyConnection, term: str) -> tuple[np.ndarray, np.ndarray]:
    """Every date of ``term``'s calendars (sorted) and, on each, the mean over students of their school's
    open days so far (each school weighted by its enrolled students: the features are per student). The
    mean, not the median: where most schools keep one calendar the median jumps a whole day at once,
    and a day's shift of a near-constant count is what read as drift."""
    frame = con.execute(
        """SELECT c.school_id, c.date, coalesce(e.students, 0) AS students FROM calendar c
           LEFT JOIN (SELECT school_id, count(*) AS students FROM enrollments WHERE term = ? GROUP BY school_id) e
           USING (school_id) WHERE c.term = ?""", [term, term]).df()
    if frame.empty:
        return np.empty(0, dtype="datetime64[D]"), np.empty(0)
    dates, date_index = np.unique(frame["date"].to_numpy("datetime64[D]"), return_inverse=True)
    schools, school_index = np.unique(frame["school_id"].to_numpy(), return_inverse=True)
    open_days = np.zeros((schools.size, dates.size), dtype=np.int32)
    open_days[school_index, date_index] = 1
    weight = np.zeros(schools.size)
    weight[school_index] = frame["students"].to_numpy(np.float64)
    if weight.sum() == 0:  # no enrollments of the term yet: every school counts the same
        weight[:] = 1.0
    return dates, weight @ np.cumsum(open_days, axis=1) / weight.sum()


def drift_reference(validated: Path, con: duckdb.DuckDBPyConnection, point: AsOf, bundle: ModelBundle,
                    settings: Settings, min_rows: int = MIN_REFERENCE_ROWS) -> DriftReference:
    """The reference of a run at ``point`` (``con``: the run's connection, for the calendar)."""
    semester = point.term[-1]
    split = bundle.meta.get("split", {})
    held_out = [t for t in [*split.get("test", []), *split.get("calibration", [])] if t[-1] == semester]
    day = school_days_elapsed(con, point.term, point.date)
    for term in held_out:
        on = date_of_school_day(con, term, day)
        if on is None:
            continue
        frame = _sample_features(validated, AsOf(on), bundle, settings, min_rows)
        if len(frame):
            X = frame[bundle.names].to_numpy(np.float64)
            profile = training_profile(X, bundle.names, bundle.probability(X),
                                       discrete=discrete_features(bundle.catalog, bundle.names))
            return DriftReference(profile, f"held-out term {term} on {on} (school day {day:.1f}, as on {point.date}): "
                                           f"{len(frame):,} students")
    first = first_school_day(con, point.term)
    week = school_week_of(point.date, first) if first else 1
    profile, sampled = bundle.drift_profile(int(semester), week)
    why = f"held-out term{'s' if len(held_out) > 1 else ''} {', '.join(held_out)} not in the validated data" \
        if held_out else "no held-out term of this semester"
    return DriftReference(profile, f"training rows of the nearest sampled point ({sampled}; {why})")


def _sample_features(validated: Path, point: AsOf, bundle: ModelBundle, settings: Settings,
                     min_rows: int) -> pd.DataFrame:
    """Features at ``point`` of whole buckets of students (bucketing is by pseudonym: a uniform sample)."""
    con = open_validated(validated, point, settings)
    try:
        frames, rows = [], 0
        for bucket in buckets_of(validated):
            view_validated(con, validated, bucket=bucket)
            frame = build_features(con, point, bundle.catalog, keep_shared=True)
            frames.append(frame)
            rows += len(frame)
            if rows >= min_rows:
                break
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    finally:
        con.close()
