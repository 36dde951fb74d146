"""Case numbers carry the site's local date: a report at 00:30 Beijing time (16:30 UTC the day before) is numbered
with the Beijing day, and the daily sequence starts again at local midnight, not at 08:00."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Source
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import Database
from sharpeye.ingest.registry import installed

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from tests.governance.casebook import OPERATOR, cst


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}")
    await database.migrate()
    yield database
    await database.close()


async def report(service: CaseService) -> str:
    case = await service.report(title="夜间噪音", category="dispute", severity=Severity.minor,
                                source=Source.grid_worker, org_unit="hedong-g1", actor=OPERATOR,
                                description="凌晨上报")  # fmt: skip
    return case.id


async def test_a_report_at_half_past_midnight_beijing_time_gets_that_days_number(
    db: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    site = load_file(demo_path(), installed())
    assert site.site.timezone == "Asia/Shanghai"
    prefix = site.site.id.upper()
    clock = ManualClock(cst(2026, 3, 1, 23, 50))  # 15:50 UTC on 1 March
    service = CaseService(site, db, redis_client, keys, clock)
    assert await report(service) == f"{prefix}-20260301-00001"
    clock.set(cst(2026, 3, 2, 0, 30))  # 16:30 UTC, still 1 March in UTC
    assert await report(service) == f"{prefix}-20260302-00001"  # a new local day: its own sequence
    clock.set(cst(2026, 3, 2, 8, 30))  # 00:30 UTC on 2 March: the same local day goes on
    assert await report(service) == f"{prefix}-20260302-00002"


async def test_the_sites_own_zone_decides_the_date(db: Database, redis_client: aioredis.Redis, keys: Keys) -> None:
    demo = load_file(demo_path(), installed())
    site = demo.model_copy(update={"site": demo.site.model_copy(update={"timezone": "Asia/Urumqi"})})  # UTC+6
    clock = ManualClock(cst(2026, 3, 2, 6, 30))  # 22:30 UTC on 1 March = 04:30 on 2 March in Urumqi
    service = CaseService(site, db, redis_client, keys, clock)
    assert (await report(service)).split("-")[1] == "20260302"
    clock.set(cst(2026, 3, 3, 1, 30))  # 01:30 on 3 March in Beijing = 23:30 on 2 March in Urumqi
    assert (await report(service)).split("-")[1:] == ["20260302", "00002"]
