"""Request and response bodies of the API, in pairs; the examples are what the OpenAPI page shows.

A payload record is one row of a contract table as JSON (the export's columns,
raw ``student_id`` included; dates as ``YYYY-MM-DD``). Records are taken loosely
here on purpose (any JSON value): a record that breaks a contract rule — a value
of the wrong JSON type, a text over 100 characters, a record that is no object —
is left out and reported (``left_out``, with batch's rule) rather than failing the
request, as batch quarantines a row. A key outside the contract is ignored, as
batch ignores an extra column of an export file. Only the
lists' lengths are limited here: sized from one student's years of records with a
wide margin (1,500 school days is seven school years).

A score carries ``raised_by`` and ``context`` beside its reasons (issue 28). A teacher
must see a child flagged by a class policy rule (the 80% attendance line) apart from
one the model flagged, so ``raised_by`` names the rule, or is null when the model's
class stands. Context (grade, transition year, the school's and district's past rates)
is about the school, not the child: it is never among the child's ``reasons``, and no
protected attribute (sex, nationality, disability) is ever a reason or context.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

__all__ = [
    "ACK_EXAMPLE", "AckRequest", "AckResponse", "ActionCode", "AlertOut", "AlertsResponse", "BatchItem", "BatchRequest", "BatchResponse",
    "ErrorItem", "LeftOut", "Reason", "ScoreRequest", "ScoreResponse", "StoredScore", "StudentHint",
    "StudentRiskResponse", "SummaryArea", "SummaryResponse",
]

# Any JSON value, so that a bad record is the checks' to leave out (documented as what it should be).
Record = Annotated[Any, WithJsonSchema({
    "type": "object",
    "description": "One row of the table per the data contract; a bad one is left out. A key outside the contract "
                   "is ignored.",
    "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": 100}})]
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _date_text(value: object) -> object:
    """Only a date written ``YYYY-MM-DD`` (pydantic alone would read ``0`` as 1970-01-01, a Unix time)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("as_of must be a date written YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_date_text)]
RiskClass = Literal["normal", "at_risk", "problem"]

# A student of the demo's world (`make demo`: `risk synth --seed 7 --students 20000`) and their
# school, so every example runs as written against `make serve` (tests/test_serve_examples.py).
EXAMPLE_ID = "1314159265354"
EXAMPLE_SCHOOL = "1047070001"
SCORE_EXAMPLE = {
    "as_of": "2026-07-24",
    "enrollments": [{"student_id": EXAMPLE_ID, "term": "2569-1", "school_id": EXAMPLE_SCHOOL, "grade_level": "P5",
                     "classroom": "5/2", "sex": "female", "birth_date": "2015-11-24", "nationality": "thai",
                     "disability": "none", "status": "studying", "status_date": None}],
    "attendance_daily": [{"student_id": EXAMPLE_ID, "date": "2026-07-20", "status": "present"},
                         {"student_id": EXAMPLE_ID, "date": "2026-07-21", "status": "absent"}],
    "grades": [{"student_id": EXAMPLE_ID, "term": "2568-2", "subject_code": "ท14102", "credits": 2,
                "grade": "2.5", "recorded_on": "2026-04-06"}],
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRequest(_Body):
    """One student's records per the data contract, and the date to score at."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SCORE_EXAMPLE]})

    as_of: IsoDate = Field(description="Point in time (YYYY-MM-DD): only records dated on or before it count.")
    enrollments: list[Record] = Field(min_length=1, max_length=40)
    attendance_daily: list[Record] = Field(default_factory=list, max_length=1500)
    grades: list[Record] = Field(default_factory=list, max_length=800)
    household: list[Record] = Field(default_factory=list, max_length=100)
    health: list[Record] = Field(default_factory=list, max_length=100)
    behaviour: list[Record] = Field(default_factory=list, max_length=100)
    assistance: list[Record] = Field(default_factory=list, max_length=400)

    def tables(self) -> dict[str, list[dict]]:
        return {name: list(getattr(self, name)) for name in
                ("enrollments", "attendance_daily", "grades", "household", "health", "behaviour", "assistance")}


class StudentHint(BaseModel):
    """What a teacher recognises the student by: never the whole ID."""

    id_hint: str = Field(examples=["•••••••••5354"])  # EXAMPLE_ID's
    grade_level: str | None
    classroom: str | None
    sex: str | None


class Reason(BaseModel):
    code: str = Field(examples=["rule:exam_line"])
    en: str
    th: str


class LeftOut(BaseModel):
    """A payload record left out, and the contract rule it broke."""

    table: str
    record: int = Field(description="Position of the record in its table's list, from 0.")
    rule: str = Field(examples=["not_allowed"])
    detail: str = Field(examples=["status = Present: not_allowed"])


RAISED_BY = ("The class policy rule that set the class when the model's probability alone gives a lower class "
             "(e.g. exam_line, the 80% attendance line); null when the model's class stands.")
RaisedBy = Annotated[str | None, Field(description=RAISED_BY, examples=["exam_line", None])]
CONTEXT = ("The school and grade context behind the score (grade, transition year, the school's and district's past "
           "dropout rates), kept apart from the child's own reasons; never protected attributes.")


class ScoreResponse(BaseModel):
    as_of: dt.date
    term: str = Field(examples=["2569-1"])
    school_id: str
    student: StudentHint
    probability: float = Field(ge=0, le=1, description="Calibrated probability of dropping out after this term.")
    risk_class: RiskClass
    raised_by: RaisedBy
    reasons: list[Reason] = Field(description="The child's own reasons, most important first: never context, never "
                                  "a protected attribute.")
    context: list[Reason] = Field(description=CONTEXT)
    model_version: str
    left_out: list[LeftOut]


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class BatchRequest(_Body):
    students: list[ScoreRequest] = Field(min_length=1, max_length=1000)


class BatchItem(BaseModel):
    index: int
    status: Literal["scored", "rejected"]
    score: ScoreResponse | None = None
    errors: list[ErrorItem] = Field(default_factory=list)


class BatchResponse(BaseModel):
    received: int
    scored: int
    rejected: int
    results: list[BatchItem]


class StoredScore(BaseModel):
    run_id: str
    as_of: dt.date
    term: str
    school_id: str
    student: StudentHint
    probability: float
    risk_class: RiskClass
    raised_by: RaisedBy
    reasons: list[Reason]
    context: list[Reason] = Field(description=(
        "The school's context in this run: the context reasons of its explained students, the most widely applying "
        "first. About the school, not this child; never protected attributes."))
    model_version: str


class StudentRiskResponse(BaseModel):
    latest: StoredScore
    history: list[StoredScore]


class AlertOut(BaseModel):
    id: int
    as_of: dt.date
    kind: str
    previous_class: str | None
    current_class: str | None
    probability: float | None
    raised_by: RaisedBy
    student: StudentHint
    reasons_en: list[str]
    reasons_th: list[str]
    actions_en: list[str]
    actions_th: list[str]
    created_at: dt.datetime


class AlertsResponse(BaseModel):
    school_id: str
    alerts: list[AlertOut]
    wait_list_until: str | None = Field(None, examples=["2569-2", None], description=(
        "Set when the school is on the wait-list of a randomised pilot whose term is running: the term from which "
        "its alerts show (the one after the pilot term), which is why the list is empty; null otherwise."))


ACK_EXAMPLE = {"actions": ["home_visit", "counselling"],
               "action_taken": "Visited the family with the class teacher; the counsellor meets him weekly"}
ActionCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["home_visit"])]


class AckRequest(_Body):
    """What the school did: action codes, words, or both (a body of words alone is as before action codes)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [ACK_EXAMPLE],
        # At least one of the two says what was done.
        "anyOf": [{"required": ["actions"], "properties": {"actions": {"minItems": 1}}},
                  {"required": ["action_taken"]}]})

    actions: list[ActionCode] = Field(default_factory=list, max_length=20, description=(
        "The actions taken, as action codes the service is configured with (configs/scoring.yaml action_codes, "
        "such as home_visit, cct_referral, counselling). A code it is not configured with is a 422 "
        "(unknown_action) naming the allowed ones."))
    # Not blank once trimmed, as the service checks (str.strip): some character that is neither
    # white space nor \x1c-\x1f, which Python strips and counts as space but Unicode does not.
    action_taken: str = Field("", min_length=1, max_length=2000, pattern=r"[^\s\x1c-\x1f]",
                                     description="What was done, in words: a note beside the codes, or the whole "
                                     "record without them.", examples=["Home visit with the class teacher"])
    acted_on: dt.date | None = Field(None, description="When it was done (default: today): on or after the "
                                     "alert's date and not after today, else 422 (date_range).")

    @model_validator(mode="after")
    def _says_what_was_done(self) -> AckRequest:
        if not self.actions and not self.action_taken:
            raise ValueError("say what was done: give actions (action codes), action_taken (words), or both")
        return self


