"""the reporter's satisfaction rating of a case

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:00:00.000000

A resident (or another reporter) rates a closed case (回访/评价); the statistics count 满意率 from it. The rating
is a column of its own (``extra`` keeps it too) and joins the covering index of the indicators, so the statistics
query still reads the index alone. Existing cases have no rating.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BEFORE = ("accepted_at", "stage", "department", "category", "org_unit", "due_at", "closed_at", "returns",
          "extensions", "reworks")  # fmt: skip
AFTER = (*BEFORE, "satisfaction")


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("satisfaction", sa.String(length=16), nullable=True))
        batch_op.drop_index("ix_cases_indicators")
        batch_op.create_index("ix_cases_indicators", list(AFTER), unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_indicators")
        batch_op.create_index("ix_cases_indicators", list(BEFORE), unique=False)
        batch_op.drop_column("satisfaction")
