"""A verdict (研判) is one atomic step in Redis: the alarm leaves the waiting list in the same script call that records
the verdict, its notification and its audit entry. Two verdicts given at once on one alarm: one is recorded, the
other is refused (conflict), with one notification and one audit entry; a client watching Redis meanwhile never sees
an alarm neither waiting nor judged (what a hub stopped half-way, or Redis failing between two calls, would leave);
and a verdict is one Redis round trip. Alarms are raised by the real alarm engine on the test Redis and held as the
intake holds them; verdicts are given through the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.rule import Verification
from sharpeye.governance.store import Database
from sharpeye.governance.verification import VerificationError, VerificationService
from sharpeye.ingest.reading import Reading

from sharpeye.audit import entry as audit_entry
from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis
from sharpeye.role import Role
from tests.alarms.conftest import GridLocator, make_site, state_rule


@dataclass
class Room:
    client: aioredis.Redis
    store: AlarmStore
    service: VerificationService
    clock: ManualClock
    keys: Keys
    alarms: list[str]


@pytest.fixture
async def room(tmp_path: Path, redis_server: EmbeddedRedis, keys: Keys) -> AsyncIterator[Room]:
    """12 alarms of a rule with ``verification``, all waiting for a verdict."""
    site = make_site([state_rule("r", verification={"within_s": 60, "supervisor_within_s": 60}, correlate=False)])
    client = aioredis.Redis.from_url(redis_server.url)
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    store = AlarmStore(client, keys)
    engine = AlarmEngine(site, store, GridLocator(), clock)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")  # a verdict writes no SQL
    service = VerificationService(site, client, keys, store, database, clock)
    try:
        await engine.silences.refresh()
        readings = [Reading(device_id="d1", kind="k.r", value="alarm", seq=1, channel=f"z{n}", ts=clock.now())  # type: ignore[arg-type]
                    for n in range(12)]  # fmt: skip
        await engine.process(readings)
        raised = [f[b"alarm"].decode() for _, f in await client.xrange(keys.alarm_events) if f[b"type"] == b"raised"]
        assert len(raised) == 12
        policy = Verification(within_s=60, supervisor_within_s=60)
        for alarm in await store.get_many(raised):
            assert await service.hold(alarm, policy)
            assert not await service.hold(alarm, policy)  # a redelivered notification: held once
        assert await client.scard(keys.verification_waiting) == 12 and await client.zcard(keys.verification_due) == 12
        yield Room(client, store, service, clock, keys, raised)
    finally:
        await client.aclose()
        await database.close()


async def verdict_entries(room: Room, alarm_id: str) -> list[str]:
    """The alarm's verdict notifications other than ``pending`` (their notes)."""
    out = []
    for _, fields in await room.client.xrange(room.keys.alarm_events):
        if fields[b"type"] == b"verdict" and fields[b"alarm"].decode() == alarm_id:
            note = fields[b"note"].decode()
            if not note.startswith("pending"):
                out.append(note)
    return out


async def audit_of(room: Room, alarm_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(f[b"actor"].decode(), f[b"action"].decode(), orjson.loads(f[b"details"]))
            for _, f in await room.client.xrange(room.keys.audit) if f[b"target"].decode() == alarm_id]  # fmt: skip


async def test_two_verdicts_at_once_on_one_alarm_one_is_recorded_the_other_refused(
    room: Room, redis_server: EmbeddedRedis
) -> None:
    reasons = room.service.site.governance.false_alarm_reasons
    # a second client, as a second hub node: the two verdicts reach Redis on connections of their own
    other = aioredis.Redis.from_url(redis_server.url)
    other_service = VerificationService(room.service.site, other, room.keys, AlarmStore(other, room.keys),
                                        room.service.db, room.clock)  # fmt: skip
    try:
        for alarm_id in room.alarms[:6]:
            alarm = await room.store.get(alarm_id)
            confirm = audit_entry("user:duty", "alarm.verdict.confirm", alarm_id, {"reason": "", "note": "两人翻越"})
            false = audit_entry("user:chief", "alarm.verdict.false_alarm", alarm_id, {"reason": reasons[0], "note": ""})
            results = await asyncio.gather(
                room.service.verdict(alarm_id, "confirm", "user:duty", Role.operator, note="两人翻越", alarm=alarm,
                                     audit=confirm),
                other_service.verdict(alarm_id, "false_alarm", "user:chief", Role.supervisor, reasons[0], alarm=alarm,
                                      audit=false),
                return_exceptions=True,
            )  # fmt: skip
            won = [r for r in results if not isinstance(r, BaseException)]
            lost = [r for r in results if isinstance(r, BaseException)]
            assert len(won) == 1 and len(lost) == 1, results
            assert isinstance(lost[0], VerificationError) and lost[0].conflict, lost[0]
            assert "not waiting" in str(lost[0])
            winner = won[0].verdict
            recorded = "confirmed" if winner == "confirm" else "false_alarm"
            notes = await verdict_entries(room, alarm_id)
            assert len(notes) == 1 and notes[0].startswith(recorded)  # one notification: the winner's
            audit = await audit_of(room, alarm_id)
            assert [action for _, action, _ in audit] == [f"alarm.verdict.{winner}"]  # one audit entry: the winner's
            after = await room.store.get(alarm_id)
            assert after is not None and after.verdict == recorded
            assert not await room.client.sismember(room.keys.verification_waiting, alarm_id)
            assert not await room.client.exists(room.keys.verification(alarm_id))
            assert await room.client.zscore(room.keys.verification_due, alarm_id) is None
    finally:
        await other.aclose()


