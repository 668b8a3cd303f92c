"""Rule marks and school context: which students a rule (not the model) raised, and each school's context reasons.

* ``scores.raised_by`` and ``alerts.raised_by``: the id of the class policy's rule
  (``exam_line``) that raised the student's class above the one the model's
  probability gives; NULL when the model's class stands. A teacher, the API and the
  report show these students apart from model-flagged ones (issue 28).
* ``school_context``: context reasons (grade, transition year, school and district
  past dropout rates) are about the school, not the child, so they are kept once per
  school and code, with how many of the school's explained students they applied to,
  per scoring bucket so a killed run resumes bucket by bucket.
* ``area_summaries.at_risk_by_rule`` and ``problem_by_rule``: of an area's at-risk and
  problem students, how many a rule raised; NULL in rows of runs before (read as 0).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("raised_by", sa.String(32), nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("raised_by", sa.String(32), nullable=True))
    with op.batch_alter_table("area_summaries") as batch:
        batch.add_column(sa.Column("at_risk_by_rule", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("problem_by_rule", sa.Integer(), nullable=True))
    op.create_table(
        "school_context",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.String(20), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("en", sa.Text(), nullable=False),
        sa.Column("th", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["scoring_runs.run_id"],
                                name=op.f("fk_school_context_run_id_scoring_runs")),
        sa.PrimaryKeyConstraint("run_id", "bucket", "school_id", "code", name=op.f("pk_school_context")),
    )
    op.create_index(op.f("ix_school_context_run_id_school_id"), "school_context", ["run_id", "school_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_school_context_run_id_school_id"), table_name="school_context")
    op.drop_table("school_context")
    with op.batch_alter_table("area_summaries") as batch:
        batch.drop_column("problem_by_rule")
        batch.drop_column("at_risk_by_rule")
    for table in ("alerts", "scores"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("raised_by")
