"""Property tests: random interleavings of readings (duplicated, reordered), acknowledgements, operator clears,
silences and clock jumps, checked against a small reference model; and two engines on one Redis."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.silence import SilenceSpec
from sharpeye.alarms.store import RESET_GRACE_S, AlarmStore
from sharpeye.ingest.reading import Reading

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis
from tests.alarms.conftest import GridLocator, make_site, state_rule

# flapping off for the model (it has its own test); severity major
SITE = make_site([state_rule(flapping={"transitions": 10_000, "window_s": 1})])


@dataclass
class Model:
    last_seq: int | None = None
    open: bool = False
    acked: bool = False
    silenced_open: bool = False
    count: int = 0
    alarms: int = 0
    notified_raise: int = 0
    notified_clear: int = 0
    silence_until: float = -1.0
    now: float = 0.0
    history: list[str] = field(default_factory=list)

    last_ts: float = 0.0

    def reading(self, seq: int, active: bool) -> None:
        # older or repeated: ignored, unless the device time is over 5 minutes newer (a device restart)
        if self.last_seq is not None and seq <= self.last_seq and not self.now > self.last_ts + RESET_GRACE_S:
            return
        self.last_seq, self.last_ts = seq, self.now
        if active:
            if self.open:
                self.count += 1
                return
            self.open, self.acked, self.count = True, False, 1
            self.alarms += 1
            if self.now < self.silence_until:
                self.silenced_open = True
            else:
                self.notified_raise += 1
        elif self.open:
            self.clear()

    def clear(self) -> None:
        self.open = False
        if not self.silenced_open:
            self.notified_clear += 1
        self.silenced_open = False

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.silenced_open and self.now >= self.silence_until:
            self.silenced_open = False
            self.notified_raise += 1

    @property
    def state(self) -> str | None:
        if self.alarms == 0:
            return None
        if self.open:
            return "active_ack" if self.acked else "active_unack"
        return "cleared" if self.acked else "cleared_unack"


op = st.one_of(
    st.tuples(st.just("reading"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("ack"), st.just(0), st.just(False)),
    st.tuples(st.just("clear"), st.just(0), st.just(False)),
    st.tuples(st.just("jump"), st.integers(1, 400), st.just(False)),
    st.tuples(st.just("silence"), st.integers(10, 300), st.just(False)),
)


async def run_ops(url: str, ops: list[tuple[str, int, bool]]) -> None:
    client = aioredis.Redis.from_url(url)
    keys = Keys(prefix=f"p{uuid.uuid4().hex[:10]}")
    clock = ManualClock(datetime(2026, 5, 1, tzinfo=UTC))
    store = AlarmStore(client, keys)
    engine = AlarmEngine(SITE, store, GridLocator(), clock)
    await engine.silences.refresh()
    model = Model()
    try:
        for kind, number, flag in ops:
            clock.advance(0.001)  # real clocks move between operations; ties would make "newest" arbitrary
            model.now += 0.001
            if kind == "reading":
                reading = Reading(device_id="d1", kind="k.r", value="alarm" if flag else "restore", seq=number,
                                  channel="z1", ts=clock.now())  # fmt: skip
                await engine.process([reading])
                model.reading(number, flag)
            elif kind in ("ack", "clear"):
                alarms, _ = await store.page(limit=1)
                if alarms:
                    result = await store.act(alarms[0].id, "acknowledge" if kind == "ack" else "clear", "user:t",
                                             clock.now())  # fmt: skip
                    if kind == "ack" and result.outcome == "acknowledged":
                        model.acked = True
                    if kind == "clear" and result.outcome == "cleared":
                        assert model.open
                        model.clear()
            elif kind == "jump":
                clock.advance(number)
                await engine.sweep()
                model.advance(number)
            elif kind == "silence" and model.silence_until <= model.now:
                now = clock.now()
                spec = SilenceSpec(matchers={"rule_id": "r"}, starts_at=now, ends_at=now + timedelta(seconds=number),
                                   reason="test")  # fmt: skip
                await engine.silences.create(spec, "user:t", now)
                model.silence_until = model.now + number
            alarms, _ = await store.page(limit=1000)
            assert len(alarms) == model.alarms
            newest = alarms[0] if alarms else None
            assert (newest.state if newest else None) == model.state
            if newest is not None and model.open:
                assert newest.count == model.count
            events = [f[b"type"].decode() for _, f in await client.xrange(keys.alarm_events)]
            assert events.count("raised") == model.notified_raise, (events, model)
            assert events.count("cleared") == model.notified_clear, (events, model)
    finally:
        await client.aclose()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=40))
def test_engine_agrees_with_reference_model(redis_server: EmbeddedRedis, ops: list[tuple[str, int, bool]]) -> None:
    asyncio.run(run_ops(redis_server.url, ops))


async def test_two_engines_fed_the_same_burst_raise_each_alarm_once(redis_server: EmbeddedRedis, keys: Keys) -> None:
    site = make_site([state_rule()])
    clock = ManualClock(datetime(2026, 5, 1, tzinfo=UTC))
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    engines = [AlarmEngine(site, AlarmStore(c, keys), GridLocator(), clock) for c in clients]
    burst = [
        Reading(device_id=f"d{n % 25}", kind="k.r", value="alarm", seq=seq, channel="z1", ts=clock.now())
        for seq in range(1, 9)
        for n in range(25)
    ]
    rng = random.Random(7)
    try:
        for _ in range(3):  # each node receives the whole burst, in its own order and batching
            copies = [burst[:], burst[:]]
            for copy in copies:
                rng.shuffle(copy)

            async def feed(engine: AlarmEngine, readings: list[Reading]) -> None:
                for start in range(0, len(readings), 7):
                    await engine.process(readings[start : start + 7])

            await asyncio.gather(*(feed(e, c) for e, c in zip(engines, copies, strict=True)))
        store = engines[0].store
        alarms, _ = await store.page(limit=1000)
        assert len(alarms) == 25  # one per fingerprint
        events = [f[b"type"] for _, f in await clients[0].xrange(keys.alarm_events)]
        assert events.count(b"raised") == 25
        # every distinct sequence counted once at most; a reading is 'stale' once a higher one was applied
        assert all(1 <= a.count <= 8 for a in alarms)
        assert (await store.counts())["active_unack"] == 25
    finally:
        for client in clients:
            await client.aclose()
