"""The fast pass's checks on days: a date column at once, school days, ages at term start, each day's term.

Part of :mod:`risk.online.payload_fast`. The rules are the contract's
(:mod:`risk.data.contract`: a term's months, its nominal start, the age range)
and the validated folder's calendar; the full checks apply the same ones
(:func:`risk.data.schemas.attach_lookups`, the enrollments' age rule).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from risk.data.contract import AGE_YEARS, DAYS_PER_YEAR, TERM_FORMAT, term_of_date, term_start
from risk.data.quarantine import ROW
from risk.online.payload_tables import Bad, CheckedTable
from risk.online.payload_values import ColumnRules

__all__ = ["mark_ages", "mark_school_days", "valid_days", "with_term_and_school"]

_TERM = re.compile(TERM_FORMAT)


def valid_days(rules: ColumnRules, values: list[Any]) -> tuple[np.ndarray, list[int]] | None:
    """A required date column at once: the days read, and the rows to judge value by value.

    Returns ``(days, odd)``: ``days`` as ``datetime64[D]`` (NaT at the ``odd`` rows, whose values are
    not plain, valid days: the caller judges those alone), kept as numpy: typed records want them so,
    and back from dates they cost ~1 µs a value. None sends the whole column value by value (text that
    is not ASCII, or ``YYYY-MM-DD`` that is no real day).
    A bad date among hundreds (the usual bad record) so costs a few values judged, not the column.
    """
    if not (set(map(type, values)) - {str} or set(map(len, values)) - {10}):
        days = _plain_days(rules, values)
        if days is not None:
            return days, []
    return _days_and_odd(rules, values)


def _plain_days(rules: ColumnRules, values: list[str]) -> np.ndarray | None:
    """Every value a plain day in range (ten-character texts), as days; None at the first that is not."""
    # YYYY-MM-DD in ASCII digits, checked on the values joined, by string methods in C (a regex per
    # value costs ~10×): every tenth character from the 5th and the 8th a dash, no other dash, the rest digits.
    text, n = "".join(values), len(values)
    if not (text.isascii() and text.count("-") == 2 * n and text[4::10] == text[7::10] == "-" * n
            and text.replace("-", "").isdigit()):
        return None
    try:
        days = np.array(values, dtype="datetime64[D]")
    except ValueError:  # 2024-02-30 and the like
        return None
    # The range decides the year and window checks: a day outside is judged value by value.
    if days.min() < rules.first_day64 or days.max() > rules.last_day64:
        return None
    return days


def _days_and_odd(rules: ColumnRules, values: list[Any]) -> tuple[np.ndarray, list[int]] | None:
    """The column split: the plain days in range read at once, every other row left to be judged alone."""
    texts = [i for i, v in enumerate(values) if type(v) is str and len(v) == 10]
    text = "".join(values[i] for i in texts)
    if not text.isascii():
        return None
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, 10)
    digits = chars[:, _DIGIT_AT]
    plain = (chars[:, 4] == _DASH) & (chars[:, 7] == _DASH) & ((digits >= _ZERO) & (digits <= _NINE)).all(axis=1)
    at = np.asarray(texts, dtype=np.int64)[plain]
    days = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    try:
        days[at] = np.array([values[i] for i in at.tolist()], dtype="datetime64[D]")
    except ValueError:  # 2024-02-30 and the like: the whole column value by value, as before
        return None
    in_range = (days >= rules.first_day64) & (days <= rules.last_day64)  # NaT compares False
    days[~in_range] = np.datetime64("NaT")
    return days, np.flatnonzero(~in_range).tolist()


_DASH, _ZERO, _NINE = ord("-"), ord("0"), ord("9")
_DIGIT_AT = [0, 1, 2, 3, 5, 6, 8, 9]  # the digits of YYYY-MM-DD


def mark_school_days(checked: CheckedTable, enrolled: Mapping[str, str],
                     calendar: Callable[[str, str], np.ndarray]) -> None:
    """Each day (read as one) is a school day of the school the student was enrolled at that term.

    ``enrolled`` maps a term to the school of the student's valid enrollment;
    ``calendar(school_id, term)`` gives that school's open days of the term, sorted
    (``datetime64[D]``). As in the full checks, a record with other failures is looked
    at too: its detail lists all. Days are grouped by month (a term is whole months), so
    the term and school are looked up once a month and each term's days are matched to
    that school's sorted calendar at once.
    """
    days = _day_array(checked.columns["date"])
    if not len(days):
        return
    months, inverse = np.unique(days.astype("datetime64[M]").astype(np.int64), return_inverse=True)
    dated = ~np.isnat(days)
    month_terms = np.array([term_of_date(dt.date(1970 + m // 12, m % 12 + 1, 1)) if m > -(2**62) else ""
                            for m in months.tolist()], dtype=object)
    terms = month_terms[inverse]
    not_enrolled = np.zeros(len(days), dtype=bool)
    closed = np.zeros(len(days), dtype=bool)
    for term in set(month_terms.tolist()) - {""}:
        rows = (terms == term) & dated
        school = enrolled.get(term)
        if school is None:
            not_enrolled |= rows
            continue
        open_days = calendar(school, term)
        wanted = days[rows]
        at = np.minimum(np.searchsorted(open_days, wanted), max(len(open_days) - 1, 0))
        found = open_days[at] == wanted if len(open_days) else np.zeros(len(wanted), dtype=bool)
        closed[np.flatnonzero(rows)[~found]] = True
    for row in np.flatnonzero(not_enrolled).tolist():
        checked.add(row, "enrolled_that_term", "no_enrollment_that_term", "False")
    for row in np.flatnonzero(closed).tolist():
        checked.add(row, "school_day", "not_a_school_day", "False")


def mark_ages(checked: CheckedTable) -> None:
    """Age at term start in :data:`risk.data.contract.AGE_YEARS`, on every enrollment whose term reads as a term.

    No birth date fails it too. Records with other failures are looked at too, as the
    full checks do: their detail lists every rule.
    """
    youngest, too_old = AGE_YEARS
    terms, births = checked.columns["term"], checked.columns["birth_date"]
    for row in range(len(checked.at)):
        term, birth = terms[row], births[row]
        if type(term) is Bad:
            term = term.parsed
        if type(birth) is Bad:
            birth = birth.parsed
        elif isinstance(birth, np.datetime64) and np.isnat(birth):  # a bad value in a column read at once
            birth = None
        if not isinstance(term, str) or not _TERM.fullmatch(term):
            continue
        if birth is None or not youngest <= (term_start(term) - _day(birth)).days / DAYS_PER_YEAR < too_old:
            checked.add(row, ROW, "out_of_range", "")


def with_term_and_school(columns: dict[str, Any], enrolled: Mapping[str, str]) -> dict[str, Any]:
    """Attendance with the term of each day and the school the student was enrolled at then.

    Days are grouped by month (a term is whole months), so the term is worked out once a month.
    """
    days = np.asarray(columns["date"], dtype="datetime64[D]")
    months, inverse = np.unique(days.astype("datetime64[M]").astype(np.int64), return_inverse=True)
    month_terms = [term_of_date(dt.date(1970 + m // 12, m % 12 + 1, 1)) for m in months.tolist()]
    terms = np.array(month_terms, dtype=object)[inverse] if len(days) else np.empty(0, dtype=object)
    schools = np.array([enrolled[t] for t in month_terms], dtype=object)[inverse] if len(days) else \
        np.empty(0, dtype=object)
    return {**columns, "date": days, "term": terms, "school_id": schools}


def _day_array(values: Any) -> np.ndarray:
    """A date column's verdicts as ``datetime64[D]``: the day read (a bad date's too), else NaT."""
    if isinstance(values, np.ndarray):
        return values
    parsed = [v.parsed if type(v) is Bad else v for v in values]
    return np.array([v if isinstance(v, dt.date) else np.datetime64("NaT") for v in parsed], dtype="datetime64[D]")


def _day(value: Any) -> dt.date:
    return value.item() if isinstance(value, np.datetime64) else value
