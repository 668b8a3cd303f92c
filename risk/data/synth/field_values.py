"""Clean values as schools write them: Thai words, Buddhist-Era dates, Thai digits, number cells.

Each function takes one column of a clean batch (contract Arrow types) and returns
it in the field style's form: text for CSV (:func:`csv_table`), Python cell
values for Excel (:func:`cell_table`). Every change is one the source profile
undoes (``configs/profiles/field.yaml``), so a field export validates to the
same tables as the clean one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from risk.data.contract import TABLES
from risk.data.profile import TableProfile

__all__ = ["FieldColumns", "cell_table", "csv_table", "date_text", "garbled", "thai_digits"]

THAI_DIGITS = "๐๑๒๓๔๕๖๗๘๙"
# Codes that sit in number cells in Excel exports (DMC and OBEC lists are typed as numbers).
NUMBER_CELLS = ("student_id", "school_id", "province_code", "district_code")


@dataclass(frozen=True)
class FieldColumns:
    """How the columns of one table are written: headers, value words, date form, Thai digits.

    ``headers`` maps a contract column to its header in the file; ``values`` maps a
    contract column to {clean value → value written}; ``date_order`` and ``era`` are
    the profile's; ``thai_digits`` names the number columns written in Thai digits.
    """

    table: str
    headers: dict[str, str]
    values: dict[str, dict[str, str]]
    date_order: str = "ymd"
    era: str = "ce"
    thai_digits: tuple[str, ...] = field(default=())

    @classmethod
    def from_profile(cls, table: str, profile: TableProfile, thai_digits: tuple[str, ...] = ()) -> FieldColumns:
        """The inverse of the profile's header and value maps (the profile reads back what this writes)."""
        headers = {c: c for c in TABLES[table].column_names}
        headers.update({column: header for header, column in profile.columns.items()})
        values = {column: _inverse(table, column, mapping) for column, mapping in profile.values.items()}
        order = "ymd" if profile.date_order == "auto" else profile.date_order
        era = "ce" if profile.era == "auto" else profile.era
        return cls(table, headers, values, order, era, thai_digits)


def _inverse(table: str, column: str, mapping: dict[str, str]) -> dict[str, str]:
    """{clean value → written value}: the allowed values in the file's words, and typos kept typos.

    An injected typo that happens to be one of the file's words (``ชาย`` in ``sex``,
    ``ป.6`` in ``grade_level``, ``ขาด`` in attendance ``status``) would be mapped to a
    valid value by the profile, and the row would pass in the field style while it is
    quarantined in the clean one. Such a typo is written with its last letter doubled
    (``ชายย``), still not allowed after the profile's map, so both styles reject it.
    """
    forward = {clean: written for written, clean in mapping.items()}
    allowed = set(TABLES[table].column(column).allowed or ())
    for word in mapping:
        if word not in allowed:
            forward.setdefault(word, garbled(word, set(mapping) | allowed))
    return forward


def garbled(word: str, taken: set[str]) -> str:
    """``word`` with its last letter doubled (again, until it is none of ``taken``)."""
    out = word.strip() + word.strip()[-1]
    while out in taken:
        out += out[-1]
    return out


def thai_digits(text: pa.Array) -> pa.Array:
    """Text with the digits 0–9 written as Thai digits ๐–๙."""
    for digit, thai in enumerate(THAI_DIGITS):
        text = pc.replace_substring(text, pattern=str(digit), replacement=thai)
    return text


def date_text(days: pa.Array, order: str, era: str) -> pa.Array:
    """Dates as text: ``dmy`` → ``16/06/2567``, ``mdy`` → ``06/16/2567``, ``ymd`` → ``2567-06-16``.

    ``era`` ``be`` writes the Buddhist-Era year (CE + 543), ``ce`` the Gregorian one.
    """
    year = pc.year(days)
    if era == "be":
        year = pc.add(year, 543)
    y = pc.cast(year, pa.string())
    # Zero-padded by hand: pc.strftime cost ~8 s of a field-style export's 11.6M attendance dates.
    m, d = (pc.utf8_lpad(pc.cast(part(days), pa.string()), width=2, padding="0") for part in (pc.month, pc.day))
    parts = {"dmy": (d, m, y, "/"), "mdy": (m, d, y, "/"), "ymd": (y, m, d, "-")}[order]
    return pc.binary_join_element_wise(*parts)


def _mapped(text: pa.Array, mapping: dict[str, str]) -> pa.Array:
    found = pc.index_in(text, value_set=pa.array(list(mapping), pa.string()))
    return pc.if_else(pc.is_valid(found), pc.take(pa.array(list(mapping.values()), pa.string()), found), text)


def csv_table(batch: pa.RecordBatch, spec: FieldColumns) -> pa.Table:
    """``batch`` as text columns under the file's headers, ready for a CSV writer."""
    arrays, names = [], []
    for column in TABLES[spec.table].columns:
        values = batch.column(column.name)
        if column.kind == "date":
            text = date_text(values, spec.date_order, spec.era)
        elif column.kind == "bool":  # forms export ticks as 1/0
            text = pc.cast(pc.cast(values, pa.int8()), pa.string())
        else:
            text = pc.cast(values, pa.string())  # floats: the shortest text that reads back exactly
        if column.name in spec.values:
            text = _mapped(text, spec.values[column.name])
        if column.name in spec.thai_digits:
            text = thai_digits(text)
        arrays.append(text)
        names.append(spec.headers[column.name])
    return pa.Table.from_arrays(arrays, names=names)


def cell_table(batch: pa.RecordBatch, spec: FieldColumns) -> pa.RecordBatch:
    """``batch`` with its words mapped, as Excel cell values (dates stay dates: date cells). The codes of
    :data:`NUMBER_CELLS` stay text here; the workbook writer puts those of digits in number cells."""
    arrays = []
    for column in TABLES[spec.table].columns:
        values = batch.column(column.name)
        if column.name in spec.values:
            values = _mapped(values, spec.values[column.name])
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in TABLES[spec.table].columns])
