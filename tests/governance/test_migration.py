"""The Alembic migrations on SQLite and PostgreSQL: up from nothing, 0004 fills the indicator columns of existing
cases from their JSON, and down and up again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sharpeye.governance.store import MIGRATIONS, Database


def alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def test_0004_fills_indicator_columns_from_existing_cases(database_url: str) -> None:
    cfg = alembic(database_url)
    await asyncio.to_thread(command.upgrade, cfg, "0003")
    db = Database(database_url)
    at = datetime(2026, 1, 5, 1, 2, 3, 456789, tzinfo=UTC)
    row = {"title": "t", "category": "dispute", "severity": "minor", "source": "hotline", "stage": "closed",
           "org_unit": "hedong-g1", "created_at": at, "updated_at": at, "description": "", "alarm_ids": []}  # fmt: skip
    typed = {"created_at": sa.DateTime(timezone=True), "updated_at": sa.DateTime(timezone=True),
             "alarm_ids": sa.JSON(), "extra": sa.JSON(), "accepted_at": sa.DateTime(timezone=True)}  # fmt: skip
    cases = sa.table("cases", *(sa.column(c, typed.get(c)) for c in ("id", *row, "extra")))
    after = sa.table("cases", *(sa.column(c, typed.get(c)) for c in ("id", "accepted_at", "returns", "extensions",
                                                                     "reworks")))  # fmt: skip
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                sa.insert(cases),
                [
                    {**row, "id": "C1", "extra": {"accepted_at": "2026-01-05T01:02:03.456789Z", "returns": 2,
                                                  "extensions": 1, "reworks": 3}},
                    {**row, "id": "C2", "stage": "reported", "extra": {"accepted_at": None}},
                    {**row, "id": "C3", "extra": {}},
                ],
            )  # fmt: skip
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with db.engine.connect() as conn:
            found = (await conn.execute(sa.select(after).order_by(after.c.id))).all()
        # SQLite keeps UTC times without their zone
        stamps = [r[1] if r[1] is None or r[1].tzinfo else r[1].replace(tzinfo=UTC) for r in found]
        assert stamps == [at, None, None]
        assert [tuple(r[2:]) for r in found] == [(2, 1, 3), (0, 0, 0), (0, 0, 0)]
        await asyncio.to_thread(command.downgrade, cfg, "0003")
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with db.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT returns FROM cases WHERE id = 'C1'"))).scalar_one() == 2
    finally:
        await db.close()
