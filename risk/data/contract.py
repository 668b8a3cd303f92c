"""The source data contract (shared/CONTRACT.md) as data.

Every source table is declared once here: its columns, their kinds, allowed
values and ranges. The pandera schemas (:mod:`risk.data.schemas`), the validator,
the synthetic generator and ``synthetic_data/README.md`` all read this module, so
the contract has one definition in code.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Literal

from risk.data.geography import PROVINCE_CODES, REGIONS

__all__ = [
    "AGE_YEARS",
    "ALL_GRADE_MARKS",
    "Column",
    "DAYS_PER_YEAR",
    "EARLIEST_YEAR",
    "GRADE_LEVELS",
    "TABLES",
    "TABLE_ORDER",
    "TERM_FORMAT",
    "Table",
    "next_term",
    "parse_term",
    "previous_term",
    "term_of_date",
    "term_start",
    "term_window",
]

Kind = Literal["id", "text", "term", "date", "float", "int", "bool"]

GRADE_LEVELS = ("K1", "K2", "K3", "P1", "P2", "P3", "P4", "P5", "P6",
                "M1", "M2", "M3", "M4", "M5", "M6")  # fmt: skip
NUMERIC_GRADES = ("0", "1", "1.5", "2", "2.5", "3", "3.5", "4")
# ร incomplete; มส not eligible for the exam (attendance under 80%);
# มผ activity not passed; ผ activity passed.
GRADE_MARKS = ("ร", "มส", "มผ", "ผ")
ALL_GRADE_MARKS = NUMERIC_GRADES + GRADE_MARKS
DISABILITIES = ("none", "visual", "hearing", "intellectual", "physical", "learning",
                "speech", "behavioural", "autism", "multiple")  # fmt: skip
# A term is written YYYY-S: the Buddhist-Era year of the academic year, and semester 1 or 2.
TERM_FORMAT = r"^\d{4}-[12]$"
TERM_PATTERN = re.compile(r"^(\d{4})-([12])$")  # TERM_FORMAT with the year and the semester as groups
# Dates before this year are typing errors for every date in the contract
# (the oldest student is 22; birth dates start around 1990).
EARLIEST_YEAR = 1990
# A student's age at term start, in years of DAYS_PER_YEAR days: from 3 (kindergarten) up to,
# not including, 23 (the oldest upper-secondary students are 22).
AGE_YEARS = (3, 23)
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class Column:
    """One contract column.

    ``required=False`` marks an optional column: it may be absent from the file or empty.
    ``allowed`` lists the only values a text column may take; ``minimum``/``maximum``
    bound a number (inclusive); ``step`` says a number must be a multiple of it.
    A date lies inside the data window (the calendar's span, widened: :mod:`risk.data.validate`);
    ``before_window`` marks a date that may lie before it (a birth date), which the window's end
    still bounds.
    """

    name: str
    kind: Kind
    description: str
    required: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    pattern: str | None = None
    before_window: bool = False


@dataclass(frozen=True)
class Table:
    """One source table: its grain, columns and the keys that define duplicates."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    # A second row with the same values here conflicts with the first even when
    # other columns differ (an exact copy is a plain duplicate).
    unique_key: tuple[str, ...] = ()
    # The column that dates a row, for the data-window rule and point-in-time features.
    date_column: str | None = None
    extra_rules: tuple[str, ...] = field(default=())

    @property
    def has_student(self) -> bool:
        return any(c.kind == "id" for c in self.columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")


def _id() -> Column:
    return Column("student_id", "id", "13-digit Thai national ID with a valid check digit, or a DMC G-code (G + 12 digits)")


def _flag(name: str, description: str) -> Column:
    return Column(name, "bool", description)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "schools", "school",
            (
                Column("school_id", "text", "10-digit OBEC school code, as text", pattern=r"^\d{10}$"),
                Column("name", "text", "school name, Thai or English"),
                Column("province_code", "text", "2-digit province code", allowed=PROVINCE_CODES),
                Column("district_code", "text", "4-digit district code starting with the province code", pattern=r"^\d{4}$"),
                Column("region", "text", "geographic region", allowed=REGIONS),
                Column("size", "text", "small ≤120 students, medium 121–719, large 720–1,679, extra_large ≥1,680",
                       allowed=("small", "medium", "large", "extra_large")),
                Column("area", "text", "urban or rural", allowed=("urban", "rural")),
                Column("affiliation", "text", "governing body", allowed=("obec", "local", "bpp", "private", "other")),
                Column("latitude", "float", "degrees north, inside Thailand", required=False, minimum=5.6, maximum=20.5),
                Column("longitude", "float", "degrees east, inside Thailand", required=False, minimum=97.3, maximum=105.7),
            ),
            unique_key=("school_id",),
            extra_rules=("district_code starts with province_code",),
        ),
        Table(
            "calendar", "school × date",
            (
                Column("school_id", "text", "a known school", pattern=r"^\d{10}$"),
                Column("date", "date", "a day the school was open"),
                Column("term", "term", "the term the day belongs to, YYYY-S in the Buddhist Era"),
            ),
            unique_key=("school_id", "date"),
            date_column="date",
            extra_rules=("date lies inside its term's months", "school_id is a known school"),
        ),
        Table(
            "enrollments", "student × term",
            (
                _id(),
                Column("term", "term", "academic term, YYYY-S in the Buddhist Era"),
                Column("school_id", "text", "a known school", pattern=r"^\d{10}$"),
                Column("grade_level", "text", "K1–K3, P1–P6, M1–M6", allowed=GRADE_LEVELS),
                Column("classroom", "text", "classroom, e.g. 2/1", required=False),
                Column("sex", "text", "male or female", allowed=("male", "female")),
                Column("birth_date", "date", "date of birth; age 3–22 at term start", before_window=True),
                Column("nationality", "text", "thai or other", allowed=("thai", "other")),
                Column("disability", "text", "none, or the type of disability", allowed=DISABILITIES),
                Column("status", "text", "status at term end (studying while the term runs)",
                       allowed=("studying", "graduated", "transferred", "dropped_out", "deceased")),
                Column("status_date", "date", "when the status changed", required=False),
            ),
            unique_key=("student_id", "term"),
            extra_rules=("age 3–22 at term start", "school_id is a known school", "term is in the calendar"),
        ),
        Table(
            "attendance_daily", "student × school day",
            (
                _id(),
                Column("date", "date", "a school day of the student's school"),
                Column("status", "text", "attendance that day", allowed=("present", "absent", "leave", "sick", "late")),
            ),
            unique_key=("student_id", "date"),
            date_column="date",
            extra_rules=("date is a school day of the student's school that term",),
        ),
        Table(
            "grades", "student × term × subject",
            (
                _id(),
                Column("term", "term", "academic term"),
                Column("subject_code", "text", "Thai curriculum subject code, e.g. ท21101",
                       pattern=r"^[ก-ฮ][0-9]{5}$"),
                Column("credits", "float", "0.5–4.0 in steps of 0.5", minimum=0.5, maximum=4.0, step=0.5),
                Column("grade", "text", "0–4 in half steps, or ร, มส, มผ, ผ", allowed=ALL_GRADE_MARKS),
                Column("recorded_on", "date", "when the grade was entered"),
            ),
            unique_key=("student_id", "term", "subject_code"),
            date_column="recorded_on",
            extra_rules=("term is in the calendar",),
        ),
        Table(
            "household", "student × screening",
            (
                _id(),
                Column("screened_on", "date", "CCT screening date"),
                Column("household_size", "int", "people in the household", minimum=1, maximum=30),
                Column("monthly_income_baht", "float", "household total income per month", minimum=0),
                Column("house_condition", "text", "state of the house", allowed=("good", "fair", "poor", "dilapidated")),
                _flag("owns_land", "the household owns farm land"),
                Column("water_source", "text", "main drinking water", allowed=("piped", "well", "rain", "river", "bought")),
                _flag("has_electricity", "the house has electricity"),
                _flag("has_vehicle", "the household owns a vehicle"),
                Column("dependants", "int", "members under 15 or over 60, or disabled", minimum=0, maximum=30),
                Column("lives_with", "text", "who the student lives with",
                       allowed=("both_parents", "one_parent", "grandparents", "relatives", "alone", "institution")),
                Column("distance_to_school_km", "float", "home to school", minimum=0, maximum=100),
                Column("cct_status", "text", "conditional-cash-transfer screening result",
                       allowed=("extremely_poor", "poor", "not_poor", "not_screened")),
            ),
            unique_key=("student_id", "screened_on"),
            date_column="screened_on",
        ),
        Table(
            "health", "student × measurement",
            (
                _id(),
                Column("measured_on", "date", "measurement date"),
                Column("weight_kg", "float", "body weight", minimum=8, maximum=150),
                Column("height_cm", "float", "standing height", minimum=70, maximum=210),
            ),
            unique_key=("student_id", "measured_on"),
            date_column="measured_on",
        ),
        Table(
            "behaviour", "student × screening",
            (
                _id(),
                Column("screened_on", "date", "screening date"),
                *(Column(f"sdq_{s}", "int", f"SDQ {s} sub-scale", minimum=0, maximum=10)
                  for s in ("emotional", "conduct", "hyperactivity", "peer", "prosocial")),
                _flag("substance", "substance use"), _flag("violence", "violence"),
                _flag("bullying", "bullying, as victim or perpetrator"), _flag("pregnancy", "pregnancy"),
                _flag("gaming", "problem gaming"), _flag("sexual_risk", "sexual risk behaviour"),
            ),
            unique_key=("student_id", "screened_on"),
            date_column="screened_on",
        ),
        Table(
            "assistance", "payment or service",
            (
                _id(),
                Column("date", "date", "payment or service date"),
                Column("programme", "text", "programme", allowed=("cct", "lunch", "uniform", "scholarship", "other")),
                Column("amount_baht", "float", "amount", minimum=0),
                _flag("received", "false = allocated but not (yet) received"),
            ),
            date_column="date",
        ),
    )
}  # fmt: skip

