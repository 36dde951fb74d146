"""false alarms (误报)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:20:00.000000

Alarms an operator judged false during 研判 never become cases; each is kept with its rule, device, zone, org unit,
time and reason, so the false-alarm statistics (GET /api/stats/false-alarms) can group them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "false_alarms",
        sa.Column("alarm_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("org_unit", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("alarm_id"),
    )
    with op.batch_alter_table("false_alarms", schema=None) as batch_op:
        for column in ("rule_id", "device_id", "org_unit", "raised_at"):
            batch_op.create_index(batch_op.f(f"ix_false_alarms_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("false_alarms", schema=None) as batch_op:
        for column in ("rule_id", "device_id", "org_unit", "raised_at"):
            batch_op.drop_index(batch_op.f(f"ix_false_alarms_{column}"))
    op.drop_table("false_alarms")
