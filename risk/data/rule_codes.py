"""Quarantine rules: the codes a rejected row carries, in order of priority.

A row may break several rules; it is quarantined once, under the first of its
rules in this order, with all of them listed.
"""

from __future__ import annotations

__all__ = ["RULES"]

# code -> what it means, in the words the quarantine report uses.
RULES: dict[str, str] = {
    "bad_type": "a value could not be read as the contract's type",
    "missing_required": "a required value is empty",
    "invalid_id": "student_id is not a 13-digit Thai ID with a valid check digit, nor a G-code",
    "bad_format": "a code does not have the contract's format",
    "not_allowed": "a value is not one of the allowed values",
    "out_of_range": "a number or age is outside the contract's range",
    "bad_date": "a date lies outside the data window (a two-digit year read as 19xx?)",
    "date_outside_term": "a calendar day lies outside its term's months",
    "district_mismatch": "district_code does not start with province_code",
    "unknown_school": "school_id is not in the schools table",
    "unknown_term": "term has no school days in the calendar",
    "orphan_student": "the student has no enrollment in any term",
    "no_enrollment_that_term": "the student has no valid enrollment in the term of this date",
    "not_a_school_day": "the date is not a school day of the student's school",
    "duplicate": "an exact copy of an earlier row",
    "duplicate_key": "another row already holds this key with other values",
}
