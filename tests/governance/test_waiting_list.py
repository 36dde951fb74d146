"""The 研判 waiting list (``VerificationService.waiting``) on the test Redis: oldest first, at most ``limit``, the stage
and times of each, and the page filled from later alarms when the caller's scope leaves some of the first out. Alarms
are raised by the real alarm engine and held as the intake holds them."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.rule import Verification
from sharpeye.governance.store import Database
from sharpeye.governance.verification import VerificationService
from sharpeye.ingest.reading import Reading

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis
from sharpeye.role import Role
from tests.alarms.conftest import GridLocator, make_site, state_rule


async def test_the_waiting_list_is_oldest_first_paged_and_filtered(
    database: Database, redis_server: EmbeddedRedis, keys: Keys
) -> None:
    site = make_site([state_rule("r", verification={"within_s": 60}, correlate=False)])
    client = aioredis.Redis.from_url(redis_server.url)
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    store = AlarmStore(client, keys)
    engine = AlarmEngine(site, store, GridLocator(), clock)
    service = VerificationService(site, client, keys, store, database, clock)
    try:
        await engine.silences.refresh()
        assert await service.waiting() == []
        zones = [f"z{n}" for n in range(12)]
        readings = [Reading(device_id="d1", kind="k.r", value="alarm", seq=1, channel=z, ts=clock.now())  # type: ignore[arg-type]
                    for z in zones]  # fmt: skip
        await engine.process(readings)
        raised = [f[b"alarm"].decode() for _, f in await client.xrange(keys.alarm_events) if f[b"type"] == b"raised"]
        alarms = {a.channel: a for a in await store.get_many(raised)}
        held_at: dict[str | None, datetime] = {}
        for zone in reversed(zones):  # held newest zone first: the list's order is the holding time, not the id
            clock.advance(1)
            assert await service.hold(alarms[zone], Verification(within_s=60))
            held_at[zone] = clock.now()
        oldest = [alarms[z].id for z in reversed(zones)]

        page = await service.waiting(limit=5)
        assert [w.alarm_id for w in page] == oldest[:5]
        first = page[0]
        assert first.stage == "operator" and first.rule_id == "r" and first.alarm is not None
        assert first.since == held_at["z11"] and first.due is not None
        assert (first.due - first.since).total_seconds() == 60
        assert [w.alarm_id for w in await service.waiting()] == oldest  # default limit: all of them

        # only even zones in scope: the first page of 5 holds 2, the rest come from later alarms
        even = await service.waiting(limit=5, match=lambda a: int((a.channel or "z1")[1:]) % 2 == 0)
        assert [w.alarm.channel for w in even if w.alarm] == ["z10", "z8", "z6", "z4", "z2"]
        assert await service.waiting(limit=5, match=lambda a: False) == []

        # handed to the supervisors: still listed, in its place, with its new stage; judged: gone
        await service.verdict(oldest[1], "review", "user:duty", Role.operator, note="看不清")
        await service.verdict(oldest[0], "false_alarm", "user:duty", Role.operator, reason="小动物")
        now = await service.waiting(limit=3)
        assert [(w.alarm_id, w.stage) for w in now] == [(oldest[1], "supervisor"), (oldest[2], "operator"),
                                                         (oldest[3], "operator")]  # fmt: skip
    finally:
        await client.aclose()