# Validation order: reference tables first, so later tables can be checked against them.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)


def parse_term(term: str) -> tuple[int, int]:
    """``"2567-1"`` → ``(2567, 1)``. Raises ValueError on anything else."""
    match = TERM_PATTERN.match(term)
    if not match:
        raise ValueError(f"term {term!r} is not YYYY-S (Buddhist-Era year, semester 1 or 2)")
    return int(match.group(1)), int(match.group(2))


def term_window(term: str) -> tuple[dt.date, dt.date]:
    """The months a term may span: semester 1 May–October, semester 2 November–April.

    Academic year 2567 BE starts in May 2024 CE; its semester 2 ends in spring 2025.
    """
    year_be, semester = parse_term(term)
    year_ce = year_be - 543
    if semester == 1:
        return dt.date(year_ce, 5, 1), dt.date(year_ce, 10, 31)
    return dt.date(year_ce, 11, 1), dt.date(year_ce + 1, 4, 30)


def term_start(term: str) -> dt.date:
    """Nominal first day of a term (16 May or 1 November), used for ages."""
    year_be, semester = parse_term(term)
    year_ce = year_be - 543
    return dt.date(year_ce, 5, 16) if semester == 1 else dt.date(year_ce, 11, 1)


def next_term(term: str) -> str:
    """``"2567-1"`` → ``"2567-2"``; ``"2567-2"`` → ``"2568-1"``."""
    year, semester = parse_term(term)
    return f"{year}-2" if semester == 1 else f"{year + 1}-1"


def previous_term(term: str) -> str:
    """``"2567-2"`` → ``"2567-1"``; ``"2567-1"`` → ``"2566-2"``."""
    year, semester = parse_term(term)
    return f"{year}-1" if semester == 2 else f"{year - 1}-2"


def term_of_date(day: dt.date) -> str:
    """The term whose months hold ``day``: May–October semester 1, November–April semester 2."""
    year_ce = day.year - 1 if day.month <= 4 else day.year
    return f"{year_ce + 543}-{1 if 5 <= day.month <= 10 else 2}"
