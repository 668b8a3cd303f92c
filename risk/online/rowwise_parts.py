"""The parts of the row-wise evaluator: one student's rows of each SQL part of the domain modules.

Each function mirrors the part it names (:mod:`risk.features.attendance`'s ``att_day``,
:mod:`risk.features.household`'s ``hh_event``, ...) on one student's records at a
:class:`Moment`, and returns the columns the kinds of :mod:`risk.online.rowwise_kinds`
aggregate, or None when the student has no rows in it (the LEFT JOIN of the plan:
every feature of the part is then NULL). Event parts hold their rows newest first
(``rnk`` 1 first), events of one day in the order of their values as SQL ranks them
(:func:`risk.features.events.ranked_events`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from risk.data.contract import NUMERIC_GRADES
from risk.features.attendance import ATTENDED
from risk.features.behaviour import FLAGS, SDQ
from risk.features.enrollment import USUAL_AGE
from risk.features.growth import DAYS_PER_MONTH, who_zscores
from risk.features.kinds import EVENT_COLUMNS
from risk.online.rowwise_records import Columns, Moment, StudentRecords, among, nan_sum

__all__ = ["PARTS", "PART_OF"]

_GRADE_VALUE = {g: float(g) for g in NUMERIC_GRADES}
_FAILED_MARKS = frozenset(("0", "ร", "มส"))
_ATTENDED = frozenset(ATTENDED)


def _context_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> dict[str, Any]:
    """``context``: the cohort row, its school, age, over-age and the past rates."""
    school = m.refs.school(c["school_id"]) or {}
    rate = m.refs.rates(m.term).get(c["school_id"], (np.nan, np.nan))
    birth = c["birth_date"]
    known = not np.isnat(birth)
    usual = USUAL_AGE.get(c["grade_level"])
    return {
        "grade_level": c["grade_level"], "sex": c["sex"], "nationality": c["nationality"],
        "disability": c["disability"], "size": school.get("size"), "area": school.get("area"),
        "region": school.get("region"), "affiliation": school.get("affiliation"),
        "age_years": (m.day - birth).astype(np.int64) / 365.25 if known else np.nan,
        "over_age_years": ((m.term_start - birth).astype(np.int64) / 365.25 - usual
                           if known and usual is not None else np.nan),
        "school_rate": rate[0], "district_rate": rate[1],
        "history": _history(rec, c, m.term),
    }


def _history(rec: StudentRecords, c: dict[str, Any], term: str) -> tuple[float, float, float] | None:
    """``enr_history``: (repeated_grade, schools_attended, terms_enrolled) over enrollments up to this term."""
    enr = rec.table("enrollments")
    rows = enr["term"] <= term
    if not rows.any():
        return None
    terms, grades, schools = enr["term"][rows], enr["grade_level"][rows], enr["school_id"][rows]
    year = c["term"][:4]
    repeated = any(g == c["grade_level"] and t[:4] < year for g, t in zip(grades, terms, strict=True))
    return float(repeated), float(len({s for s in schools if s is not None})), float(len(set(terms)))


def _attendance_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """``att_day``: the school days of this term and the last, ranked back from ``as_of``, and their status."""
    enr = rec.table("enrollments")
    current = [s for t, s in zip(enr["term"], enr["school_id"], strict=True) if t == m.term]
    days_now = [m.refs.calendar(s, m.term) for s in current]
    days_now = [d[d <= m.day] for d in days_now]
    n = len(days_now[0]) if days_now else 0
    dates, ranks, in_term = [], [], []
    for term, school in zip(enr["term"], enr["school_id"], strict=True):
        if term not in (m.term, m.previous):
            continue
        days = m.refs.calendar(school, term)
        days = days[days <= m.day]
        back = np.arange(len(days), 0, -1)  # the latest day is 1
        dates.append(days)
        ranks.append(back if term == m.term else n + back)
        in_term.append(np.full(len(days), term == m.term))
    if not dates or not sum(len(d) for d in dates):
        return None
    date = np.concatenate(dates)
    att = rec.table("attendance_daily")
    status = np.full(len(date), "missing", dtype=object)
    recorded = (att["date"] <= m.day) & among(att["term"], frozenset((m.term, m.previous))) if len(
        att.get("date", ())) else np.zeros(0, dtype=bool)
    if recorded.any():  # each school day's row, if any (validated rows are unique by date)
        order = np.argsort(att["date"][recorded], kind="stable")
        days, statuses = att["date"][recorded][order], att["status"][recorded][order]
        at = np.minimum(np.searchsorted(days, date), len(days) - 1)
        found = days[at] == date
        status[found] = statuses[at[found]]
    attended = among(status, _ATTENDED)
    weekday = (date.astype(np.int64) + 3) % 7 + 1  # 1970-01-01 was a Thursday; ISO: Monday 1 … Sunday 7
    return {"in_term": np.concatenate(in_term), "day_rank": np.concatenate(ranks), "status": status,
            "attended": attended, "weekday": weekday}


def _grades_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> dict[int, dict[str, float]] | None:
    """``grade_term``: per graded term up to this one (entered by ``as_of``), its measures, by dense rank."""
    g = rec.table("grades")
    if not len(g.get("term", ())):
        return None
    rows = (g["recorded_on"] <= m.day) & (g["term"] <= m.term)
    if not rows.any():
        return None
    terms, credits, grades = g["term"][rows], g["credits"][rows], g["grade"][rows]
    out = {}
    for rank, term in enumerate(sorted(set(terms), reverse=True), start=1):
        mine = terms == term
        cr, gr = credits[mine], grades[mine]
        value = np.array([_GRADE_VALUE.get(x, np.nan) for x in gr])
        numeric = ~np.isnan(value)
        points = nan_sum(cr * value)
        weight = nan_sum(np.where(numeric, cr, np.nan))
        failed = among(gr, _FAILED_MARKS)
        out[rank] = {
            "gpa": points / weight if weight and not np.isnan(weight) else np.nan,
            "n_zero": float((gr == "0").sum()), "n_incomplete": float((gr == "ร").sum()),
            "n_not_eligible": float((gr == "มส").sum()), "n_activity_failed": float((gr == "มผ").sum()),
            "failed_credits": float(np.nansum(cr[failed])) if failed.any() else 0.0,
            "n_subjects": float(len(gr)),
        }
    return out


def _events(table: Columns, date_column: str, day: np.datetime64) -> tuple[Columns, np.ndarray] | None:
    """The table's events on or before ``day``, newest first (events of one day as :func:`_newest_first` leaves
    them to order), and their dates."""
    if not len(table.get(date_column, ())):
        return None
    rows = np.flatnonzero(table[date_column] <= day)
    if not len(rows):
        return None
    order = rows[np.argsort(-table[date_column][rows].astype(np.int64), kind="stable")]
    return {k: v[order] for k, v in table.items()}, table[date_column][order]


def _newest_first(part: Columns, domain: str) -> Columns:
    """The part of :func:`_events`' rows in ``rnk`` order, as :func:`risk.features.events.ranked_events` ranks them:
    events of one day by the part's columns (``EVENT_COLUMNS[domain]``) ascending, missing last."""
    dates = part["event_date"]
    if (dates[1:] < dates[:-1]).all():  # no two events on one day (the usual case): already in order
        return part
    days = dates.astype(np.int64)
    keys = [_ascending(part[column]) for column in reversed(EVENT_COLUMNS[domain])]
    order = np.lexsort([*keys, -days])  # the last key sorts first
    return {k: v[order] for k, v in part.items()}


