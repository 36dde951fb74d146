"""The case list at scale: the list indexes of migration 0003 serve the query without a sort, keyset pages
cover every case once, the count is bounded, and file databases run in WAL mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance import case_query
from sharpeye.governance.case import Source, Stage
from sharpeye.governance.service import CaseFilter, CaseService, list_query
from sharpeye.governance.store import Database
from sharpeye.ingest.registry import installed
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from tests.governance.casebook import OPERATOR, cst


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_file(demo_path(), installed())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}")
    await database.migrate()
    yield database
    await database.close()


async def test_file_database_runs_in_wal_mode(db: Database) -> None:
    async with db.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL


async def plan(db: Database, flt: CaseFilter) -> str:
    sql = str(list_query(flt).compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
    return " | ".join(str(r[-1]) for r in rows)


async def test_list_reads_the_composite_index_without_sorting(db: Database) -> None:
    by_department = await plan(db, CaseFilter(stages=[Stage.handling], department="hd-jwh"))
    assert "ix_cases_list_department" in by_department and "TEMP B-TREE" not in by_department, by_department
    by_stage = await plan(db, CaseFilter(stages=[Stage.dispatched]))
    assert "ix_cases_list_stage" in by_stage and "TEMP B-TREE" not in by_stage, by_stage


async def test_keyset_pages_cover_every_case_once_and_count_is_bounded(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(cst(2025, 9, 30, 10))
    service = CaseService(site, db, redis_client, keys, clock)
    made: list[str] = []
    for i in range(23):
        if i % 3 == 0:  # cases created in the same instant: the id breaks the tie
            clock.advance(60)
        case = await service.report(title=f"c{i}", category="dispute", severity=Severity.minor,
                                    source=Source.hotline, org_unit="hedong-g1", actor=OPERATOR)  # fmt: skip
        made.append(case.id)
    other = await service.report(title="x", category="fire", severity=Severity.minor, source=Source.hotline,
                                 org_unit="hedong-g1", actor=OPERATOR)  # fmt: skip

    seen: list[str] = []
    flt = CaseFilter(category="dispute", limit=5)
    pages = 0
    while True:
        page = await service.page(flt)
        pages += 1
        assert page.total == 23 and not page.total_capped
        seen.extend(c.id for c in page.items)
        if page.next is None:
            break
        flt = CaseFilter(category="dispute", limit=5, after=page.next)
    assert pages == 5
    assert seen == list(reversed(made))  # newest first, each once, the other category never
    assert other.id not in seen

    monkeypatch.setattr(case_query, "COUNT_CAP", 10)
    page = await service.page(CaseFilter(limit=3))
    assert (page.total, page.total_capped, len(page.items)) == (10, True, 3)
    page = await service.page(CaseFilter(category="fire", limit=3))
    assert (page.total, page.total_capped, page.next) == (1, False, None)
