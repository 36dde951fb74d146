"""indicator columns on cases

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 16:00:00.000000

The indicators (GET /api/stats) select cases by their 立案 time and sum returns, extensions and rework. Those
lived only in the ``extra`` JSON, so every statistics query parsed the JSON of every row (about 13 s over a
million cases on SQLite). They become columns of their own (``extra`` keeps them too, as the case's full
record), with a covering index led by the 立案 time; existing rows are filled from their JSON in batches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 5000
# Every column the indicator query reads, 立案 time first: the query reads the index alone, never the wide rows.
INDICATOR_INDEX = ("accepted_at", "stage", "department", "category", "org_unit", "due_at", "closed_at", "returns",
                   "extensions", "reworks")  # fmt: skip


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _count(extra: dict[str, Any], name: str) -> int:
    value = extra.get(name)
    return int(value) if isinstance(value, int | float) else 0


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("returns", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("extensions", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("reworks", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_cases_indicators", list(INDICATOR_INDEX), unique=False)

    cases = sa.table(
        "cases",
        sa.column("id", sa.String()),
        sa.column("extra", sa.JSON()),
        sa.column("accepted_at", sa.DateTime(timezone=True)),
        sa.column("returns", sa.Integer()),
        sa.column("extensions", sa.Integer()),
        sa.column("reworks", sa.Integer()),
    )
    bind = op.get_bind()
    update = (
        sa.update(cases)
        .where(cases.c.id == sa.bindparam("key"))
        .values(accepted_at=sa.bindparam("a"), returns=sa.bindparam("r"), extensions=sa.bindparam("e"),
                reworks=sa.bindparam("w"))
    )  # fmt: skip
    last = ""
    while True:
        rows = bind.execute(
            sa.select(cases.c.id, cases.c.extra).where(cases.c.id > last).order_by(cases.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        values = []
        for case_id, extra in rows:
            extra = extra or {}
            values.append({"key": case_id, "a": _moment(extra.get("accepted_at")), "r": _count(extra, "returns"),
                           "e": _count(extra, "extensions"), "w": _count(extra, "reworks")})  # fmt: skip
        bind.execute(update, values)
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_indicators")
        batch_op.drop_column("reworks")
        batch_op.drop_column("extensions")
        batch_op.drop_column("returns")
        batch_op.drop_column("accepted_at")
