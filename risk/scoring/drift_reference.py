"""What a scoring run's drift is measured against, and how far an unchanged population moves.

Reference. Many features move with the calendar, not with the children: school
days so far, late arrivals this term, the months since the last CCT payment, a
365-day sum of payments, an attendance rate whose values are ratios of the days
so far (2 days missed of 47 is 0.957, of 49 is 0.959, and a quantile cut between
them moves a tenth of the population across it). The training rows exist only at
the sampled weeks, so a run at week 10 compared with the week-12 training rows
read 3 to 6 of those features as drifted on a population that had not moved
(measured on a synthetic term at six dates, 2026-11-27).

So the reference is rebuilt for the point being scored: the latest term of the
model's held-out window (its test, else calibration term) of the same semester,
on the date that term reached the same number of school days, its features built
by the same builders from the validated folder, for a uniform sample of students
(whole pseudonym buckets, at least ``min_rows``), and scored by the same model.
When that term is not in the validated folder, the stored profile of the nearest
sampled week is used, and the run's record says so.

Calendar-bound features. Counts this term, rates of the days so far, streaks,
the exam-line margin and the 365-day sums of assistance are compared like for
like: the reference is the same semester at the same school day a year earlier,
so a count covers as many school days and a 365-day sum the same season of
payments. Four features stay in the table but are left out of the warning
(``drift.left_out``), because like for like they still read an unchanged synthetic
population (4,000 students, six terms, six dates; 2026-12-07) as drifted:

* school days so far (PSI 0.45 to 2.1): at the same mean school day the count
  still differs by a day where a holiday or a school's closure fell otherwise; it
  describes the calendar, and a feed that stops shows in the rates beside it;
* months since the last payment (1.0 to 4.5): CCT payments go out in batches on
  set dates that move by days from year to year, and a whole batch falls on one
  side of a quantile cut one year and on the other the next; the same PSI between
  two past terms ranged 0.25 to 2.2 across the dates, so no threshold from it holds;
* school and district past dropout rates (1.2 and 1.5): recomputed from the
  register each term (from fewer earlier terms while the data is young), and
  school-level, so all of a school's students cross a cut at once and the PSI has
  the noise of a few dozen schools, not of thousands of students.

What they do to the model still shows in the score's PSI, which can ring alone.

Thresholds from term-to-term variation. A second past term of the same semester
is rebuilt the same way (another held-out term, else the reference term's semester
a year earlier, on the date it reached the same school day) and counted into the
reference's bins: the PSI between the two past terms is what a year of an
unchanged population shows at this point of the term, with the same lumps. Each
feature's threshold is ``max(threshold, term_multiple × that PSI)``, the score's
too. A second term that is the first of the data is not used (its features built
from earlier terms, GPA last term, the 365-day sums, have no history, so they
would read as changing and their thresholds would never be reached); without a
second term every threshold is the config's, and the record says so in
``basis``. Only features with at least ``min_importance`` of the booster's gain
may ring the warning: the others barely move the score.
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
from risk.features.batch import first_buckets_features
from risk.models.bundle import ModelBundle
from risk.models.profile import TrainingProfile, discrete_features, training_profile
from risk.models.term_split import first_school_day, school_week_of
from risk.scoring.drift import DriftAccumulator, DriftLimits
from risk.scoring.settings import DriftSettings

__all__ = ["DriftReference", "date_of_school_day", "drift_limits", "drift_reference", "ringing_features",
           "school_days_elapsed"]

MIN_REFERENCE_ROWS = 50_000


@dataclass(frozen=True)
class DriftReference:
    """The profile a run is compared with, a sentence saying what it is, and the run's drift thresholds."""

    profile: TrainingProfile
    label: str
    limits: DriftLimits | None = None


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
                    settings: Settings, drift: DriftSettings | None = None,
                    min_rows: int = MIN_REFERENCE_ROWS) -> DriftReference:
    """The reference of a run at ``point`` (``con``: the run's connection, for the calendar) and its thresholds."""
    drift = drift or DriftSettings()
    semester = point.term[-1]
    split = bundle.meta.get("split", {})
    held_out = [t for t in [*split.get("test", []), *split.get("calibration", [])] if t[-1] == semester]
    day = school_days_elapsed(con, point.term, point.date)
    ringing = ringing_features(bundle, drift)
    for term in held_out:
        found = _term_at(validated, con, term, day, bundle, settings, min_rows)
        if found is None:
            continue
        on, X, scores = found
        profile = training_profile(X, bundle.names, scores, discrete=discrete_features(bundle.catalog, bundle.names))
        limits = drift_limits(profile, _second_term(validated, con, term, held_out, day, bundle, settings, min_rows),
                              drift, ringing, against=term)
        return DriftReference(profile, f"held-out term {term} on {on} (school day {day:.1f}, as on {point.date}): "
                                       f"{len(X):,} students", limits)
    first = first_school_day(con, point.term)
    week = school_week_of(point.date, first) if first else 1
    profile, sampled = bundle.drift_profile(int(semester), week)
    why = f"held-out term{'s' if len(held_out) > 1 else ''} {', '.join(held_out)} not in the validated data" \
        if held_out else "no held-out term of this semester"
    limits = drift_limits(profile, None, drift, ringing, against=None)
    return DriftReference(profile, f"training rows of the nearest sampled point ({sampled}; {why})", limits)


