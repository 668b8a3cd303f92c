"""Terms and school calendars.

Each term has a grid of weekdays from its start (``term_start``: 16 May or
1 November) to its nominal end. A school is open on a grid day unless it is a
Thai public holiday (``holidays.Thailand``, with substitution and bridge days),
in its mid-term break, one of its own closure days, before its (possibly late)
first day or after its (possibly early) last day. That gives about 95–100
school days a term.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import holidays
import numpy as np

from risk.data.contract import parse_term, term_start, term_window
from risk.data.synth.config import CalendarConfig

__all__ = ["EPOCH", "TermGrid", "build_grids", "consecutive_terms", "days_of", "to_days"]

EPOCH = dt.date(1970, 1, 1)


def to_days(day: dt.date) -> int:
    return (day - EPOCH).days


def days_of(values: np.ndarray) -> np.ndarray:
    """int days since 1970 → numpy datetime64[D]."""
    return values.astype("datetime64[D]")


def consecutive_terms(last_term: str, n: int) -> list[str]:
    """The ``n`` consecutive terms ending at ``last_term``, oldest first.

    >>> consecutive_terms("2569-1", 3)
    ['2568-1', '2568-2', '2569-1']
    """
    if n < 1:
        raise ValueError(f"terms must be at least 1, got {n}")
    year, sem = parse_term(last_term)
    out = []
    for _ in range(n):
        out.append(f"{year}-{sem}")
        year, sem = (year, 1) if sem == 2 else (year - 1, 2)
    return out[::-1]


@dataclass
class TermGrid:
    """The weekday grid of one term and which schools are open on each grid day."""

    term: str
    index: int            # position in the run's list of terms
    year_be: int
    semester: int
    days: np.ndarray      # int32 (G,), days since 1970, weekdays only
    weekday: np.ndarray   # int8 (G,), 0 = Monday
    open: np.ndarray      # bool (n_schools, G)

    @property
    def size(self) -> int:
        return self.days.shape[0]

    @property
    def open_days(self) -> np.ndarray:
        return self.open.sum(axis=1)

    @property
    def last_open(self) -> np.ndarray:
        """Grid index of each school's last open day."""
        return self.size - 1 - np.argmax(self.open[:, ::-1], axis=1)

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        return term_window(self.term)


def _nominal_end(term: str, cfg: CalendarConfig) -> dt.date:
    year_be, sem = parse_term(term)
    year_ce = year_be - 543
    month, day = (int(x) for x in (cfg.semester1_end if sem == 1 else cfg.semester2_end).split("-"))
    return dt.date(year_ce if sem == 1 else year_ce + 1, month, day)


def build_grids(terms: list[str], n_schools: int, rng: np.random.Generator, cfg: CalendarConfig) -> list[TermGrid]:
    """The grid and open-day matrix of every term, for ``n_schools`` schools."""
    years = sorted({parse_term(t)[0] - 543 + k for t in terms for k in (0, 1)})
    public = holidays.Thailand(years=years)
    grids = []
    for i, term in enumerate(terms):
        start, end = term_start(term), _nominal_end(term, cfg)
        all_days = np.arange(to_days(start), to_days(end) + 1, dtype=np.int32)
        weekday = ((all_days + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday
        days = all_days[weekday < 5]
        weekday = weekday[weekday < 5]
        g = days.shape[0]
        holiday = np.array([(EPOCH + dt.timedelta(days=int(d))) in public for d in days])
        is_open = np.repeat(~holiday[None, :], n_schools, axis=0)
        col = np.arange(g)[None, :]
        # Late first day, early last day.
        late = rng.random(n_schools) < cfg.late_start_share
        is_open &= ~(late[:, None] & (col == 0))
        early = rng.integers(0, cfg.end_jitter_days + 1, n_schools)
        is_open &= col < (g - early)[:, None]
        # Mid-term break: consecutive weekdays around the middle of the term.
        lo, hi = cfg.midterm_break_days
        length = rng.integers(lo, hi + 1, n_schools)
        first = g // 2 + rng.integers(-5, 6, n_schools)
        is_open &= ~((col >= first[:, None]) & (col < (first + length)[:, None]))
        # School-specific closures.
        closures = rng.poisson(cfg.closure_days_mean, n_schools)
        rows = np.repeat(np.arange(n_schools), closures)
        is_open[rows, rng.integers(1, g - 1, rows.shape[0])] = False
        year_be, sem = parse_term(term)
        grids.append(TermGrid(term, i, year_be, sem, days, weekday, is_open))
    return grids
