"""Alerts one per student, term and as_of: the term on each alert, links for re-raised ones, withdrawn status.

Before this revision every scoring run inserted its own alerts, so a date scored
again (another model, a promotion, a rerun) left two or more alerts for the same
child and date. The upgrade first folds those duplicates into one per student,
term and ``as_of``: the acknowledged one is kept (the newest if several were
acknowledged), else the newest; an acknowledged duplicate that is not kept stays,
with its acknowledgement, marked ``superseded_at``; the others are deleted. Then
the unique index over the current (not superseded) alerts is created.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNIQUE = "uq_alerts_term_as_of_student_key"
CURRENT = sa.text("superseded_at IS NULL")
# Rows deleted or updated per statement (SQLite allows 32,766 parameters).
CHUNK = 10_000

alerts = sa.table("alerts", sa.column("id", sa.BigInteger()), sa.column("run_id", sa.String()),
                  sa.column("student_key", sa.BigInteger()), sa.column("term", sa.String()),
                  sa.column("as_of", sa.Date()), sa.column("status", sa.String()),
                  sa.column("superseded_at", sa.DateTime()))
runs = sa.table("scoring_runs", sa.column("run_id", sa.String()), sa.column("term", sa.String()))
acks = sa.table("acknowledgements", sa.column("alert_id", sa.BigInteger()))


def _status_check(values: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.add_column("scoring_runs", sa.Column("alerts", sa.Text(), nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("term", sa.String(16), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("supersedes_alert_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("superseded_at", sa.DateTime(), nullable=True))
        batch.create_foreign_key(op.f("fk_alerts_supersedes_alert_id_alerts"), "alerts",
                                 ["supersedes_alert_id"], ["id"])
        batch.drop_constraint(op.f("ck_alerts_status"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_status"),
                                      _status_check(("open", "acknowledged", "withdrawn")))
    bind = op.get_bind()
    bind.execute(alerts.update().values(
        term=sa.select(runs.c.term).where(runs.c.run_id == alerts.c.run_id).scalar_subquery()))
    _fold_duplicates(bind)
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("term", existing_type=sa.String(16), nullable=False)
    op.create_index(op.f(UNIQUE), "alerts", ["term", "as_of", "student_key"], unique=True,
                    sqlite_where=CURRENT, postgresql_where=CURRENT)


def _fold_duplicates(bind: sa.Connection) -> None:
    """Leave one current alert per student, term and as_of, never losing an acknowledgement."""
    key = (alerts.c.student_key, alerts.c.term, alerts.c.as_of)
    groups = (sa.select(*key).group_by(*key).having(sa.func.count() > 1)).subquery()
    acked = sa.exists().where(acks.c.alert_id == alerts.c.id)
    rows = bind.execute(
        sa.select(alerts.c.id, *key, acked.label("acked"))
        .join(groups, sa.and_(*(c == groups.c[c.name] for c in key)))
        .order_by(*key, sa.desc("acked"), alerts.c.id.desc())
    ).all()
    delete_ids, supersede_ids, seen = [], [], set()
    for row in rows:
        group = (row.student_key, row.term, row.as_of)
        if group not in seen:  # the first of a group is the one kept: acknowledged, else newest
            seen.add(group)
        elif row.acked:
            supersede_ids.append(row.id)
        else:
            delete_ids.append(row.id)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for start in range(0, len(supersede_ids), CHUNK):
        bind.execute(alerts.update().where(alerts.c.id.in_(supersede_ids[start:start + CHUNK]))
                     .values(superseded_at=now))
    for start in range(0, len(delete_ids), CHUNK):
        bind.execute(alerts.delete().where(alerts.c.id.in_(delete_ids[start:start + CHUNK])))


def downgrade() -> None:
    op.drop_index(op.f(UNIQUE), table_name="alerts")
    # A withdrawn alert was never acknowledged (acknowledging needs an open one); the old
    # schema has no place for it.
    op.get_bind().execute(alerts.delete().where(alerts.c.status == "withdrawn"))
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(op.f("ck_alerts_status"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_status"), _status_check(("open", "acknowledged")))
        batch.drop_constraint(op.f("fk_alerts_supersedes_alert_id_alerts"), type_="foreignkey")
        for column in ("superseded_at", "supersedes_alert_id", "updated_at", "term"):
            batch.drop_column(column)
    with op.batch_alter_table("scoring_runs") as batch:
        batch.drop_column("alerts")
