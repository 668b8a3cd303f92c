"""The service's tables: API keys (hashed) and the audit log of reads of student data.

Revision ID: 0002
Revises: 0001
Create Date: 2025-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# SQLite auto-increments only an INTEGER PRIMARY KEY (64-bit there anyway).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("school_id", sa.String(20), nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_keys_token_sha256")),
        sa.CheckConstraint("role IN ('upstream', 'teacher', 'analyst', 'admin')", name=op.f("ck_api_keys_role")),
        sa.CheckConstraint("(role = 'teacher') = (school_id IS NOT NULL)", name=op.f("ck_api_keys_teacher_school")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("student_key", sa.BigInteger(), nullable=True),
        sa.Column("school_id", sa.String(20), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index(op.f("ix_audit_log_key_id"), "audit_log", ["key_id"])
    op.create_index(op.f("ix_audit_log_student_key_at"), "audit_log", ["student_key", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("api_keys")
