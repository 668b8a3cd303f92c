"""Impact estimates (issue 30): what ``risk impact --term T`` estimated, one row per estimate.

* ``impact_estimates``: term, pilot, estimand, action code (or the arm of a rate), method,
  estimate, SE, CI, p-value, students and schools used, evidence, when it was made.

Nothing existing is changed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "impact_estimates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("term", sa.String(16), nullable=False),
        sa.Column("pilot_id", sa.String(32), nullable=True),
        sa.Column("estimand", sa.String(32), nullable=False),
        sa.Column("action_code", sa.String(64), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("estimate", sa.Float(), nullable=False),
        sa.Column("se", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("n_students", sa.Integer(), nullable=False),
        sa.Column("n_schools", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_impact_estimates")),
    )
    op.create_index(op.f("ix_impact_estimates_term"), "impact_estimates", ["term"])


def downgrade() -> None:
    op.drop_index(op.f("ix_impact_estimates_term"), table_name="impact_estimates")
    op.drop_table("impact_estimates")
