"""The first schema: scoring runs and their buckets, scores, alerts, acknowledgements, area summaries.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite auto-increments only an INTEGER PRIMARY KEY (64-bit there anyway).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _check(name: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=op.f(name))


def _fk_run(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["scoring_runs.run_id"], name=op.f(f"fk_{table}_run_id_scoring_runs"))


def _hints() -> list[sa.Column]:
    return [
        sa.Column("grade_level", sa.String(8), nullable=True),
        sa.Column("classroom", sa.String(40), nullable=True),
        sa.Column("sex", sa.String(16), nullable=True),
        sa.Column("id_hint", sa.String(20), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "scoring_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("term", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("students", sa.Integer(), nullable=True),
        sa.Column("drift", sa.Text(), nullable=True),
        sa.Column("settings", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_scoring_runs")),
        _check("ck_scoring_runs_status", "status", ("running", "finished", "failed")),
    )
    op.create_table(
        "scoring_run_buckets",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "bucket", name=op.f("pk_scoring_run_buckets")),
        _fk_run("scoring_run_buckets"),
    )
    op.create_table(
        "scores",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("student_key", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("term", sa.String(16), nullable=False),
        sa.Column("school_id", sa.String(20), nullable=False),
        sa.Column("district_code", sa.String(10), nullable=False),
        sa.Column("province_code", sa.String(10), nullable=False),
        sa.Column("region", sa.String(40), nullable=False),
        sa.Column("grade_level", sa.String(8), nullable=False),
        sa.Column("classroom", sa.String(40), nullable=True),
        sa.Column("sex", sa.String(16), nullable=False),
        sa.Column("id_hint", sa.String(20), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("risk_class", sa.String(16), nullable=False),
        sa.Column("reasons_en", sa.Text(), nullable=True),
        sa.Column("reasons_th", sa.Text(), nullable=True),
        sa.Column("reason_codes", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        _fk_run("scores"),
        sa.UniqueConstraint("run_id", "student_key", name=op.f("uq_scores_run_id_student_key")),
        _check("ck_scores_risk_class", "risk_class", ("normal", "at_risk", "problem")),
    )
    op.create_index(op.f("ix_scores_run_id_bucket"), "scores", ["run_id", "bucket"])
    op.create_index(op.f("ix_scores_student_key_as_of"), "scores", ["student_key", "as_of"])
    op.create_index(op.f("ix_scores_school_id"), "scores", ["school_id"])
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("student_key", sa.BigInteger(), nullable=False),
        sa.Column("school_id", sa.String(20), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("previous_class", sa.String(16), nullable=True),
        sa.Column("current_class", sa.String(16), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        *_hints(),
        sa.Column("reasons_en", sa.Text(), nullable=True),
        sa.Column("reasons_th", sa.Text(), nullable=True),
        sa.Column("actions_en", sa.Text(), nullable=True),
        sa.Column("actions_th", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        _fk_run("alerts"),
        _check("ck_alerts_kind", "kind", ("newly_at_risk", "escalated_problem", "improved", "left_register")),
        _check("ck_alerts_status", "status", ("open", "acknowledged")),
    )
    op.create_index(op.f("ix_alerts_run_id"), "alerts", ["run_id"])
    op.create_index(op.f("ix_alerts_school_id"), "alerts", ["school_id"])
    op.create_table(
        "acknowledgements",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", BIG_ID, nullable=False),
        sa.Column("action_taken", sa.Text(), nullable=False),
        sa.Column("acted_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgements")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_acknowledgements_alert_id_alerts")),
    )
    op.create_index(op.f("ix_acknowledgements_alert_id"), "acknowledgements", ["alert_id"])
    op.create_table(
        "area_summaries",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("area_code", sa.String(20), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("normal", sa.Integer(), nullable=False),
        sa.Column("at_risk", sa.Integer(), nullable=False),
        sa.Column("problem", sa.Integer(), nullable=False),
        sa.Column("flagged_rate", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "level", "area_code", name=op.f("pk_area_summaries")),
        _fk_run("area_summaries"),
        _check("ck_area_summaries_level", "level", ("school", "district", "province", "region", "nation")),
    )


def downgrade() -> None:
    for table in ("area_summaries", "acknowledgements", "alerts", "scores", "scoring_run_buckets", "scoring_runs"):
        op.drop_table(table)
