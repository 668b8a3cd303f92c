"""Dates and digits as schools write them: ISO or day first, Buddhist or Common Era, read without a guess.

``text_dates`` reads a text column (ISO ``2024-06-16`` fast, then the written forms
``d/m/yyyy`` … ``dd/mm/yyyy`` and ``yyyy-m-d`` with ``/``, ``-`` or ``.``, by a vectorised
byte reader); a year of 2400 or more is Buddhist Era (CE + 543), made CE before the date
is built, so ``29/02/2567`` is 2024-02-29. ``common_era`` does the same for typed dates.
:class:`ParseOptions` per column say what the values cannot; a month-first column under
``date_order: auto`` is a :class:`DateOrderError`, not a guess. ``ascii_digits`` reads Thai
digits ๐–๙ as 0–9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from risk.errors import ConfigError, ContractError

__all__ = ["BUDDHIST_ERA_YEARS_FROM", "DateForm", "DateOrderError", "ParseOptions", "ascii_digits", "common_era", "describe_dates",
           "text_dates", "typed_days", "utf8_buffers"]

# A year this far out is Buddhist Era (2567 BE is 2024 CE): no contract date is near 2400 CE.
BUDDHIST_ERA_YEARS_FROM = 2400
_BE_OFFSET = 543
# Under date_order auto, a slash-date column is month first when at least this share of its
# values (and two or more) can only be read month first (06/16/2024): a lone typo in a
# day-first column stays a bad value, a real month-first column is about 60% such values.
_MONTH_FIRST_SHARE = 0.02
_MONTH_FIRST_MIN = 2

DateOrder = Literal["auto", "dmy", "mdy", "ymd"]
Era = Literal["auto", "be", "ce"]


class DateOrderError(ContractError):
    """A date column whose order cannot be told without a guess (month-first values under ``auto``)."""


@dataclass(frozen=True)
class ParseOptions:
    """How one export column's dates are written; the source profile sets them per table.

    ``date_order``: ``auto`` (ISO, or day first unless many values can only be month
    first: then an error), ``dmy``, ``mdy`` or ``ymd`` (for values whose year is not
    first; ISO ``yyyy-mm-dd`` is always read). ``era``: ``auto`` (a year ≥ 2400 is
    Buddhist Era), ``be`` (every year is) or ``ce`` (none is).
    """

    date_order: DateOrder = "auto"
    era: Era = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (("date_order", get_args(DateOrder)), ("era", get_args(Era))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")


_DEFAULT_OPTIONS = ParseOptions()


class DateForm(NamedTuple):
    """How a column's dates are written, for a preflight."""

    order: str  # iso, dmy, mdy, typed (stored as dates) or none (no value reads as a date)
    era: str  # be, ce, mixed or none


