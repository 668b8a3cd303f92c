"""The store's tables as typed SQLAlchemy 2 models.

These classes describe the schema that migration ``0001`` creates; a test
compares the two so they cannot drift apart. Dates are calendar dates of the
school year; timestamps are UTC, stored without a zone so that SQLite and
PostgreSQL read them back alike. Lists of reasons and actions are JSON text
(``'["low attendance", ...]'``), portable across both databases.

No column holds a raw student ID: ``student_key`` is the keyed pseudonym
(signed 64-bit HMAC prefix, see ``risk.data.ids``) and ``id_hint`` is the ID
masked to its last four characters (``•••••••••1234``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACTION_SOURCES",
    "ALERT_KINDS",
    "ALERT_STATUSES",
    "KEY_ROLES",
    "PILOT_ARMS",
    "RISK_CLASSES",
    "RUN_STATUSES",
    "SUMMARY_LEVELS",
    "Acknowledgement",
    "Alert",
    "AlertAction",
    "ApiKey",
    "ImpactEstimate",
    "AuditEntry",
    "AreaSummary",
    "Base",
    "PilotPlan",
    "PilotSchool",
    "SchoolContext",
    "Score",
    "ScoringRun",
    "ScoringRunBucket",
]

RUN_STATUSES = ("running", "finished", "failed")
RISK_CLASSES = ("normal", "at_risk", "problem")
ALERT_KINDS = ("newly_at_risk", "escalated_problem", "improved", "left_register")
# withdrawn: a later scoring of the alert's date no longer supports it (never one a school acknowledged).
ALERT_STATUSES = ("open", "acknowledged", "withdrawn")
SUMMARY_LEVELS = ("school", "district", "province", "region", "nation")
KEY_ROLES = ("upstream", "teacher", "analyst", "admin")
# Where an action was recorded: the API's acknowledgement, the teacher page's, or `risk actions import`.
ACTION_SOURCES = ("api", "page", "import")
# A pilot school's arm (risk.impact.design.ARMS): alerts from the pilot term, or from the next one.
PILOT_ARMS = ("alert_now", "wait_list")

# Constraint names fixed by convention, so later migrations (SQLite batch mode
# included) can name what they alter.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite auto-increments only an INTEGER PRIMARY KEY (the rowid), which is 64-bit there anyway.
BigId = BigInteger().with_variant(Integer, "sqlite")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ScoringRun(Base):
    """One batch scoring of the register at ``as_of`` by one model version."""

    __tablename__ = "scoring_runs"
    __table_args__ = (CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),)

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    term: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))
    students: Mapped[int | None] = mapped_column(Integer)
    drift: Mapped[str | None] = mapped_column(Text)  # JSON object
    settings: Mapped[str | None] = mapped_column(Text)  # JSON object
    alerts: Mapped[str | None] = mapped_column(Text)  # JSON object: what writing its alerts did, by outcome


class ScoringRunBucket(Base):
    """A student bucket whose scores are stored: written in the same transaction as the scores."""

    __tablename__ = "scoring_run_buckets"

    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Score(Base):
    """One student's score in one run, with the display hint a teacher recognises."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("run_id", "student_key"),
        Index(None, "run_id", "bucket"),
        Index(None, "student_key", "as_of"),
        CheckConstraint(_one_of("risk_class", RISK_CLASSES), name="risk_class"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"))
    student_key: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[dt.date] = mapped_column(Date)
    term: Mapped[str] = mapped_column(String(16))
    school_id: Mapped[str] = mapped_column(String(20), index=True)
    district_code: Mapped[str] = mapped_column(String(10))
    province_code: Mapped[str] = mapped_column(String(10))
    region: Mapped[str] = mapped_column(String(40))
    grade_level: Mapped[str] = mapped_column(String(8))
    classroom: Mapped[str | None] = mapped_column(String(40))
    sex: Mapped[str] = mapped_column(String(16))
    id_hint: Mapped[str] = mapped_column(String(20))
    probability: Mapped[float] = mapped_column(Float)
    risk_class: Mapped[str] = mapped_column(String(16))
    reasons_en: Mapped[str | None] = mapped_column(Text)  # JSON list
    reasons_th: Mapped[str | None] = mapped_column(Text)  # JSON list
    reason_codes: Mapped[str | None] = mapped_column(Text)  # JSON list
    model_version: Mapped[str] = mapped_column(String(64))
    bucket: Mapped[int] = mapped_column(Integer)
    # The class policy rule (e.g. "exam_line") that raised the class above the model's; NULL: the model's class.
    raised_by: Mapped[str | None] = mapped_column(String(32))


class Alert(Base):
    """A change in a student's class that a school should see and act on.

    One per student, ``term`` and ``as_of`` (DESIGN.md "Reasons, roles and alerts"):
    scoring the date again updates it in place (``run_id`` and ``updated_at`` then
    name the latest run). Only when the class got worse after a school acknowledged
    it is a second alert made for the date: the new one names the acknowledged one
    in ``supersedes_alert_id``, and the old one, acknowledgement and all, gets
    ``superseded_at`` and leaves the unique index, which covers the current alerts only.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
        Index("uq_alerts_term_as_of_student_key", "term", "as_of", "student_key", unique=True,
              sqlite_where=text("superseded_at IS NULL"), postgresql_where=text("superseded_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"), index=True)
    student_key: Mapped[int] = mapped_column(BigInteger)
    school_id: Mapped[str] = mapped_column(String(20), index=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    term: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    previous_class: Mapped[str | None] = mapped_column(String(16))
    current_class: Mapped[str | None] = mapped_column(String(16))
    probability: Mapped[float | None] = mapped_column(Float)
    grade_level: Mapped[str | None] = mapped_column(String(8))
    classroom: Mapped[str | None] = mapped_column(String(40))
    sex: Mapped[str | None] = mapped_column(String(16))
    id_hint: Mapped[str | None] = mapped_column(String(20))
    reasons_en: Mapped[str | None] = mapped_column(Text)  # JSON list
    reasons_th: Mapped[str | None] = mapped_column(Text)  # JSON list
    actions_en: Mapped[str | None] = mapped_column(Text)  # JSON list
    actions_th: Mapped[str | None] = mapped_column(Text)  # JSON list
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # the latest rerun that rewrote it
    supersedes_alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    superseded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    raised_by: Mapped[str | None] = mapped_column(String(32))  # as on the score: a rule, not the model, set the class


class Acknowledgement(Base):
    """What a school did about an alert, and when: in words, and (since 0005) as action codes in ``alert_actions``.

    ``action_taken`` is the free text: the whole record of an acknowledgement made before
    action codes, or the note beside them; NULL when codes alone were recorded.
    """

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    action_taken: Mapped[str | None] = mapped_column(Text)
    acted_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str | None] = mapped_column(String(64))  # an API key id, never a person's name


class AlertAction(Base):
    """One action a school took for one student: a configured code (``home_visit``), the day, and who recorded it.

    One row per code: an acknowledgement naming two codes writes two rows, each pointing at
    it. An action imported from another system (``source`` 'import') has no acknowledgement
    and points at the student's alert only when there is one (``alert_id`` NULL otherwise);
    ``student_key`` and ``school_id`` are always set, so the impact estimate reads actions
    without joining alerts. ``recorded_by`` is an API key id (NULL for an import), never a name.
    """

    __tablename__ = "alert_actions"
    __table_args__ = (
        CheckConstraint(_one_of("source", ACTION_SOURCES), name="source"),
        Index(None, "student_key", "acted_on"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    acknowledgement_id: Mapped[int | None] = mapped_column(ForeignKey("acknowledgements.id"))
    student_key: Mapped[int] = mapped_column(BigInteger)
    school_id: Mapped[str] = mapped_column(String(20), index=True)
    code: Mapped[str] = mapped_column(String(64))
    acted_on: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16))


class AreaSummary(Base):
    """Counts by class for one area at one level of the school → nation hierarchy."""

    __tablename__ = "area_summaries"
    __table_args__ = (CheckConstraint(_one_of("level", SUMMARY_LEVELS), name="level"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    area_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    students: Mapped[int] = mapped_column(Integer)
    normal: Mapped[int] = mapped_column(Integer)
    at_risk: Mapped[int] = mapped_column(Integer)
    problem: Mapped[int] = mapped_column(Integer)
    flagged_rate: Mapped[float] = mapped_column(Float)  # (at_risk + problem) / students, 0..1
    # Of at_risk and problem, how many a class policy rule raised (scores.raised_by set), not the
    # model's probability (issue 28). NULL in rows written before rule marks: read as 0.
    at_risk_by_rule: Mapped[int | None] = mapped_column(Integer, nullable=True)
    problem_by_rule: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SchoolContext(Base):
    """One context reason of one school in one run, counted over one bucket's explained students.

    Context (grade, transition year, the school's and district's past dropout rates) is
    about the school, not the child: it is never one of a child's reasons, and is shown
    once per school. Summed over buckets, ``students`` is how many of the school's
    explained students it pushed up; ``en``/``th`` are the same for all of them.
    """

    __tablename__ = "school_context"
    __table_args__ = (Index(None, "run_id", "school_id"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    students: Mapped[int] = mapped_column(Integer)
    en: Mapped[str] = mapped_column(Text)
    th: Mapped[str] = mapped_column(Text)


class ApiKey(Base):
    """A key to the service: only the SHA-256 of its token is kept (the token is shown once, at creation)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_one_of("role", KEY_ROLES), name="role"),
        # A teacher sees one school; the other roles are not tied to a school.
        CheckConstraint("(role = 'teacher') = (school_id IS NOT NULL)", name="teacher_school"),
    )

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    school_id: Mapped[str | None] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(200))  # what the key is for, never a child's data
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AuditEntry(Base):
    """One read (or change) of a student's data through the service: who, what, which pseudonym, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "student_key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64))
    student_key: Mapped[int | None] = mapped_column(BigInteger)
    school_id: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)


class PilotPlan(Base):
    """A randomised wait-list pilot of one term (``risk pilot plan``): how its schools were drawn.

    One plan stands per term: a plan made again with ``--replace`` marks the old one
    ``replaced_at`` (kept, as the record of what was drawn) and leaves the unique index,
    which covers the standing plans only. ``strata`` is a JSON list of column names;
    ``outcome_basis`` says whose past dropout the ICC and base rate came from
    (``flagged`` students of scored past terms, or all ``enrolled`` students).
    """

    __tablename__ = "pilot_plans"
    __table_args__ = (
        CheckConstraint("share > 0 AND share < 1", name="share"),
        Index("uq_pilot_plans_term", "term", unique=True,
              sqlite_where=text("replaced_at IS NULL"), postgresql_where=text("replaced_at IS NULL")),
    )

    pilot_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    term: Mapped[str] = mapped_column(String(16))
    share: Mapped[float] = mapped_column(Float)
    strata: Mapped[str] = mapped_column(Text)  # JSON list
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    replaced_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    outcome_basis: Mapped[str | None] = mapped_column(String(16))
    base_rate: Mapped[float | None] = mapped_column(Float)  # past dropout of the basis, 0..1
    icc: Mapped[float | None] = mapped_column(Float)
    mde_relative: Mapped[float | None] = mapped_column(Float)  # -0.2: a fifth fewer dropouts
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))


class PilotSchool(Base):
    """One school's arm in a pilot plan, and the stratum it was drawn in."""

    __tablename__ = "pilot_schools"
    __table_args__ = (CheckConstraint(_one_of("arm", PILOT_ARMS), name="arm"),)

    pilot_id: Mapped[str] = mapped_column(ForeignKey("pilot_plans.pilot_id"), primary_key=True)
    school_id: Mapped[str] = mapped_column(String(20), primary_key=True, index=True)
    arm: Mapped[str] = mapped_column(String(16))
    stratum: Mapped[str] = mapped_column(String(200))


class ImpactEstimate(Base):
    """One estimated effect on dropout from ``risk impact --term T`` (issue 30); a rerun replaces the term's.

    ``estimand``: ``itt`` (pilot, OLS with school-clustered SE), ``itt_relative``,
    ``itt_randomisation``, ``complier_iv``, ``action_naive`` / ``action_adjusted`` (with
    ``action_code``), or ``dropout_rate`` (an arm's flagged students' rate, ``action_code`` the arm).
    Estimates are proportions; ``evidence`` is 'randomised' or the observational caveat.
    """

    __tablename__ = "impact_estimates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    term: Mapped[str] = mapped_column(String(16), index=True)
    pilot_id: Mapped[str | None] = mapped_column(String(32))
    estimand: Mapped[str] = mapped_column(String(32))
    action_code: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(Text)
    estimate: Mapped[float] = mapped_column(Float)
    se: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    n_students: Mapped[int] = mapped_column(Integer)
    n_schools: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