async def test_a_watcher_never_sees_an_alarm_neither_waiting_nor_judged(
    room: Room, redis_server: EmbeddedRedis
) -> None:
    """While verdicts are given, another client reads (in one MULTI) whether each alarm waits and what its verdict is,
    as fast as Redis answers: with the alarm taken off the list by one call and the verdict recorded by a later one,
    it sees the gap between the two (what a hub stopped there would leave for ever)."""
    watcher = aioredis.Redis.from_url(redis_server.url)
    seen: list[tuple[str, bool, bytes | None]] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            async with watcher.pipeline(transaction=True) as pipe:
                for alarm_id in room.alarms:
                    pipe.sismember(room.keys.verification_waiting, alarm_id)
                    pipe.hget(room.keys.alarm(alarm_id), "verdict")
                answers = await pipe.execute()
            for i, alarm_id in enumerate(room.alarms):
                seen.append((alarm_id, bool(answers[2 * i]), answers[2 * i + 1]))
            await asyncio.sleep(0)

    reasons = room.service.site.governance.false_alarm_reasons
    gives: list[Callable[[str], Awaitable[Any]]] = [
        lambda a: room.service.verdict(a, "confirm", "user:duty", Role.operator),
        lambda a: room.service.verdict(a, "false_alarm", "user:duty", Role.operator, reasons[0]),
        lambda a: room.service.verdict(a, "review", "user:duty", Role.operator),
    ]
    watching = asyncio.create_task(watch())
    try:
        for n, alarm_id in enumerate(room.alarms):
            await asyncio.sleep(0.002)  # let the watcher read between verdicts too
            await gives[n % 3](alarm_id)
    finally:
        done.set()
        await watching
        await watcher.aclose()
    assert len(seen) > 10 * len(room.alarms)  # the watcher did read meanwhile
    gaps = [(a, v) for a, waits, v in seen if not waits and v in (b"pending", None)]
    assert gaps == []
    verdicts = [a.verdict for a in await room.store.get_many(room.alarms)]
    assert sorted(v or "" for v in verdicts) == sorted(["confirmed", "false_alarm", "review"] * 4)
    waiting = [w.alarm_id for w in await room.service.waiting()]
    assert sorted(waiting) == sorted(room.alarms[2::3])  # reviewed: with the supervisors