def _ascending(values: np.ndarray) -> np.ndarray:
    """A sort key of a column as SQL's ``ASC NULLS LAST``: numbers as they are (lexsort puts NaN, which stands
    for NULL, last); text by code point (UTF-8 byte order, as DuckDB compares), None last."""
    if values.dtype != object:
        return values
    present = sorted({v for v in values.tolist() if v is not None})
    rank = {v: i for i, v in enumerate(present)}
    return np.array([rank.get(v, len(present)) for v in values.tolist()])


def _household_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``hh_event``: screenings with the derived columns of :mod:`risk.features.household`."""
    found = _events(rec.table("household"), "screened_on", m.day)
    if found is None:
        return None
    h, dates = found
    size, income, dependants = h["household_size"], h["monthly_income_baht"], h["dependants"]
    condition = np.array([2.0 if v == "dilapidated" else 1.0 if v == "poor" else 0.0 for v in h["house_condition"]])
    water = np.array([np.nan if v is None else float(v in ("rain", "river")) for v in h["water_source"]])
    more = np.where(np.isnan(dependants) | np.isnan(size), np.nan, (dependants > size / 2).astype(np.float64))
    parents = np.array([np.nan if v is None else float(v == "both_parents") for v in h["lives_with"]])
    return _newest_first({**h, "event_date": dates,
                          "income_per_capita_baht": income / size, "dependency_ratio": dependants / size,
                          "proxy_means_score": condition + (1 - h["owns_land"]) + water + (1 - h["has_electricity"])
                          + (1 - h["has_vehicle"]) + more,
                          "lives_with_parents": parents}, "household")


def _health_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``health_event``: measurements with BMI and the WHO z-scores at the age on the day."""
    found = _events(rec.table("health"), "measured_on", m.day)
    if found is None:
        return None
    h, dates = found
    bmi = h["weight_kg"] / (h["height_cm"] / 100) ** 2
    birth = c["birth_date"]
    age = ((dates - birth).astype(np.int64) / DAYS_PER_MONTH if not np.isnat(birth)
           else np.full(len(dates), np.nan))
    sex = np.full(len(dates), c["sex"], dtype=object)
    return _newest_first({**h, "event_date": dates, "bmi": bmi, "bmi_z": who_zscores("bmi_for_age", sex, age, bmi),
                          "height_z": who_zscores("height_for_age", sex, age, h["height_cm"])}, "health")


