"""Source profiles: how one sender's export differs from the contract, said once in YAML.

A profile is optional (``risk validate --profile FILE``, ``risk inspect --profile FILE``).
Per table it names the file's encoding and sheet, how its dates are written, which
header holds which contract column (Thai form headers, for instance) and which of
its values stand for which contract value (``ชาย`` → ``male``). The readers apply
it (:mod:`risk.data.formats`), so everything after them sees contract names and
values only::

    tables:
      household:
        encoding: cp874        # auto (default) | utf-8 | utf-8-sig | cp874
        sheet: ข้อมูล           # xlsx only; default: the sheet named after the table, else the first
        date_order: dmy        # auto (default: ISO or day-first) | dmy | mdy | ymd
        era: auto              # auto (year ≥ 2400 is BE) | be | ce
        columns:               # header in the file → contract column
          เลขประจำตัวประชาชน: student_id
        values:                # per contract column: value in the file → contract value
          house_condition: {ดี: good, พอใช้: fair, ทรุดโทรม: dilapidated}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from risk.config import load_yaml_model
from risk.data.contract import TABLES, Table
from risk.data.values import ParseOptions
from risk.errors import ConfigError, ContractError

__all__ = [
    "HeaderMap",
    "SourceProfile",
    "TableProfile",
    "apply_values",
    "check_columns",
    "clean_header",
    "load_profile",
    "map_headers",
    "mapped_headers",
    "profile_markdown",
]

Encoding = Literal["auto", "utf-8", "utf-8-sig", "cp874"]
# Names people write for the same encodings; TIS-620 is the Thai standard cp874 extends.
_ENCODING_NAMES = {"utf8": "utf-8", "utf-8-bom": "utf-8-sig", "utf8-sig": "utf-8-sig", "tis-620": "cp874",
                   "tis620": "cp874", "windows-874": "cp874", "iso-8859-11": "cp874"}


class TableProfile(BaseModel):
    """How one table's files differ from the contract."""

    model_config = ConfigDict(extra="forbid")
    encoding: Encoding = Field("auto", description=(
        "CSV text encoding: `auto` (default: a BOM is UTF-8 with BOM; the first 4 MB not valid UTF-8 is cp874), "
        "`utf-8`, `utf-8-sig` or `cp874` (TIS-620, Thai Windows)"))
    sheet: str | None = Field(None, description=(
        "Excel only: the sheet holding the table (default: the sheet named after the table, else the first)"))
    date_order: Literal["auto", "dmy", "mdy", "ymd"] = Field("auto", description=(
        "how dates are written: `auto` (default: ISO `YYYY-MM-DD` or day-first `DD/MM/YYYY`), `dmy`, `mdy`, `ymd`"))
    era: Literal["auto", "be", "ce"] = Field("auto", description=(
        "year era: `auto` (default: a year of 2400 or more is Buddhist Era, CE + 543), `be` or `ce`"))
    columns: dict[str, str] = Field({}, description="header in the file → contract column")
    values: dict[str, dict[str, str]] = Field({}, description=(
        "per contract column, value in the file → contract value (matched after trimming spaces)"))

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding_name(cls, value: object) -> object:
        if isinstance(value, str):
            name = value.strip().lower().replace("_", "-")
            return _ENCODING_NAMES.get(name, name)
        return value

    @field_validator("columns", mode="before")
    @classmethod
    def _text_headers(cls, value: object) -> object:
        # YAML reads a header such as 2567 or a value such as yes as a number or a flag.
        return {_text(k): _text(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("values", mode="before")
    @classmethod
    def _text_values(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {_text(c): ({_text(k): _text(v) for k, v in m.items()} if isinstance(m, dict) else m)
                for c, m in value.items()}


def _text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


_DEFAULT = TableProfile()


class SourceProfile(BaseModel):
    """A whole profile: one :class:`TableProfile` per table that differs from the contract."""

    model_config = ConfigDict(extra="forbid")
    tables: dict[str, TableProfile] = {}
    # The file it was read from, for messages; not part of the YAML.
    source: str = Field("", exclude=True)

    def table(self, name: str) -> TableProfile:
        """The profile of table ``name`` (the defaults when the profile does not mention it)."""
        return self.tables.get(name, _DEFAULT)

    def options_for(self, table: str) -> dict[str, ParseOptions]:
        """Date parsing options of ``table``'s date columns, for :func:`risk.data.values.typed_frame`."""
        wanted = self.table(table)
        return {c.name: ParseOptions(date_order=wanted.date_order, era=wanted.era)
                for c in TABLES[table].columns if c.kind == "date"}


def load_profile(path: Path) -> SourceProfile:
    """Read and check a source profile; a wrong table, column or value raises ConfigError naming the file and key."""
    profile = load_yaml_model(path, SourceProfile, "source profile")
    for name, wanted in profile.tables.items():
        if name not in TABLES:
            raise ConfigError(f"{path}: tables.{name}: no table {name!r} in the contract; "
                              f"the tables are {', '.join(TABLES)}")
        _check_table(path, TABLES[name], wanted)
    return profile.model_copy(update={"source": str(path)})


def _check_table(path: Path, table: Table, wanted: TableProfile) -> None:
    names = ", ".join(table.column_names)
    seen: dict[str, str] = {}
    for header, column in wanted.columns.items():
        key = f"{path}: tables.{table.name}.columns.{header}"
        if column not in table.column_names:
            raise ConfigError(f"{key}: {column!r} is not a column of table {table.name!r}; its columns are {names}")
        if column in seen:
            raise ConfigError(f"{key}: column {column!r} is already given by header {seen[column]!r}; keep one")
        seen[column] = header
    for column, mapping in wanted.values.items():
        key = f"{path}: tables.{table.name}.values.{column}"
        if column not in table.column_names:
            raise ConfigError(f"{key}: {column!r} is not a column of table {table.name!r}; its columns are {names}")
        allowed = table.column(column).allowed
        wrong = [v for v in mapping.values() if allowed is not None and v not in allowed]
        if wrong:
            raise ConfigError(f"{key}: {wrong[0]!r} is not an allowed value of {column}; "
                              f"allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class HeaderMap:
    """Which header of a file gives which contract column.

    ``columns`` maps a contract column to the position of its header; ``headers`` is
    the file's header row as written; ``unmapped`` the headers no contract column takes;
    ``missing`` the required contract columns no header gives.
    """

    headers: tuple[str, ...]
    columns: dict[str, int]
    unmapped: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def by_header(self) -> dict[str, str]:
        """Header in the file → contract column, in file order."""
        return {self.headers[i]: c for c, i in sorted(self.columns.items(), key=lambda kv: kv[1])}


def clean_header(header: str) -> str:
    """A header as matched: without the spaces and byte-order mark spreadsheets leave around it."""
    return header.strip().lstrip("\ufeff").strip()


def map_headers(path: Path, headers: list[str], table: Table, wanted: TableProfile | None = None) -> HeaderMap:
    """Match a file's headers to ``table``'s columns: a profile alias first, else the contract name itself.

    Raises ContractError naming the file when two headers give the same column.
    """
    aliases = {clean_header(k): v for k, v in (wanted or _DEFAULT).columns.items()}
    contract = set(table.column_names)
    columns: dict[str, int] = {}
    unmapped = []
    for position, header in enumerate(headers):
        name = clean_header(header)
        column = aliases.get(name, name if name in contract else None)
        if column is None:
            unmapped.append(header)
        elif column in columns:
            raise ContractError(f"{path}: headers {headers[columns[column]]!r} and {header!r} both give column "
                                f"{column!r} of table {table.name!r}; remove one, or map them in the source "
                                f"profile's tables.{table.name}.columns")
        else:
            columns[column] = position
    columns = {c: columns[c] for c in table.column_names if c in columns}
    missing = tuple(c for c in table.required_names if c not in columns)
    return HeaderMap(tuple(headers), columns, tuple(unmapped), missing)


def check_columns(path: Path, table: Table, found: list[str], *, unmapped: list[str] | None = None) -> None:
    """Raise ContractError naming the file and the required columns not in ``found``.

    ``unmapped`` (headers no column takes) adds a pointer to the profile's ``columns:``,
    since such headers are usually the missing columns under another name.
    """
    missing = [c for c in table.required_names if c not in found]
    if not missing:
        return
    hint = "; `risk contract` lists each table's columns"
    if unmapped:
        hint += (f", and a source profile (--profile) maps other headers to them under "
                 f"tables.{table.name}.columns")
    raise ContractError(
        f"{path}: table {table.name!r} is missing required column(s) {', '.join(missing)}; "
        f"found {', '.join(found) or 'no columns'}{hint}"
    )


def mapped_headers(path: Path, headers: list[str], table: Table, wanted: TableProfile | None) -> HeaderMap:
    """:func:`map_headers`, raising ContractError (:func:`check_columns`) when a required column is missing."""
    mapped = map_headers(path, headers, table, wanted)
    if mapped.missing:
        check_columns(path, table, list(mapped.by_header.values()) + list(mapped.unmapped),
                      unmapped=list(mapped.unmapped))
    return mapped


def apply_values(batch: pa.RecordBatch, wanted: TableProfile | None) -> pa.RecordBatch:
    """``batch`` with the profile's value maps applied, column by column (values not in a map stay as they are)."""
    if wanted is None or not wanted.values:
        return batch
    arrays = list(batch.columns)
    for column, mapping in wanted.values.items():
        if column not in batch.schema.names:
            continue
        position = batch.schema.get_field_index(column)
        arrays[position] = _mapped(arrays[position], mapping)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _mapped(values: pa.Array, mapping: dict[str, str]) -> pa.Array:
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    keys = pa.array([k.strip() for k in mapping], pa.string())
    found = pc.index_in(pc.utf8_trim_whitespace(text), value_set=keys)
    replaced = pc.take(pa.array(list(mapping.values()), pa.string()), found)
    return pc.if_else(pc.is_valid(found), replaced, text)


def profile_markdown(profile: SourceProfile | None = None) -> str:
    """The source profile's documentation as Markdown: its keys, what each means, and ``profile`` if given."""
    lines = ["### Source profile (`--profile FILE`)", "",
             "An optional YAML file that says how an export differs from this contract. "
             "The readers apply it, so the checks see contract names and values. "
             "`risk inspect SOURCE --profile FILE` shows what it does to an export without writing anything.",
             "", "| key (under `tables.<table>`) | meaning |", "|---|---|"]
    for name, field in TableProfile.model_fields.items():
        lines.append(f"| `{name}` | {field.description} |")
    lines += ["", "An unknown table, contract column or allowed value in a profile is an error naming the file "
              "and the key.", "", "```yaml", _EXAMPLE if profile is None else _yaml(profile), "```"]
    return "\n".join(lines)


_EXAMPLE = (__doc__ or "").split("::", 1)[1].strip("\n").replace("\n    ", "\n").removeprefix("    ")


def _yaml(profile: SourceProfile) -> str:
    import yaml

    return yaml.safe_dump(profile.model_dump(exclude_defaults=True), allow_unicode=True, sort_keys=False).rstrip()
