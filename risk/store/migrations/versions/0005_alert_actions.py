"""Structured actions: what a school did, as configured action codes, one row per code (issue 30).

* ``alert_actions``: one action (``home_visit``, ``cct_referral``, ...; the codes are
  ``action_codes`` in configs/scoring.yaml) taken for one student on one day, recorded
  through the API or the teacher page with an acknowledgement, or imported from another
  system (``risk actions import``), where it points at the student's alert when there is one.
* ``acknowledgements.action_taken`` may be NULL: an acknowledgement can now be codes alone.
  Old free-text acknowledgements are kept as they are; nothing is rewritten.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SOURCES = ("api", "page", "import")


def upgrade() -> None:
    op.create_table(
        "alert_actions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", BIG_ID, nullable=True),
        sa.Column("acknowledgement_id", BIG_ID, nullable=True),
        sa.Column("student_key", sa.BigInteger(), nullable=False),
        sa.Column("school_id", sa.String(20), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("acted_on", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.CheckConstraint(f"source IN ({', '.join(repr(s) for s in SOURCES)})",
                           name=op.f("ck_alert_actions_source")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_actions_alert_id_alerts")),
        sa.ForeignKeyConstraint(["acknowledgement_id"], ["acknowledgements.id"],
                                name=op.f("fk_alert_actions_acknowledgement_id_acknowledgements")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_actions")),
    )
    op.create_index(op.f("ix_alert_actions_alert_id"), "alert_actions", ["alert_id"])
    op.create_index(op.f("ix_alert_actions_school_id"), "alert_actions", ["school_id"])
    op.create_index(op.f("ix_alert_actions_student_key_acted_on"), "alert_actions", ["student_key", "acted_on"])
    with op.batch_alter_table("acknowledgements") as batch:
        batch.alter_column("action_taken", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    # An acknowledgement of codes alone had no text; the old schema needs one, so it gets its codes.
    acks = sa.table("acknowledgements", sa.column("id", sa.BigInteger()), sa.column("action_taken", sa.Text()))
    actions = sa.table("alert_actions", sa.column("acknowledgement_id", sa.BigInteger()),
                       sa.column("code", sa.String()))
    bind = op.get_bind()
    coded = bind.execute(sa.select(actions.c.acknowledgement_id, actions.c.code)
                         .join(acks, acks.c.id == actions.c.acknowledgement_id)
                         .where(acks.c.action_taken.is_(None)).order_by(actions.c.acknowledgement_id)).all()
    texts: dict[int, list[str]] = {}
    for ack_id, code in coded:
        texts.setdefault(ack_id, []).append(code)
    for ack_id, codes in texts.items():
        bind.execute(acks.update().where(acks.c.id == ack_id).values(action_taken=", ".join(codes)))
    with op.batch_alter_table("acknowledgements") as batch:
        batch.alter_column("action_taken", existing_type=sa.Text(), nullable=False)
    op.drop_index(op.f("ix_alert_actions_student_key_acted_on"), table_name="alert_actions")
    op.drop_index(op.f("ix_alert_actions_school_id"), table_name="alert_actions")
    op.drop_index(op.f("ix_alert_actions_alert_id"), table_name="alert_actions")
    op.drop_table("alert_actions")
