"""What each domain can compute: the catalog's ``compute`` kinds, their parameters, and the check of an entry.

Declared as data here, below both the catalog (which checks every entry as it loads) and the
domain modules (which turn an entry into SQL), so that the catalog needs none of the domain
modules and they need the catalog only for :class:`~risk.features.catalog.FeatureSpec`. The
domain modules read their kinds and columns from here (``attendance.KINDS``,
``events.EVENT_KINDS``, ``household.COLUMNS`` …); what each kind means is in their docstrings.

A check takes an entry's ``compute`` mapping (``{"kind": ..., <params>}``) and its ``categories``
(None for a feature without), and raises ValueError saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from risk.data.contract import TABLES

__all__ = ["ATTENDANCE_KINDS", "ATTENDANCE_STATUSES", "BEHAVIOUR_FLAGS", "CODE_COLUMNS", "ENROLLMENT_KINDS",
           "EVENT_COLUMNS", "EVENT_FLAGS", "EVENT_KINDS", "EVENT_OPS", "EVENT_TEXTS", "GRADE_KINDS", "GRADE_MEASURES",
           "SCOPED_KINDS", "SDQ_SCALES", "WHERE_KINDS", "attendance_scope", "check_compute"]

Compute = Mapping[str, Any]
Check = Callable[[Compute, Sequence[str] | None], None]

ATTENDANCE_KINDS = ("rate", "count", "reported_share", "days", "trend", "share_of_absences_on", "streak",
                    "exam_line_margin")
# ``missing``: a school day with no attendance row.
ATTENDANCE_STATUSES = ("present", "absent", "leave", "sick", "late", "missing")
SCOPED_KINDS = ("rate", "count", "reported_share", "days")
_SCOPED = SCOPED_KINDS

GRADE_KINDS = ("term_measure", "change")
GRADE_MEASURES = ("gpa", "n_zero", "n_incomplete", "n_not_eligible", "n_activity_failed", "failed_credits",
                  "n_subjects")

ENROLLMENT_KINDS = ("code", "in", "age_years", "over_age_years", "rate", "repeated_grade", "schools_attended",
                    "terms_enrolled", "year_end")
CODE_COLUMNS = ("grade_level", "sex", "nationality", "disability", "size", "area", "region", "affiliation")

EVENT_KINDS = ("latest", "previous", "change", "pct_change", "window_sum", "window_mean", "window_count",
               "window_max", "days_since_latest", "months_since_latest", "latest_code", "latest_flag")  # fmt: skip
# latest_flag's comparisons, as SQL writes them.
EVENT_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_NEEDS_COLUMN = set(EVENT_KINDS) - {"window_count", "days_since_latest", "months_since_latest"}
# The kinds that read their column as a number (SQL casts it to DOUBLE); latest_code reads text.
_NUMBER_KINDS = _NEEDS_COLUMN - {"latest_code"}
# The kinds that take a ``where`` flag; the others (latest, previous, …) would ignore it.
WHERE_KINDS = ("window_sum", "window_mean", "window_count", "window_max", "days_since_latest", "months_since_latest")
SDQ_SCALES = ("sdq_emotional", "sdq_conduct", "sdq_hyperactivity", "sdq_peer", "sdq_prosocial")
BEHAVIOUR_FLAGS = ("substance", "violence", "bullying", "pregnancy", "gaming", "sexual_risk")
# The columns each dated-event domain's part has (each domain's docstring says what the derived ones are).
EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "household": ("household_size", "monthly_income_baht", "house_condition", "owns_land", "water_source",
                  "has_electricity", "has_vehicle", "dependants", "lives_with", "distance_to_school_km",
                  "cct_status", "income_per_capita_baht", "dependency_ratio", "proxy_means_score",
                  "lives_with_parents"),
    "health": ("weight_kg", "height_cm", "bmi", "bmi_z", "height_z"),
    "behaviour": (*SDQ_SCALES, *BEHAVIOUR_FLAGS, "sdq_total", "risk_flag_count"),
    "assistance": ("amount_baht", "received", "amount_received_baht", "is_cct"),
}  # fmt: skip
# Each event domain's text columns (its contract table, of the same name, says which), and its 0/1 flags: the
# contract's bool columns and the flags the domain derives. Only a flag may be a ``where``: SQL keeps any
# non-zero value as true, the online twin keeps 1 alone.
EVENT_TEXTS: dict[str, frozenset[str]] = {
    domain: frozenset(c.name for c in TABLES[domain].columns if c.kind == "text" and c.name in columns)
    for domain, columns in EVENT_COLUMNS.items()}
_DERIVED_FLAGS = frozenset(("lives_with_parents", "is_cct"))
EVENT_FLAGS: dict[str, tuple[str, ...]] = {
    domain: tuple(c for c in columns if c in _DERIVED_FLAGS
                  or any(k.name == c and k.kind == "bool" for k in TABLES[domain].columns))
    for domain, columns in EVENT_COLUMNS.items()}


def attendance_scope(compute: Compute) -> int | None:
    """The days an attendance entry counts: None for the whole term, else the last N school days.

    Raises ValueError unless ``compute`` gives ``scope: term`` or ``last_days``: a positive whole number.
    """
    if compute.get("scope") == "term":
        return None
    days = compute.get("last_days")
    if isinstance(days, int) and days > 0:
        return days
    raise ValueError("give scope: term, or last_days: a positive whole number")


def _check_attendance(c: Compute, categories: Sequence[str] | None) -> None:
    kind = c["kind"]
    if kind not in ATTENDANCE_KINDS:
        raise ValueError(f"compute kind {kind!r} is not one of {', '.join(ATTENDANCE_KINDS)}")
    if kind in _SCOPED:
        attendance_scope(c)
    if kind == "count" and not set(c.get("statuses", ())) <= set(ATTENDANCE_STATUSES) | {None}:
        raise ValueError(f"statuses must be among {', '.join(ATTENDANCE_STATUSES)}")
    if kind == "count" and not c.get("statuses"):
        raise ValueError("count needs statuses")
    if kind == "streak" and c.get("which") not in ("longest", "current"):
        raise ValueError("streak needs which: longest or current")
    if kind == "trend" and not all(isinstance(c.get(k), int) and c[k] > 0 for k in ("recent_days", "before_days")):
        raise ValueError("trend needs recent_days and before_days, positive whole numbers")
    if kind == "share_of_absences_on" and not set(c.get("weekdays", [])) <= {1, 2, 3, 4, 5, 6, 7}:
        raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
    if kind == "exam_line_margin" and not 0 < c.get("line", 0) < 1:
        raise ValueError("exam_line_margin needs line between 0 and 1")


def _check_grades(c: Compute, categories: Sequence[str] | None) -> None:
    if c["kind"] not in GRADE_KINDS:
        raise ValueError("compute kind must be term_measure or change")
    if c.get("measure") not in GRADE_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(GRADE_MEASURES)}")
    if c["kind"] == "term_measure" and c.get("term_rank") not in (1, 2, 3, 4):
        raise ValueError("term_rank must be 1 (latest graded term) to 4")


def _check_enrollment(c: Compute, categories: Sequence[str] | None) -> None:
    kind = c["kind"]
    if kind not in ENROLLMENT_KINDS:
        raise ValueError(f"compute kind {kind!r} is not one of {', '.join(ENROLLMENT_KINDS)}")
    if kind in ("code", "in") and c.get("column") not in CODE_COLUMNS:
        raise ValueError(f"column must be one of {', '.join(CODE_COLUMNS)}")
    if kind == "code" and not categories:
        raise ValueError("code needs the feature's categories")
    if kind == "in" and not c.get("values"):
        raise ValueError("in needs values")
    if kind == "rate" and c.get("column") not in ("school_rate", "district_rate"):
        raise ValueError("rate needs column: school_rate or district_rate")


def _event_check(domain: str) -> Check:
    """The check of the dated-event domain ``domain`` (its part's columns: ``EVENT_COLUMNS[domain]``)."""
    columns, texts, flags = EVENT_COLUMNS[domain], EVENT_TEXTS[domain], EVENT_FLAGS[domain]

    def check(c: Compute, categories: Sequence[str] | None) -> None:
        kind = c["kind"]
        if kind not in EVENT_KINDS:
            raise ValueError(f"compute kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
        column = c.get("column")
        if kind in _NEEDS_COLUMN and column not in columns:
            raise ValueError(f"compute.column {column!r} is not one of {', '.join(columns)}")
        if kind in _NUMBER_KINDS and column in texts:
            raise ValueError(f"{kind} reads a number, and compute.column {column!r} is text (latest_code reads text)")
        if kind == "latest_code" and column not in texts:
            raise ValueError(f"latest_code reads text, and compute.column {column!r} is not text "
                             f"(the domain's text columns: {', '.join(sorted(texts)) or 'none'})")
        _check_where(kind, c.get("where"), flags)
        if kind.startswith("window_") and not (isinstance(c.get("days"), int) and c["days"] > 0):
            raise ValueError("a window kind needs days: a positive whole number")
        if kind == "latest_code" and not categories:
            raise ValueError("latest_code needs the feature's categories")
        if kind == "latest_flag" and (c.get("op") not in EVENT_OPS or not isinstance(c.get("threshold"), int | float)):
            raise ValueError("latest_flag needs op (lt, le, gt, ge) and a numeric threshold")

    return check


def _check_where(kind: str, where: Any, flags: tuple[str, ...]) -> None:
    """``where`` only on a kind that takes it, and only a 0/1 flag column of the domain."""
    if where is None:
        return
    if kind not in WHERE_KINDS:
        raise ValueError(f"{kind} takes no compute.where (only {', '.join(WHERE_KINDS)} do)")
    if where not in flags:
        raise ValueError(f"compute.where {where!r} is not a 0/1 flag column "
                         f"(the domain's flags: {', '.join(flags) or 'none'})")


# One check per catalog domain (context features come from the enrollment module).
_CHECKS: dict[str, Check] = {
    "attendance": _check_attendance,
    "grades": _check_grades,
    "enrollment": _check_enrollment,
    "context": _check_enrollment,
    **{domain: _event_check(domain) for domain in EVENT_COLUMNS},
}


def check_compute(domain: str, compute: Compute, categories: Sequence[str] | None = None) -> None:
    """Raise ValueError unless ``domain``'s module can compute ``compute`` (with ``categories``, for a code)."""
    check = _CHECKS.get(domain)
    if check is None:
        raise ValueError(f"no domain {domain!r}; the domains are {', '.join(_CHECKS)}")
    check(compute, categories)
