"""Supervision against a real Redis: each step fires once and on time on the working calendar, through a
Redis restart, a fresh sweeper process, concurrent sweepers, a paused clock, and a crashed notifier."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError
from sharpeye.config.governance import Governance
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, Source
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.escalation import Firing, Notifier, Supervision, firing_stream, plan_key
from sharpeye.governance.flow import Action, Args, Flow, new_case
from sharpeye.governance.sla import SlaPolicy

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis
from tests.governance.casebook import OPERATOR, SUPERVISOR, cst, handler

H = 3600.0


def dispatched_case(
    flow: Flow, dispatcher: Dispatcher, n: int, at: datetime, category: str, severity: Severity = Severity.minor
) -> Case:
    case = new_case(
        case_id=f"QS-{n:04d}",
        title="测试",
        category=category,
        severity=severity,
        source=Source.grid_worker,
        org_unit="hedong-g1" if n % 2 else "shanxia-g2",
        actor=OPERATOR,
        now=at,
    ).case
    case = flow.apply(case, Action.accept, OPERATOR, at).case
    choice = dispatcher.choose(category, case.org_unit, severity)
    return flow.apply(case, Action.dispatch, OPERATOR, at, Args(assignment=choice)).case


async def all_firings(client: aioredis.Redis, keys: Keys) -> list[Firing]:
    entries = await client.xrange(firing_stream(keys))
    return [Firing.from_entry(eid, fields) for eid, fields in entries]


async def until_loaded(client: aioredis.Redis) -> None:
    """Poll (for at most 20 s) until a restarted Redis has loaded its append-only file: it answers
    LOADING meanwhile."""
    async with asyncio.timeout(20):
        while True:
            try:
                await client.ping()
                return
            except BusyLoadingError:
                await asyncio.sleep(0.05)


def supervision(client: aioredis.Redis, keys: Keys, sla: SlaPolicy, config: Governance) -> Supervision:
    return Supervision(client, keys, sla, config.escalation, batch=7)


async def test_each_step_fires_once_through_restarts(
    redis_server: EmbeddedRedis,
    redis_client: aioredis.Redis,
    keys: Keys,
    flow: Flow,
    dispatcher: Dispatcher,
    sla: SlaPolicy,
    governance_config: Governance,
) -> None:
    clock = ManualClock(cst(2025, 9, 29, 9))
    sup = supervision(redis_client, keys, sla, governance_config)
    cases: dict[str, Case] = {}
    for n in range(40):
        at = clock.now() + timedelta(minutes=37 * n)
        category = ("dispute", "perimeter_intrusion", "environment", "device_fault")[n % 4]
        case = dispatched_case(flow, dispatcher, n, at, category)
        cases[case.id] = case
        above = dispatcher.level_above(dispatcher.departments[case.department or ""].unit)
        await sup.schedule(case, above.id if above else None, reset=True)
    assert await redis_client.zcard(keys.sla_deadlines) == 40

    # One case asks for an extension on Tue 30 Sep 10:00 and gets it on Thu 9 Oct 11:00 (across the holiday).
    paused_id = "QS-0000"  # dispute, 3 working days from Mon 29 Sep 09:00
    worker = handler(cases[paused_id].department or "")
    case = flow.apply(cases[paused_id], Action.claim, worker, cst(2025, 9, 30, 9)).case
    pause_at, resume_at = cst(2025, 9, 30, 10), cst(2025, 10, 9, 11)

    expected: dict[tuple[str, str], float] = {}
    for cid, c in cases.items():
        if cid != paused_id:
            for step, due, _notify, _target in sup.plan_for(c, "x"):
                expected[(cid, step)] = due

    sweepers = [sup]
    restarted = concurrent = False
    client2: aioredis.Redis | None = None
    end = cst(2025, 10, 16, 18)
    while clock.now() < end:
        clock.advance(1800)
        now = clock.now()
        if now >= pause_at and not case.extension_pending and case.extensions == 0:
            case = flow.apply(case, Action.request_extension, worker, now, Args(reason="需鉴定", extra_s=8 * H)).case
            await sup.pause(case.id)
        if now >= resume_at and case.extension_pending:
            case = flow.apply(case, Action.approve_extension, SUPERVISOR, now).case
            await sup.schedule(case, "qingshui" if case.level == "village" else None)
            for step, due, _notify, _target in sup.plan_for(case, "x"):
                expected[(case.id, step)] = due
        if not restarted and now >= cst(2025, 10, 9, 12):
            # Redis restarts and the sweeper process is replaced by a fresh one with a new connection.
            await redis_client.aclose()
            redis_server.restart()
            client2 = aioredis.Redis.from_url(redis_server.url)
            await until_loaded(client2)
            sup = supervision(client2, keys, sla, governance_config)
            sweepers = [sup]
            restarted = True
        if restarted and not concurrent and now >= cst(2025, 10, 10, 9):
            # From here three sweepers on separate connections race on every sweep.
            assert client2 is not None
            extra = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
            sweepers = [sup] + [supervision(c, keys, sla, governance_config) for c in extra]
            concurrent = True
        await asyncio.gather(*(s.sweep(now) for s in sweepers))

    assert client2 is not None
    firings = await all_firings(client2, keys)
    counts = Counter((f.case_id, f.step) for f in firings)
    assert [k for k, v in counts.items() if v > 1] == []
    assert set(counts) == set(expected)
    for f in firings:
        assert f.at >= f.due == expected[(f.case_id, f.step)]
        assert f.at - f.due <= 1800  # fired at the first sweep after it fell due
    # The paused case's first reminder came after the holiday and the pause: 80% of 24 h + 8 h, counted
    # on working time with the pause left out.
    remind = next(f for f in firings if f.case_id == paused_id and f.step == "remind-handler")
    assert datetime.fromtimestamp(remind.due, UTC) >= resume_at
    assert await client2.zcard(keys.sla_deadlines) == 0
    assert set(await sup.fired(paused_id)) == {"remind-handler", "remind-centre", "escalate"}
    escalations = [f for f in firings if f.step == "escalate"]
    assert len(escalations) == len(cases)
    for f in escalations:
        unit = dispatcher.departments[cases[f.case_id].department or ""].unit
        above = dispatcher.level_above(unit)
        # village departments escalate to the street; the street itself has no level above in this hub
        assert (f.notify, f.target) == ("level_above", above.id if above else "centre")
    for s in sweepers:
        if s.redis is not client2:
            await s.redis.aclose()
    await client2.aclose()


async def test_reassignment_starts_a_new_generation(
    redis_client: aioredis.Redis,
    keys: Keys,
    flow: Flow,
    dispatcher: Dispatcher,
    sla: SlaPolicy,
    governance_config: Governance,
) -> None:
    sup = supervision(redis_client, keys, sla, governance_config)
    start = cst(2025, 10, 13, 9)
    case = dispatched_case(flow, dispatcher, 1, start, "perimeter_intrusion")  # 2 plain hours
    await sup.schedule(case, "qingshui", reset=True)
    assert await sup.sweep(start + timedelta(hours=1, minutes=40)) == 1  # 80% of 2 h
    assert set(await sup.fired(case.id)) == {"remind-handler"}
    # Rescheduling the same clock (e.g. after a pause) never repeats a fired step.
    await sup.schedule(case, "qingshui")
    assert await sup.sweep(start + timedelta(hours=1, minutes=50)) == 0
    # Reassigned to another department: its clock and reminders start over, under a new generation.
    moved = flow.apply(
        case,
        Action.reassign,
        OPERATOR,
        start + timedelta(hours=2, minutes=30),
        Args(assignment=dispatcher.choose("perimeter_intrusion", "hedong-g1", Severity.critical)),
    ).case
    await sup.schedule(moved, "qingshui", reset=True)
    assert await sup.fired(case.id) == {}
    assert await sup.sweep(start + timedelta(hours=4, minutes=30)) == 2  # 80% and 100% of the new 2 h
    firings = await all_firings(redis_client, keys)
    assert [(f.step, f.generation) for f in firings] == [
        ("remind-handler", "1"),
        ("remind-handler", "2"),
        ("remind-centre", "2"),
    ]
    assert firings[1].target == "qs-zfd"
    await sup.finish(case.id)
    assert not await redis_client.exists(plan_key(keys, case.id))
    assert await redis_client.zcard(keys.sla_deadlines) == 0


async def test_crashed_notifier_loses_nothing_and_repeats_nothing(
    redis_client: aioredis.Redis,
    keys: Keys,
    flow: Flow,
    dispatcher: Dispatcher,
    sla: SlaPolicy,
    governance_config: Governance,
) -> None:
    sup = supervision(redis_client, keys, sla, governance_config)
    start = cst(2025, 10, 13, 9)
    for n in range(6):
        case = dispatched_case(flow, dispatcher, n, start, "fire")  # 1 plain hour
        await sup.schedule(case, "qingshui", reset=True)
    assert await sup.sweep(start + timedelta(hours=6)) == 18

    delivered: list[str] = []

    async def deliver(firing: Firing) -> None:
        delivered.append(firing.idempotency_key)

    first = Notifier(redis_client, keys, "node-a", deliver, min_idle_ms=0)
    await first.ensure_group()
    taken = await first.read(count=5)  # node-a reads five and dies before delivering them
    assert len(taken) == 5 and delivered == []

    second = Notifier(redis_client, keys, "node-b", deliver, min_idle_ms=0)
    await second.ensure_group()
    while await second.run_once(count=4):
        pass
    assert len(delivered) == 18 and len(set(delivered)) == 18
    pending = await redis_client.xpending(firing_stream(keys), "notifier")
    assert pending["pending"] == 0


async def test_running_loops_deliver_reminders(
    redis_client: aioredis.Redis,
    keys: Keys,
    flow: Flow,
    dispatcher: Dispatcher,
    sla: SlaPolicy,
    governance_config: Governance,
) -> None:
    start = cst(2025, 10, 13, 9)
    clock = ManualClock(start)
    sup = supervision(redis_client, keys, sla, governance_config)
    case = dispatched_case(flow, dispatcher, 1, start, "fire")  # 1 plain hour
    await sup.schedule(case, "qingshui")
    got: list[Firing] = []
    arrived = asyncio.Event()

    async def deliver(firing: Firing) -> None:
        got.append(firing)
        if len(got) == 3:
            arrived.set()

    notifier = Notifier(redis_client, keys, "node-a", deliver)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(sup.run(clock, interval=0.02, stop=stop)),
        asyncio.create_task(notifier.run(block_ms=50, stop=stop)),
    ]
    try:
        clock.advance(5 * H)
        async with asyncio.timeout(10):
            await arrived.wait()
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)
    assert [f.step for f in got] == ["remind-handler", "remind-centre", "escalate"]