class AckResponse(BaseModel):
    alert_id: int
    acknowledgement_id: int
    status: Literal["acknowledged"]
    actions: list[str] = Field(default_factory=list, description="The action codes recorded, once each.")


class SummaryArea(BaseModel):
    area_code: str
    students: int
    normal: int
    at_risk: int
    problem: int
    flagged_rate: float
    at_risk_by_rule: int = Field(ge=0, description=(
        "Of the area's at_risk students, how many are at_risk because a class policy rule (e.g. the 80% "
        "attendance exam line) raised them, not because of the model's probability (their scores' raised_by "
        "is set); 0 for runs stored before rule marks."))
    problem_by_rule: int = Field(ge=0, description=(
        "Of the area's problem students, how many are problem because a class policy rule raised them, not "
        "because of the model's probability (their scores' raised_by is set); 0 for runs stored before rule "
        "marks."))
    arm: Literal["alert_now", "wait_list"] | None = Field(None, description=(
        "At school level, the school's arm in the randomised pilot planned for the run's term (risk pilot plan): "
        "alert_now, or wait_list (its students are scored and counted here, but its alerts show from the next "
        "term); null at other levels, for a school outside the plan, or when no plan stands for the term."))


class SummaryResponse(BaseModel):
    run_id: str
    as_of: dt.date
    level: str
    areas: list[SummaryArea]
