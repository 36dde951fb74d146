"""The record of 研判 on SQLite and PostgreSQL: the final verdicts in the alarms' notification log become ``verdicts``
rows (and the false alarms ``false_alarms`` rows) once each, and the accuracy report counts them per camera, rule and
zone. Alarms are raised by the real alarm engine on the test Redis; verdicts are given through the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.rule import Verification
from sharpeye.governance.store import Database, FalseAlarmRow
from sharpeye.governance.verification import VerificationService
from sharpeye.ingest.reading import Reading
from sqlalchemy import event, select

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis
from sharpeye.role import Role
from tests.alarms.conftest import GridLocator, make_site, state_rule


async def test_final_verdicts_are_kept_once_and_counted_per_camera_rule_and_zone(
    database: Database, redis_server: EmbeddedRedis, keys: Keys
) -> None:
    site = make_site([state_rule("r", verification={"within_s": 60}, correlate=False)])
    policy = Verification(within_s=60)
    reasons = site.governance.false_alarm_reasons
    client = aioredis.Redis.from_url(redis_server.url)
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    store = AlarmStore(client, keys)
    engine = AlarmEngine(site, store, GridLocator(), clock)
    registry = CollectorRegistry()
    service = VerificationService(site, client, keys, store, database, clock, registry=registry)
    try:
        await engine.silences.refresh()
        places = [("d1", "z1"), ("d1", "z2"), ("b2", "z1")]
        readings = [Reading(device_id=d, kind="k.r", value="alarm", seq=1, channel=z, ts=clock.now())  # type: ignore[arg-type]
                    for d, z in places]  # fmt: skip
        await engine.process(readings)
        entries = await client.xrange(keys.alarm_events)
        raised = [f[b"alarm"].decode() for _, f in entries if f[b"type"] == b"raised"]
        assert len(raised) == 3
        for alarm in await store.get_many(raised):
            assert await service.hold(alarm, policy)
        alarms = {(a.device_id, a.channel): a.id for a in await store.get_many(raised)}
        clock.advance(30)
        statements: list[str] = []
        count = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
        event.listen(database.engine.sync_engine, "before_cursor_execute", count)
        await service.verdict(alarms["d1", "z1"], "false_alarm", "user:duty", Role.operator, reasons[0], "野猫 翻越")
        confirmed = await service.verdict(alarms["d1", "z2"], "confirm", "user:duty", Role.operator)
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
        # a verdict's request writes no SQL, a confirmation's neither: the intake consumer records them and opens
        # the confirmed alarm's case
        assert statements == []
        assert confirmed.verdict == "confirm" and confirmed.case_pending
        await service.verdict(alarms["b2", "z1"], "false_alarm", "user:chief", Role.supervisor, reasons[-1])

        events = [{k.decode(): v.decode() for k, v in f.items()} for _, f in await client.xrange(keys.alarm_events)]
        assert await service.record(events) == 3
        assert registry.get_sample_value("sharpeye_verdicts_recorded_total", {"verdict": "false_alarm"}) == 2
        assert registry.get_sample_value("sharpeye_verdicts_recorded_total", {"verdict": "confirmed"}) == 1
        assert await service.record(events) == 3  # a redelivered batch: nothing twice

        since, until = clock.now() - timedelta(days=1), clock.now() + timedelta(seconds=1)
        by_camera = await service.precision_stats("camera", since, until)
        assert [(i.key, i.confirmed, i.false_alarms, i.precision) for i in by_camera] == [
            ("b2", 0, 1, 0.0), ("d1", 1, 1, 0.5)]  # fmt: skip
        by_zone = {i.key: (i.confirmed, i.false_alarms) for i in await service.precision_stats("zone", since, until)}
        assert by_zone == {"d1/z1": (0, 1), "d1/z2": (1, 0), "b2/z1": (0, 1)}
        by_rule = await service.precision_stats("rule", since, until)
        assert [(i.key, i.precision) for i in by_rule] == [("r", 0.3333)]
        assert await service.precision_stats("camera", since, until, org_units={"g2"}) == by_camera[:1]
        assert await service.precision_stats("camera", until, until + timedelta(days=1)) == []

        async with database.sessions() as session:
            rows = (await session.scalars(select(FalseAlarmRow).order_by(FalseAlarmRow.device_id))).all()
        assert [(r.device_id, r.reason, r.note, r.actor) for r in rows] == [
            ("b2", reasons[-1], "", "user:chief"), ("d1", reasons[0], "野猫 翻越", "user:duty")]  # fmt: skip
        assert rows[1].judged_at == clock.now() and rows[1].raised_at == clock.now() - timedelta(seconds=30)
        by_reason = await service.false_alarm_stats("reason", since, until)
        assert sorted((c.key, c.count) for c in by_reason) == sorted([(reasons[0], 1), (reasons[-1], 1)])
    finally:
        await client.aclose()
