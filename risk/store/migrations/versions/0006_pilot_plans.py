"""Randomised wait-list pilots (issue 30): the plan of a term and each school's arm.

* ``pilot_plans``: one standing plan per term (a partial unique index over the plans not
  ``replaced_at``), with its share, strata (JSON list), seed, when it was made, what its
  minimum detectable effect was computed from, and its MLflow run.
* ``pilot_schools``: each school's arm (``alert_now`` or ``wait_list``) and stratum.

Nothing existing is changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ARMS = ("alert_now", "wait_list")
STANDING = sa.text("replaced_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "pilot_plans",
        sa.Column("pilot_id", sa.String(32), nullable=False),
        sa.Column("term", sa.String(16), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("strata", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("replaced_at", sa.DateTime(), nullable=True),
        sa.Column("outcome_basis", sa.String(16), nullable=True),
        sa.Column("base_rate", sa.Float(), nullable=True),
        sa.Column("icc", sa.Float(), nullable=True),
        sa.Column("mde_relative", sa.Float(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.CheckConstraint("share > 0 AND share < 1", name=op.f("ck_pilot_plans_share")),
        sa.PrimaryKeyConstraint("pilot_id", name=op.f("pk_pilot_plans")),
    )
    op.create_index("uq_pilot_plans_term", "pilot_plans", ["term"], unique=True,
                    sqlite_where=STANDING, postgresql_where=STANDING)
    op.create_table(
        "pilot_schools",
        sa.Column("pilot_id", sa.String(32), nullable=False),
        sa.Column("school_id", sa.String(20), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("stratum", sa.String(200), nullable=False),
        sa.CheckConstraint(f"arm IN ({', '.join(repr(a) for a in ARMS)})", name=op.f("ck_pilot_schools_arm")),
        sa.ForeignKeyConstraint(["pilot_id"], ["pilot_plans.pilot_id"],
                                name=op.f("fk_pilot_schools_pilot_id_pilot_plans")),
        sa.PrimaryKeyConstraint("pilot_id", "school_id", name=op.f("pk_pilot_schools")),
    )
    op.create_index(op.f("ix_pilot_schools_school_id"), "pilot_schools", ["school_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pilot_schools_school_id"), table_name="pilot_schools")
    op.drop_table("pilot_schools")
    op.drop_index("uq_pilot_plans_term", table_name="pilot_plans")
    op.drop_table("pilot_plans")
