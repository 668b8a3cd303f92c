"""Injected errors: realistic faults, one per corrupted row, each listed in the manifest.

Rows of the student tables are corrupted in place (a broken ID, an emptied
value, a typo, an impossible number, a Buddhist-Era year typed with two digits
and read as 19xx, an orphan's ID, a weekend date). Corrupting a row that other tables depend on
(a school, a calendar day, an enrollment) would make clean rows elsewhere break
the contract too, so those tables get extra, appended faulty rows instead: a
broken copy of a real row under a new school or a new ("ghost") student. Exact
duplicates are copies of clean rows, appended at the end of the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from risk.data.contract import TABLES
from risk.data.synth.config import MessConfig
from risk.data.synth.frames import Batch
from risk.data.synth.identity import broken_ids, thai_ids

__all__ = ["KINDS", "Injected", "MessContext", "inject", "short_be_year"]

KINDS = ("invalid_id", "missing_required", "not_allowed", "out_of_range", "bad_date", "duplicate",
         "orphan_student", "unknown_school", "not_a_school_day")  # fmt: skip
# Tables whose faulty rows are appended copies (other tables refer to their rows).
APPENDED = ("schools", "calendar", "enrollments")

TYPOS: dict[str, dict[str, tuple[str, ...]]] = {
    "schools": {"region": ("Isan", "North East", "ภาคอีสาน"), "size": ("tiny", "Small"), "area": ("Rural", "town"),
                "affiliation": ("OBEC", "สพฐ.")},
    "enrollments": {"grade_level": ("P7", "M7", "ป.6", "m3"), "sex": ("femal", "M", "ชาย"),
                    "nationality": ("Thai", "myanmar"), "status": ("Studying", "dropout", "จบ"),
                    "disability": ("deaf", "None")},
    "attendance_daily": {"status": ("Present", "absnt", "ขาด", "1")},
    "grades": {"grade": ("5", "A", "0.5", "ม.ส.", "-1")},
    "household": {"cct_status": ("Poor", "very_poor"), "lives_with": ("parents", "grandmother"),
                  "water_source": ("tap", "bottled"), "house_condition": ("bad", "ok")},
    "assistance": {"programme": ("CCT", "school_lunch", "ทุน")},
}  # fmt: skip
OUT_OF_RANGE: dict[str, dict[str, tuple[float, ...]]] = {
    "schools": {"latitude": (25.3, 1.2), "longitude": (110.2, 95.0)},
    "grades": {"credits": (0.7, 4.5, 0.0, 1.25, 6.0)},
    "household": {"household_size": (0, 45), "monthly_income_baht": (-5.0, -2500.0),
                  "distance_to_school_km": (250.0, -1.0), "dependants": (-1, 40)},
    "health": {"height_cm": (2000.0, 15.0, 1345.0), "weight_kg": (0.0, 420.0, 3.1)},
    "behaviour": {f"sdq_{s}": (14, -1, 11) for s in ("emotional", "conduct", "hyperactivity", "peer", "prosocial")},
    "assistance": {"amount_baht": (-100.0, -1500.0)},
}  # fmt: skip
# Enrollments get the fault in status_date, not birth_date: a birth date in 19yy also breaks
# the age rule (out_of_range), which the validator ranks before bad_date.
DATE_COLUMNS = {"calendar": "date", "enrollments": "status_date", "attendance_daily": "date",
                "grades": "recorded_on", "household": "screened_on", "health": "measured_on",
                "behaviour": "screened_on", "assistance": "date"}  # fmt: skip


@dataclass
class MessContext:
    """What the injection needs from the chunk: its IDs and counters for new ones."""

    ids: np.ndarray                     # U13, the chunk's student IDs by local index
    new_ids: Callable[[str, int], np.ndarray]  # (purpose "orphan" | "ghost", n) → valid unused IDs
    term_start_day: int = 0             # days since 1970 of the batch's term start (enrollment ages)


@dataclass
class Injected:
    rows: np.ndarray       # int64, batch-local rows corrupted (appended rows included)
    kinds: np.ndarray      # int8 index into KINDS
    duplicates: Batch | None


def short_be_year(days: np.ndarray) -> np.ndarray:
    """The same day and month in 19yy, where yy are the last two digits of the Buddhist-Era year.

    Thai forms often take a two-digit year: 16/06/67 means 2567 (2024), and a reader
    that assumes 19xx stores 1967-06-16. The intake accepts Buddhist-Era years, so a
    full ``2567`` is no longer a fault; the two-digit year still is, because the
    year it gives (1963 … 1972 for the 2020s; below 1990 up to 2046 CE) lies before
    the data window and before the earliest year any date may have (1990), so the
    validator gives it ``bad_date``.
    ``days`` are days since 1970-01-01; 29 February becomes the 28th when 19yy is
    not a leap year.
    """
    d = days.astype("datetime64[D]")
    year_ce = d.astype("datetime64[Y]").astype(np.int64) + 1970
    return _with_year(days, 1900 + (year_ce + 543) % 100)


def _with_year(days: np.ndarray, year: np.ndarray) -> np.ndarray:
    """``days`` (since 1970) moved to ``year``, keeping month and day (clipped to the month's length)."""
    d = days.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12
    new_month = ((year - 1970) * 12 + month).astype("datetime64[M]")
    length = ((new_month + 1).astype("datetime64[D]") - new_month.astype("datetime64[D]")).astype(np.int64)
    dom = np.minimum((d - month_start.astype("datetime64[D]")).astype(np.int64), length - 1)
    return ((new_month.astype("datetime64[D]") + dom) - np.datetime64("1970-01-01")).astype(np.int64)


def _distinct(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """k distinct rows of n, in random order (fast when k << n)."""
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k > n // 4:
        return rng.permutation(n)[:k]
    picked = np.unique(rng.integers(0, n, int(k * 1.2) + 16))
    while picked.shape[0] < k:
        picked = np.unique(np.concatenate([picked, rng.integers(0, n, k)]))
    return rng.permutation(picked)[:k]


def _set_ids(batch: Batch, rows: np.ndarray, new: np.ndarray, id_size: int) -> None:
    start = id_size + len(batch.extra_ids)
    batch.extra_ids.extend(new.tolist())
    batch.cols["student_id"][rows] = np.arange(start, start + rows.shape[0])


def _current_ids(batch: Batch, rows: np.ndarray, ctx: MessContext) -> np.ndarray:
    codes = batch.cols["student_id"][rows]
    extra = np.array(batch.extra_ids + [""], dtype="U13")
    size = ctx.ids.shape[0]
    return np.where(codes < size, ctx.ids[np.minimum(codes, size - 1)], extra[np.maximum(codes - size, 0)])


def _append_copies(batch: Batch, src: np.ndarray) -> np.ndarray:
    n = batch.n
    for name in batch.cols:
        batch.cols[name] = np.concatenate([batch.cols[name], batch.cols[name][src]])
    for name in list(batch.nulls):
        batch.nulls[name] = np.concatenate([batch.nulls[name], batch.nulls[name][src]])
    return np.arange(n, n + src.shape[0])


def inject(batch: Batch, rng: np.random.Generator, cfg: MessConfig, ctx: MessContext) -> Injected:
    """Corrupt about ``cfg.rate`` of the batch's rows (in place; appended rows extend it)."""
    table = batch.table
    empty = Injected(np.zeros(0, np.int64), np.zeros(0, np.int8), None)
    weights = cfg.kinds.get(table, {})
    n = batch.n
    if not cfg.enabled or not weights or n == 0:
        return empty
    names = list(weights)
    counts = rng.multinomial(rng.binomial(n, cfg.rate), np.array(list(weights.values())) / sum(weights.values()))
    plan = dict(zip(names, counts.tolist(), strict=True))
    n_dup = plan.pop("duplicate", 0)
    total = sum(plan.values())
    if table in APPENDED:
        targets = _append_copies(batch, rng.integers(0, n, total))
        _fresh_keys(batch, targets, rng, ctx)
    else:
        targets = _distinct(rng, n, total)
    rows_out, kinds_out = [], []
    start = 0
    for kind, k in plan.items():
        rows = targets[start:start + k]
        start += k
        if k == 0:
            continue
        rows = _apply(kind, batch, rows, rng, ctx)
        rows_out.append(rows)
        kinds_out.append(np.full(rows.shape[0], KINDS.index(kind), dtype=np.int8))
    dup = None
    if n_dup:
        clean = np.setdiff1d(rng.integers(0, n, n_dup + 8), targets)[:n_dup]
        dup = batch.take(clean)
        dup.extra_ids = []
    if not rows_out:
        return Injected(np.zeros(0, np.int64), np.zeros(0, np.int8), dup)
    return Injected(np.concatenate(rows_out).astype(np.int64), np.concatenate(kinds_out), dup)


def _fresh_keys(batch: Batch, rows: np.ndarray, rng: np.random.Generator, ctx: MessContext) -> None:
    """Appended faulty rows get a key nobody else has: a ghost student or an unused school code."""
    if batch.table == "enrollments":
        _set_ids(batch, rows, ctx.new_ids("ghost", rows.shape[0]), ctx.ids.shape[0])
    elif batch.table == "schools":
        _unknown_schools(batch, rows, rng)


def _unknown_schools(batch: Batch, rows: np.ndarray, rng: np.random.Generator) -> None:
    """Give ``rows`` school codes that no school has (province code 00 does not exist)."""
    cats = batch.cats["school_id"]
    numbers = rng.choice(1_000_000, rows.shape[0], replace=False)
    batch.cols["school_id"][rows] = len(cats) + np.arange(rows.shape[0])
    cats.extend(f"1000{x:06d}" for x in numbers)


def _apply(kind: str, batch: Batch, rows: np.ndarray, rng: np.random.Generator, ctx: MessContext) -> np.ndarray:
    """Corrupt ``rows`` with one fault of ``kind``; returns the rows actually corrupted."""
    table = batch.table
    k = rows.shape[0]
    if kind == "invalid_id":
        _set_ids(batch, rows, broken_ids(_current_ids(batch, rows, ctx), rng), ctx.ids.shape[0])
    elif kind == "orphan_student":
        _set_ids(batch, rows, ctx.new_ids("orphan", k), ctx.ids.shape[0])
    elif kind == "missing_required":
        required = list(TABLES[table].required_names)
        which = rng.integers(0, len(required), k)
        for j, name in enumerate(required):
            batch.null_mask(name)[rows[which == j]] = True
    elif kind == "not_allowed":
        options = [(col, v) for col, values in TYPOS[table].items() for v in values]
        which = rng.integers(0, len(options), k)
        for j, (col, value) in enumerate(options):
            batch.cols[col][rows[which == j]] = batch.category_code(col, value)
    elif kind == "out_of_range":
        if table == "enrollments":  # age 1 or 30 at term start
            years = np.where(rng.random(k) < 0.5, 1.5, 30.5)
            batch.cols["birth_date"][rows] = ctx.term_start_day - np.round(years * 365.25).astype(np.int64)
        else:
            options = [(col, v) for col, values in OUT_OF_RANGE[table].items() for v in values]
            which = rng.integers(0, len(options), k)
            for j, (col, value) in enumerate(options):
                batch.cols[col][rows[which == j]] = value
                batch.null_mask(col)[rows[which == j]] = False
    elif kind == "bad_date":
        col = DATE_COLUMNS[table]
        batch.cols[col][rows] = short_be_year(batch.cols[col][rows])
        batch.null_mask(col)[rows] = False
    elif kind == "unknown_school":
        _unknown_schools(batch, rows, rng)
    elif kind == "not_a_school_day":
        rows = _weekend(batch, rows, rng)
    else:
        raise ValueError(f"unknown error kind {kind!r} for table {table}")
    return rows


def _weekend(batch: Batch, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move attendance dates to the Saturday or Sunday of the same week (never a school day).

    Two rows of one student may land on the same weekend day; only the first is moved,
    so no corrupted row collides with another on (student_id, date).
    """
    dates = batch.cols["date"][rows].astype(np.int64)
    weekday = (dates + 3) % 7
    new = dates + (5 - weekday) + rng.integers(0, 2, rows.shape[0])
    key = batch.cols["student_id"][rows].astype(np.int64) * 1_000_000 + new
    _, first = np.unique(key, return_index=True)
    rows, new = rows[first], new[first]
    batch.cols["date"][rows] = new
    return rows


def new_id_factory(chunk: int) -> Callable[[str, int], np.ndarray]:
    """Valid Thai IDs for orphans and ghosts of chunk ``chunk``, never used by enrolled students."""
    from risk.data.synth.identity import CHUNK_STRIDE, GHOST_BASE, ORPHAN_BASE

    used = {"orphan": 0, "ghost": 0}

    def make(purpose: str, n: int) -> np.ndarray:
        base = (ORPHAN_BASE if purpose == "orphan" else GHOST_BASE) + chunk * CHUNK_STRIDE + used[purpose]
        used[purpose] += n
        return thai_ids(np.arange(base, base + n, dtype=np.int64), np.ones(n, dtype=np.int64))

    return make
