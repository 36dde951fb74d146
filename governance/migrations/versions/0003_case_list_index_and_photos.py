"""case list indexes and report photos

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 14:10:00.000000

The case list filters by department and stage and orders by (created_at, id) descending: a composite index
in that order lets the database read the first page straight from the index instead of sorting every
matching row. The second index serves lists with a stage filter and no department.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_list_department", ["department", "stage", "created_at", "id"], unique=False)
        batch_op.create_index("ix_cases_list_stage", ["stage", "created_at", "id"], unique=False)

    op.create_table(
        "case_photos",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_photos_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_photos_case_id"))
    op.drop_table("case_photos")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_list_stage")
        batch_op.drop_index("ix_cases_list_department")
