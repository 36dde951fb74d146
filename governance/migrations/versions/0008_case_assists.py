"""co-handling departments of cases (协办)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:10:00.000000

A case may have co-handling departments besides its lead; each gives its own feedback (kept in the case's
``extra``). This table lists them so that their people's case lists and tasks find the case by an index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_assists",
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("case_id", "department"),
    )
    op.create_index("ix_case_assists_department", "case_assists", ["department"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_assists_department", table_name="case_assists")
    op.drop_table("case_assists")
