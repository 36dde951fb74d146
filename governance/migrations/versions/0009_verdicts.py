"""final verdicts (研判) per alarm

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:00:00.000000

Every final verdict (confirmed or false alarm) is kept with its alarm's rule, device, zone, org unit and times, so
the accuracy report (GET /api/stats/precision, ``sharpeye accuracy --verdicts``) gives each camera's, rule's and
zone's precision: confirmed / (confirmed + false alarms).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEXED = ("rule_id", "device_id", "org_unit", "raised_at")


def upgrade() -> None:
    op.create_table(
        "verdicts",
        sa.Column("alarm_id", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("org_unit", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("alarm_id"),
    )
    for column in INDEXED:
        op.create_index(f"ix_verdicts_{column}", "verdicts", [column], unique=False)


def downgrade() -> None:
    for column in INDEXED:
        op.drop_index(f"ix_verdicts_{column}", table_name="verdicts")
    op.drop_table("verdicts")