def _behaviour_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``behaviour_event``: screenings with the SDQ total and the count of risk flags."""
    found = _events(rec.table("behaviour"), "screened_on", m.day)
    if found is None:
        return None
    b, dates = found
    flags = {f: b[f] for f in FLAGS}
    return _newest_first({**{s: b[s] for s in SDQ}, **flags, "event_date": dates,
                          "sdq_total": b["sdq_emotional"] + b["sdq_conduct"] + b["sdq_hyperactivity"] + b["sdq_peer"],
                          "risk_flag_count": sum(flags.values())}, "behaviour")


def _assistance_part(m: Moment, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``assistance_event``: payments and services, received ones with their amount."""
    found = _events(rec.table("assistance"), "date", m.day)
    if found is None:
        return None
    a, dates = found
    received = a["received"]
    return _newest_first({"event_date": dates, "amount_baht": a["amount_baht"], "received": received,
                          "amount_received_baht": np.where(received == 1, a["amount_baht"], 0.0),
                          "is_cct": np.array([np.nan if v is None else float(v == "cct") for v in a["programme"]])},
                         "assistance")


# The part of each domain: the cohort row (``c``) in, the student's rows of the part (or None) out.
PARTS: dict[str, Callable[[Moment, StudentRecords, dict[str, Any]], Any]] = {
    "context": _context_part, "attendance": _attendance_part, "grades": _grades_part,
    "household": _household_part, "health": _health_part, "behaviour": _behaviour_part,
    "assistance": _assistance_part,
}


# The part a domain's features aggregate: its own, but enrollment's is the context part (the
# cohort row and its history).
PART_OF = {domain: domain for domain in PARTS} | {"enrollment": "context"}