def ringing_features(bundle: ModelBundle, drift: DriftSettings) -> list[str]:
    """The model's features that may ring the warning: ``min_importance`` of the model's importance (the
    LightGBM model's split gain; :meth:`~risk.models.bundle.ModelBundle.importance_shares`), not ``left_out``."""
    share = bundle.importance_shares()
    left_out = set(drift.left_out)
    if share is None:  # a model that ranks no feature above another: every feature may ring
        return [n for n in bundle.names if n not in left_out]
    return [n for n, s in zip(bundle.names, share, strict=True) if s >= drift.min_importance and n not in left_out]


def drift_limits(profile: TrainingProfile, second: tuple[str, dt.date, np.ndarray, np.ndarray] | str | None,
                 drift: DriftSettings, ringing: list[str], against: str | None) -> DriftLimits:
    """Thresholds for a run compared with ``profile``.

    ``second`` is the second past term ``(term, date, X, scores)`` (features in the profile's order and
    their scores), or why there is none (a sentence, or None). With it, each feature's threshold is
    ``max(drift.threshold, drift.term_multiple × PSI of the second term against the profile)``, the
    score's too; without it, ``drift.threshold``.
    """
    rule = dict(floor=drift.threshold, ringing=ringing, min_features=drift.min_features,
                strong_multiple=drift.strong_multiple)
    if not isinstance(second, tuple):
        why = second or "the reference is the training profile, not a past term"
        return DriftLimits(score=drift.threshold, basis=f"no second past term ({why}): every threshold is "
                                                        f"the config's {drift.threshold:g}", **rule)
    term, on, X, scores = second
    between = DriftAccumulator(profile).add(X, scores).report(threshold=np.inf, warn=0.0)
    k, floor = drift.term_multiple, drift.threshold
    features = {f.name: max(floor, k * f.psi) for f in between.features if np.isfinite(f.psi)}
    return DriftLimits(score=max(floor, k * between.score_psi) if np.isfinite(between.score_psi) else floor,
                       features=features, basis=f"{k:g} x the PSI between past terms {term} (on {on}, {len(X):,} "
                                                f"students) and {against}, at least {floor:g}", **rule)


def _second_term(validated: Path, con: duckdb.DuckDBPyConnection, term: str, held_out: list[str], day: float,
                 bundle: ModelBundle, settings: Settings, min_rows: int
                 ) -> tuple[str, dt.date, np.ndarray, np.ndarray] | str:
    """Another past term of ``term``'s semester at school day ``day``: another held-out term, else the same
    semester a year before; or why there is none. The first term of the data is not used (see the docstring)."""
    first_term = con.execute("SELECT min(term) FROM calendar").fetchone()[0]
    year, semester = term.split("-")
    candidates = [t for t in held_out if t != term] + [f"{int(year) - 1}-{semester}"]
    for candidate in candidates:
        if first_term is None or candidate <= first_term:
            continue
        found = _term_at(validated, con, candidate, day, bundle, settings, min_rows)
        if found is not None:
            return (candidate, *found)
    return (f"{candidates[-1]} is the first term of the data" if first_term == candidates[-1]
            else f"{', '.join(candidates)} not in the validated data")


def _term_at(validated: Path, con: duckdb.DuckDBPyConnection, term: str, day: float, bundle: ModelBundle,
             settings: Settings, min_rows: int) -> tuple[dt.date, np.ndarray, np.ndarray] | None:
    """``term`` on the date it reached school day ``day``: that date, the sample's features (n, f) in the
    model's order and their scores (n,); None when the term is not in the calendar or has no student."""
    on = date_of_school_day(con, term, day)
    if on is None:
        return None
    frame = _sample_features(validated, AsOf(on), bundle, settings, min_rows)
    if not len(frame):
        return None
    X = frame[bundle.names].to_numpy(np.float64)
    return on, X, bundle.probability(X)


def _sample_features(validated: Path, point: AsOf, bundle: ModelBundle, settings: Settings,
                     min_rows: int) -> pd.DataFrame:
    """Features at ``point`` of whole buckets of students (bucketing is by pseudonym: a uniform sample)."""
    return first_buckets_features(validated, point, bundle.catalog, settings, min_rows)