def utf8_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The value offsets of a string array (``len(text) + 1``) and its bytes, without copying."""
    wide = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(text.buffers()[1], np.int64 if wide else np.int32)[text.offset:text.offset + len(text) + 1]
    data = text.buffers()[2]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)



_WIDTH = 10  # the longest date form read: dd/mm/yyyy or yyyy-mm-dd
# Strict ISO is read by Arrow's cast, four times faster than strptime but all or nothing, so it
# is tried block by block; a failing cast costs ~0.7 µs a value that fails, so a block is
# probed first and one that does not start ISO goes to the slower reading of written forms.
_ISO_BLOCK, _ISO_PROBE = 1 << 16, 256


# Every layout read, as ((first separator, second separator, length), year first): day and month of
# one or two digits, a four-digit year: d/m/yyyy … dd/mm/yyyy and yyyy-m-d … yyyy-mm-dd (/, - or .).
_LAYOUTS = [((a, a + 1 + b, a + b + 6), False) for a in (1, 2) for b in (1, 2)] + [
    ((4, 5 + a, 6 + a + b), True) for a in (1, 2) for b in (1, 2)]
_LAYOUT_OF = np.full((1 << _WIDTH, _WIDTH + 2), -1, dtype=np.int8)
for _number, ((_first, _second, _length), _) in enumerate(_LAYOUTS):
    _LAYOUT_OF[(1 << _first) | (1 << _second), _length] = _number
_WITHIN = np.array([(1 << length) - 1 for length in range(_WIDTH + 1)] + [0], dtype=np.uint16)


class _Fields(NamedTuple):
    """The three digit fields of each value (first, second, third), as written."""

    first: np.ndarray
    second: np.ndarray
    third: np.ndarray
    year_first: np.ndarray  # yyyy?m?d
    year_last: np.ndarray  # d?m?yyyy or m?d?yyyy

    def month_first(self) -> tuple[np.ndarray, bool]:
        """Values that can only be month first (06/16/2024), and whether they are too many to be typos."""
        only = self.year_last & (self.first <= 12) & (self.second > 12) & (self.second <= 31)
        return only, only.sum() >= max(_MONTH_FIRST_MIN, _MONTH_FIRST_SHARE * self.year_last.sum())


def _date_fields(text: pa.Array) -> _Fields:
    """Read each value as three digit fields in one of the ``_LAYOUTS``; others read as neither form.

    Vectorised on the UTF-8 bytes: each value's first ten bytes side by side, the
    positions of its digits and separators as bit masks, its layout looked up from
    them (2M values in ~0.15 s; Arrow's regular-expression extract takes ~1 s).
    """
    n = len(text)
    offsets, data = utf8_buffers(text)
    length = np.minimum(np.diff(offsets), _WIDTH + 1)
    if n and (length == _WIDTH).all():  # the usual dd/mm/yyyy column: its bytes already are the windows
        window = data[offsets[0]:offsets[-1]].reshape(n, _WIDTH)
    else:
        padded = np.concatenate([data[:offsets[-1]], np.zeros(_WIDTH, dtype=np.uint8)])
        window = np.lib.stride_tricks.sliding_window_view(padded, _WIDTH)[offsets[:-1]]
    within = _WITHIN[length]
    digits = _bits((window - ord("0")) <= 9) & within  # uint8 arithmetic: bytes below "0" wrap past 9
    separators = _bits((window == ord("/")) | (window == ord("-")) | (window == ord("."))) & within
    layout = np.where((digits | separators) == within, _LAYOUT_OF[separators, length], -1)
    layout[~text.is_valid().to_numpy(zero_copy_only=False)] = -1
    fields = np.zeros((3, n), dtype=np.int32)
    year_first = np.zeros(n, dtype=bool)
    for number, ((first, second, size), is_year_first) in enumerate(_LAYOUTS):
        rows = np.flatnonzero(layout == number)
        if not len(rows):
            continue
        values = window[rows]
        for f, (start, stop) in enumerate(((0, first), (first + 1, second), (second + 1, size))):
            number = np.zeros(len(rows), dtype=np.int32)
            for j in range(start, stop):
                number = number * 10 + (values[:, j] - ord("0"))
            fields[f, rows] = number
        year_first[rows] = is_year_first
    return _Fields(fields[0], fields[1], fields[2], year_first, (layout >= 0) & ~year_first)


_BIT_WEIGHTS = (1 << np.arange(_WIDTH)).astype(np.uint16)


def _bits(flags: np.ndarray) -> np.ndarray:
    """Each row of a (n, 10) boolean matrix as a 16-bit mask, bit j for column j (a product: packbits is slower)."""
    return flags.view(np.uint8) @ _BIT_WEIGHTS


def text_dates(text: pa.Array, column: str, options: ParseOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """Days (``datetime64[D]``, NaT for none, years made CE) of trimmed text dates; and which failed (or None)."""
    days = np.full(len(text), np.datetime64("NaT", "D"))
    pending = np.ones(len(text), dtype=bool)
    for start in range(0, len(text), _ISO_BLOCK):
        block = text.slice(start, _ISO_BLOCK)
        try:
            pc.cast(block.slice(0, _ISO_PROBE), pa.date32())
            days[start:start + len(block)] = typed_days(pc.cast(block, pa.date32()))
            pending[start:start + len(block)] = False
        except pa.ArrowInvalid:
            continue
    days, failed = common_era(days, options.era)
    rows = np.flatnonzero(pending)
    if not len(rows):
        return days, failed
    written, unread = _written_dates(text.take(rows) if len(rows) < len(text) else text, column, options)
    days[rows] = written
    failed = np.zeros(len(text), dtype=bool) if failed is None else failed
    failed[rows] = unread
    return days, failed


def _written_dates(text: pa.Array, column: str, options: ParseOptions) -> tuple[np.ndarray, np.ndarray]:
    """Days (``datetime64[D]``, years made CE) of text dates in any of the ``_LAYOUTS``; and which failed."""
    fields = _date_fields(text)
    order = options.date_order
    if order == "auto":
        _refuse_month_first(text, fields, column)
        order = "dmy"
    year_last = fields.year_last if order != "ymd" else np.zeros(len(text), dtype=bool)
    day_first = order == "dmy"
    year = np.where(fields.year_first, fields.first, fields.third)
    month = np.where(fields.year_first, fields.second, fields.second if day_first else fields.first)
    day = np.where(fields.year_first, fields.third, fields.first if day_first else fields.second)
    # Years are made CE before the day is built: 29/02/2567 is a real day (2024 is leap), 2567 CE is not leap.
    days, real = _from_parts(_ce_years(year, options.era), month, day)
    real &= fields.year_first | year_last
    return np.where(real, days, np.datetime64("NaT", "D")), text.is_valid().to_numpy(zero_copy_only=False) & ~real


def _refuse_month_first(text: pa.Array, fields: _Fields, column: str) -> None:
    month_first, too_many = fields.month_first()
    if too_many:
        count, written = int(month_first.sum()), int(fields.year_last.sum())
        example = text[int(np.argmax(month_first))].as_py()
        raise DateOrderError(
            f"column {column!r} has month-first dates such as {example!r} ({count} of {written} day/month "
            f"dates can only be read month first): set `date_order: mdy` for this table in the source profile "
            f"(--profile), or `date_order: dmy` if they are typing mistakes")


def typed_days(arr: pa.Array) -> np.ndarray:
    """A date or timestamp column as ``datetime64[D]`` (NaT for null)."""
    if not pa.types.is_date32(arr.type):
        arr = pc.cast(arr, pa.date32())
    return arr.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def _ce_years(year: np.ndarray, era: str) -> np.ndarray:
    if era == "be":
        return year - _BE_OFFSET
    if era == "auto":
        return np.where(year >= BUDDHIST_ERA_YEARS_FROM, year - _BE_OFFSET, year)
    return year


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)


def _from_parts(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``datetime64[D]`` of each (year, month, day) and whether it is a real day (else NaT).

    Integer arithmetic (H. Hinnant's ``days_from_civil``): numpy's month-to-day casts are ~5x slower.
    """
    year, month, day = (np.asarray(v, dtype=np.int32) for v in (year, month, day))
    real = (year >= 1) & (year <= 9999) & (month >= 1) & (month <= 12) & (day >= 1)
    month = np.where(real, month, 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    real &= day <= _MONTH_DAYS[month] + (leap & (month == 2))
    shifted = year - (month <= 2)  # years counted from March, so the leap day ends a year
    era, of_era = shifted // 400, shifted % 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468
    return np.where(real, days.astype(np.int64), np.iinfo(np.int64).min).astype("datetime64[D]"), real  # min: NaT


def _parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day of each ``datetime64[D]`` (none NaT), by H. Hinnant's ``civil_from_days``."""
    z = days.astype(np.int64) + 719468
    era, of_era = z // 146097, z % 146097
    year_of_era = (of_era - of_era // 1460 + of_era // 36524 - of_era // 146096) // 365
    of_year = of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * of_year + 2) // 153
    day = of_year - (153 * shifted_month + 2) // 5 + 1
    month = np.where(shifted_month < 10, shifted_month + 3, shifted_month - 9)
    return year_of_era + era * 400 + (month <= 2), month, day


def common_era(days: np.ndarray, era: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Days whose year is Buddhist Era moved to CE by their parts; and which are then no real day (2568-02-29)."""
    dated = ~np.isnat(days)
    if era == "ce" or not dated.any():
        return days, None
    be = dated if era == "be" else dated & (days >= np.datetime64(f"{BUDDHIST_ERA_YEARS_FROM}-01-01", "D"))
    if not be.any():
        return days, None
    year, month, day = _parts(days[be])
    moved, real = _from_parts(year - _BE_OFFSET, month, day)
    days = days.copy()
    days[be] = moved
    unreal = be.copy()
    unreal[be] = ~real
    return days, unreal


def describe_dates(values: pa.Array | pa.ChunkedArray) -> DateForm:
    """How a column's dates are written (order and era), as ``typed_frame`` would read them under ``auto``.

    For a preflight: never raises; a column ``typed_frame`` would refuse as month first is ``("mdy", ...)``.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not _is_text(values):
        years = typed_days(values)
        years = years[~np.isnat(years)].astype("datetime64[Y]").astype(np.int64) + 1970
        return DateForm("typed", _era_of(years))
    text = pc.utf8_trim_whitespace(ascii_digits(values))
    fields = _date_fields(text)
    written = fields.year_first | fields.year_last
    years = np.where(fields.year_first, fields.first, fields.third)[written]
    order = ("mdy" if fields.month_first()[1] else "dmy") if fields.year_last.any() else \
        "iso" if written.any() else "none"
    return DateForm(order, _era_of(years))


def _era_of(years: np.ndarray) -> str:
    if not len(years):
        return "none"
    be = int((years >= BUDDHIST_ERA_YEARS_FROM).sum())
    return "be" if be == len(years) else "ce" if be == 0 else "mixed"


def _is_text(arr: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


# ---------------------------------------------------------------- Thai digits

_THAI_LEAD, _THAI_MIDDLE, _THAI_ZERO = 0xE0, 0xB9, 0x90  # ๐ is U+0E50: E0 B9 90 in UTF-8; ๙ is E0 B9 99


def ascii_digits(text: pa.Array) -> pa.Array:
    """``text`` with Thai digits ๐–๙ written as ASCII 0–9; the same array when it holds none.

    Works on the UTF-8 bytes (a Thai digit is three bytes, E0 B9 90–99): one scan of
    the bytes finds none in most columns, and a column that has some is rewritten
    at once, not digit by digit.
    """
    n = len(text)
    offsets, data = utf8_buffers(text)
    if offsets[-1] == offsets[0]:
        return text
    data = data[offsets[0]:offsets[-1]]
    middle = np.flatnonzero(data[1:-1] == _THAI_MIDDLE) + 1
    last = data[middle + 1] if len(middle) else middle
    middle = middle[(data[middle - 1] == _THAI_LEAD) & (last >= _THAI_ZERO) & (last <= _THAI_ZERO + 9)]
    if not len(middle):
        return text
    out = data.copy()
    out[middle - 1] = data[middle + 1] - _THAI_ZERO + ord("0")
    dropped = np.sort(np.concatenate([middle, middle + 1]))
    keep = np.ones(len(data), dtype=bool)
    keep[dropped] = False
    relative = offsets - offsets[0]
    new_offsets = (relative - np.searchsorted(dropped, relative)).astype(offsets.dtype)
    validity = pc.is_valid(text).buffers()[1] if text.null_count else None
    return pa.Array.from_buffers(text.type, n, [validity, pa.py_buffer(new_offsets), pa.py_buffer(out[keep])],
                                 null_count=text.null_count)
