"""audit log in SQL, append-only and hash-chained

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:30:00.000000

The audit stream in Redis is capped; its entries are archived here for good. Each row carries the hash of the row
before it (unique: the chain cannot fork) and its own hash over that and its content. Triggers make the table
append-only on both backends: an UPDATE or DELETE fails.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REFUSE = "audit_log is append-only"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("stream_id"),
        sa.UniqueConstraint("prev_hash"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        for column in ("at", "actor", "action"):
            batch_op.create_index(batch_op.f(f"ix_audit_log_{column}"), [column], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{REFUSE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_refuse()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER audit_log_no_{event}")
    op.drop_table("audit_log")
