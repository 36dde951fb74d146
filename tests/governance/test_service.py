"""The flow wired into the durable record (SQLite through SQLAlchemy, migrated by Alembic) and Redis:
history, outbox-fed department queues, supervision plans, concurrent actions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Light, Source, Stage
from sharpeye.governance.escalation import Firing, firing_stream, plan_key
from sharpeye.governance.flow import Actor, Role, TransitionError
from sharpeye.governance.indicator import GroupBy, compute
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseConflict, CaseService
from sharpeye.governance.store import Database
from sharpeye.ingest.registry import installed
from sqlalchemy.exc import IntegrityError

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from tests.governance.casebook import OPERATOR, SUPERVISOR, cst, handler

H = 3600.0


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_file(demo_path(), installed())


@pytest.fixture
def db(database: Database) -> Database:
    """SQLite and PostgreSQL (tests/governance/conftest.py): PostgreSQL also checks the foreign keys."""
    return database


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(cst(2025, 9, 30, 10))


@pytest.fixture
def service(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys, clock: ManualClock
) -> CaseService:
    return CaseService(site, db, redis_client, keys, clock)


async def report(service: CaseService, category: str = "dispute", grid: str = "hedong-g1") -> str:
    case = await service.report(
        title="楼道堆物",
        category=category,
        severity=Severity.minor,
        source=Source.grid_worker,
        org_unit=grid,
        actor=Actor("gw-07", Role.operator),
        description="网格员一键上报",
    )
    return case.id


async def test_every_path_through_the_store(
    service: CaseService, db: Database, redis_client: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    queue = CaseQueue(redis_client, keys, db)
    cid = await report(service)
    await service.accept(cid, OPERATOR)
    case = await service.dispatch(cid, OPERATOR)
    assert (case.department, case.level) == ("hd-jwh", "village")
    # 3 working days ('*' rule) from Tue 30 Sep 10:00: 7 h, the holiday, 8 h on 9 and 10 Oct, 1 h on the worked
    # Saturday 11 Oct.
    assert case.due_at == cst(2025, 10, 11, 10)
    # The queue entry comes through the outbox.
    assert await queue.relay(clock.now()) >= 1
    [entry] = await queue.claim("hd-jwh", "h-hd-jwh")
    assert entry.case_id == cid
    worker = handler("hd-jwh")
    clock.advance(600)
    await service.claim(cid, worker)
    assert await redis_client.zscore(keys.sla_deadlines, cid) is not None

    # Returned with a reason, reassigned by override to the 司法所 (a new queue entry and a new clock).
    clock.advance(600)
    case = await service.return_case(cid, worker, "需司法调解")
    assert case.stage is Stage.accepted and await redis_client.zscore(keys.sla_deadlines, cid) is None
    clock.advance(600)
    case = await service.dispatch(cid, SUPERVISOR, department="qs-sfs", reason="当事人申请司法调解")
    assert case.department == "qs-sfs" and case.reassignments == 1 and case.returns == 1
    await queue.relay(clock.now())
    assert [e.case_id for e in await queue.claim("qs-sfs", "h-qs-sfs")] == [cid]

    # Extension: pending pauses supervision; approval resumes it with the later deadline.
    sfs = handler("qs-sfs")
    await service.claim(cid, sfs)
    clock.advance(600)
    await service.request_extension(cid, sfs, 8 * H, "等待鉴定结果")
    assert await redis_client.zscore(keys.sla_deadlines, cid) is None
    clock.set(cst(2025, 10, 9, 10))
    before = (await service.get(cid)).due_at  # type: ignore[union-attr]
    case = await service.approve_extension(cid, SUPERVISOR)
    assert case.extensions == 1 and case.due_at is not None and before is not None and case.due_at > before
    assert await redis_client.zscore(keys.sla_deadlines, cid) is not None

    # Feedback, a failed check (rework), feedback again, check passed: closed.
    await service.feedback(cid, sfs, "已调解")
    await service.verify(cid, OPERATOR)
    await service.fail_check(cid, OPERATOR, "当事人不认可")
    await service.feedback(cid, sfs, "再次调解，双方签字")
    await service.verify(cid, OPERATOR)
    case = await service.pass_check(cid, OPERATOR)
    assert case.stage is Stage.closed and case.reworks == 1
    assert not await redis_client.exists(plan_key(keys, cid))

    # Everything survives a reload from the database, and the history tells the story.
    stored = await service.get(cid)
    assert stored == case
    history = await service.history(cid)
    assert [e.action for e in history] == [
        "report", "accept", "dispatch", "claim", "return", "reassign", "claim", "request_extension",
        "approve_extension", "feedback", "verify", "fail_check", "feedback", "verify", "pass_check",
    ]  # fmt: skip
    reassign = history[5]
    assert "overridden_by=sup-wang" in reassign.note and "当事人申请司法调解" in reassign.note
    assert "需司法调解" in history[4].note

    # Refusals name the reason and change nothing.
    with pytest.raises(TransitionError, match="not allowed from stage closed"):
        await service.park(cid, SUPERVISOR, "x")
    assert await service.get(cid) == case

    # Side paths on other cases: cancel, merge, park and reopen.
    other = await report(service)
    await service.cancel(other, OPERATOR, "非本中心事项")
    dup = await report(service)
    with pytest.raises(TransitionError, match="merge into an open case"):
        await service.merge(dup, OPERATOR, other)
    main = await report(service)
    assert (await service.merge(dup, OPERATOR, main)).stage is Stage.merged
    await service.accept(main, OPERATOR)
    await service.dispatch(main, OPERATOR)
    await service.park(main, SUPERVISOR, "历史遗留，需区级统筹")
    assert (await service.reopen(main, SUPERVISOR, "已有方案")).stage is Stage.accepted

    [row] = compute(await service.records(), clock.now())
    assert (row.opened, row.closed, row.returns, row.extensions, row.reworks) == (2, 1, 1, 1, 1)


async def test_concurrent_actions_one_wins(service: CaseService) -> None:
    cid = await report(service)
    await service.accept(cid, OPERATOR)
    await service.dispatch(cid, OPERATOR)
    # Two handlers of the department claim at once: whichever order they interleave in, one wins.
    results = await asyncio.gather(
        service.claim(cid, Actor("h-zhang", Role.department_handler, "hd-jwh")),
        service.claim(cid, Actor("h-chen", Role.department_handler, "hd-jwh")),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], CaseConflict | TransitionError)
    history = await service.history(cid)
    assert [e.action for e in history] == ["report", "accept", "dispatch", "claim"]
    winner = next(r for r in results if not isinstance(r, BaseException))
    assert (await service.get(cid)).claimed_by == winner.claimed_by  # type: ignore[union-attr]


async def test_resync_rebuilds_plans_and_the_sweep_fires(
    service: CaseService, redis_client: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    ids = []
    for grid in ("hedong-g1", "shanxia-g1", "hedong-g2"):
        cid = await report(service, "perimeter_intrusion", grid)  # 2 plain hours
        await service.accept(cid, OPERATOR)
        await service.dispatch(cid, OPERATOR)
        ids.append(cid)
    await redis_client.delete(keys.sla_deadlines, *[plan_key(keys, i) for i in ids])  # a lost Redis
    assert await service.resync_supervision() == 3
    assert await redis_client.zcard(keys.sla_deadlines) == 3
    assert await service.resync_supervision() == 3  # idempotent: nothing fires twice
    fired = await service.supervision.sweep(clock.now() + timedelta(hours=7))
    assert fired == 9
    assert await redis_client.xlen(firing_stream(keys)) == 9
    # Each firing goes into the case's history once, however often it is delivered.
    firings = [Firing.from_entry(i, f) for i, f in await redis_client.xrange(firing_stream(keys))]
    assert [await service.record_firing(f) for f in firings] == [True] * 9
    assert [await service.record_firing(f) for f in firings] == [False] * 9
    history = await service.history(ids[0])
    supervised = [e.note for e in history if e.action == "supervise"]
    assert len(supervised) == 3 and "提醒承办部门" in supervised[0] and "上报上级 qingshui" in supervised[2]
    # The light is read at the time of asking: green at dispatch, red once the 2 hours have passed.
    assert (await service.get(ids[0])).light is Light.green  # type: ignore[union-attr]
    clock.advance(2 * H + 1)
    assert (await service.get(ids[0])).light is Light.red  # type: ignore[union-attr]


async def test_stats_from_the_store(service: CaseService, clock: ManualClock) -> None:
    done = await report(service)
    await service.accept(done, OPERATOR)
    await service.dispatch(done, OPERATOR)
    worker = handler("hd-jwh")
    await service.claim(done, worker)
    await service.feedback(done, worker, "已处置")
    await service.verify(done, OPERATOR)
    await service.pass_check(done, OPERATOR)
    late = await report(service, "perimeter_intrusion")
    await service.accept(late, OPERATOR)
    await service.dispatch(late, OPERATOR)
    clock.advance(3 * H)
    rows = await service.stats(clock.now(), by=[GroupBy.category], start=cst(2025, 9, 1), end=cst(2025, 10, 1))
    figures = {r.group: (r.opened, r.due, r.closed, r.closed_on_time, r.open_red) for r in rows}
    assert figures == {("dispute",): (1, 1, 1, 1, 0), ("perimeter_intrusion",): (1, 1, 0, 0, 1)}


async def test_report_accept_and_dispatch_in_one_transaction(
    service: CaseService, db: Database, redis_client: aioredis.Redis, keys: Keys, clock: ManualClock
) -> None:
    case = await service.report(
        title="围栏断线",
        category="perimeter_intrusion",
        severity=Severity.critical,
        source=Source.alarm,
        org_unit="shanxia-g1",
        actor=Actor("system:intake", Role.integrator),
        accept_by=OPERATOR,
        dispatch=True,
        alarm_ids=["a-1"],
    )
    assert (case.stage, case.department, case.level) == (Stage.dispatched, "qs-zfd", "town")  # critical → town
    assert case.due_at == clock.now() + timedelta(hours=2)
    assert [e.action for e in await service.history(case.id)] == ["report", "accept", "dispatch"]
    await CaseQueue(redis_client, keys, db).relay(clock.now())
    assert [e.case_id for e in await CaseQueue(redis_client, keys, db).claim("qs-zfd", "h1")] == [case.id]
    assert await redis_client.zscore(keys.sla_deadlines, case.id) is not None
    with pytest.raises(TransitionError, match="accepted"):
        await service.report(
            title="x", category="dispute", severity=Severity.minor, source=Source.resident, org_unit="hedong-g1",
            actor=OPERATOR, dispatch=True,
        )  # fmt: skip


async def test_one_case_per_alarm(service: CaseService) -> None:
    def from_alarm() -> Awaitable[object]:
        return service.report(
            title="围栏入侵", category="perimeter_intrusion", severity=Severity.major, source=Source.alarm,
            org_unit="hedong-g1", actor=Actor("system:intake", Role.integrator), accept_by=OPERATOR,
            dispatch=True, alarm_ids=["alarm-42"],
        )  # fmt: skip

    first = await from_alarm()
    assert await service.case_for_alarm("alarm-42") == first.id  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError):
        await from_alarm()