async def test_a_verdict_is_one_redis_round_trip_and_the_time_limits_too(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round trips counted where redis-py sends: one packed send per command, or per pipeline."""
    sends = 0
    send = AbstractConnection.send_packed_command
    mine = asyncio.current_task()  # only this test's sends: other tasks of the session may use Redis meanwhile

    async def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        nonlocal sends
        if asyncio.current_task() is mine:
            sends += 1
        await send(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    await room.store.get(room.alarms[0])  # the script loaded (once per process), outside the count
    reasons = room.service.site.governance.false_alarm_reasons
    counted: dict[str, int] = {}
    for n, (verdict, role, reason) in enumerate([("false_alarm", Role.operator, reasons[0]),
                                                 ("confirm", Role.operator, ""), ("review", Role.operator, ""),
                                                 ("confirm", Role.supervisor, "")]):  # fmt: skip
        alarm_id = room.alarms[n]
        alarm = await room.store.get(alarm_id)  # as the route reads it (its scope)
        audit = audit_entry("user:x", f"alarm.verdict.{verdict}", alarm_id, {"reason": reason, "note": ""})
        sends = 0
        await room.service.verdict(alarm_id, verdict, "user:x", role, reason, alarm=alarm, audit=audit)  # type: ignore[arg-type]
        counted[f"{verdict} by {role}"] = sends
    assert counted == {"false_alarm by operator": 1, "confirm by operator": 1, "review by operator": 1,
                       "confirm by supervisor": 1}  # fmt: skip
    assert len(await audit_of(room, room.alarms[0])) == 1

    # the time limits: each step one script call, after the due list and the alarm's stage and rule (one HMGET)
    room.clock.advance(61)
    sends = 0
    assert await room.service.tick() == 9  # the 8 alarms nobody judged go to the supervisors; the reviewed one opens
    assert sends == 1 + 9 * 2 and room.service.escalated == 8 and room.service.timed_out == 1
    room.clock.advance(61)
    sends = 0
    assert await room.service.tick() == 8  # and then those 8 open their cases
    assert sends == 1 + 8 * 2 and room.service.timed_out == 9
    assert await room.service.waiting() == []
    history = [h.action for h in await room.store.history(room.alarms[5])]
    assert history[-3:] == ["verdict:pending", "verdict:escalated", "verdict:confirmed"]
    assert (await verdict_entries(room, room.alarms[5]))[-1].startswith("confirmed: 研判超时")

    # holding an alarm for its verdict (the intake's step; a judged one here, for the count): its waiting state in
    # one script, then its history
    alarm = await room.store.get(room.alarms[0])
    assert alarm is not None
    sends = 0
    assert await room.service.hold(alarm, Verification(within_s=60))
    assert sends == 2 and [w.alarm_id for w in await room.service.waiting()] == [alarm.id]


async def test_a_verdict_whose_reply_was_lost_is_answered_as_given_when_sent_again(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge script runs, then its reply is lost (the connection drops as it is read): whoever sends the same
    verdict again (the operator's client after the 503; a Redis client set to retry commands would too) is answered
    as the first time, with nothing recorded twice; a different verdict, or another operator's, is still refused."""
    reasons = room.service.site.governance.false_alarm_reasons
    alarm_id = room.alarms[0]
    read = AbstractConnection.read_response
    lost = 0

    async def losing(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        nonlocal lost
        reply = await read(self, *args, **kwargs)
        if lost == 0 and isinstance(reply, list) and reply and reply[0] == b"verdict":
            lost += 1
            await self.disconnect()
            raise RedisConnectionError("connection lost while reading the reply (test)")
        return reply

    monkeypatch.setattr(AbstractConnection, "read_response", losing)
    audit = audit_entry("user:duty", "alarm.verdict.false_alarm", alarm_id, {"reason": reasons[0], "note": "猫"})
    try:
        outcome = await room.service.verdict(alarm_id, "false_alarm", "user:duty", Role.operator, reasons[0], "猫",
                                             audit=audit)  # fmt: skip
    except VerificationError as exc:  # the client gave up: the operator sends it again
        assert exc.unavailable and lost == 1
        outcome = await room.service.verdict(alarm_id, "false_alarm", "user:duty", Role.operator, reasons[0], "猫",
                                             audit=audit)  # fmt: skip
    assert lost == 1 and outcome.verdict == "false_alarm"
    again = await room.service.verdict(alarm_id, "false_alarm", "user:duty", Role.operator, reasons[0], "猫")
    assert again.verdict == "false_alarm"
    assert await verdict_entries(room, alarm_id) == [f"false_alarm: {reasons[0]} 猫"]  # recorded once
    assert len(await audit_of(room, alarm_id)) == 1
    for refused in (lambda: room.service.verdict(alarm_id, "confirm", "user:duty", Role.operator),
                    lambda: room.service.verdict(alarm_id, "false_alarm", "user:duty", Role.operator, reasons[1]),
                    lambda: room.service.verdict(alarm_id, "false_alarm", "user:chief", Role.operator, reasons[0],
                                                 "猫")):  # fmt: skip
        with pytest.raises(VerificationError) as err:
            await refused()
        assert err.value.conflict

    reviewed = room.alarms[1]  # 转人工复核 sent twice: handed to the supervisors once, both answered as given
    for _ in range(2):
        handed = await room.service.verdict(reviewed, "review", "user:duty", Role.operator, note="看不清")
        assert handed.verdict == "review"
    assert [w.stage for w in await room.service.waiting() if w.alarm_id == reviewed] == ["supervisor"]
    assert await verdict_entries(room, reviewed) == ["review: 看不清"]
    confirmed = room.alarms[2]
    first = await room.service.verdict(confirmed, "confirm", "user:duty", Role.operator, note="翻越")
    assert await room.service.verdict(confirmed, "confirm", "user:duty", Role.operator, note="翻越") == first
    assert await verdict_entries(room, confirmed) == ["confirmed: 翻越"]
