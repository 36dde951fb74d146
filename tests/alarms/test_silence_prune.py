"""Ended silences do not pile up in Redis: the hub deletes those that ended more than a week ago, at start and
then hourly; recent and active ones stay (for the record and the console)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from sharpeye.alarms.silence import KEEP_ENDED, SilenceSpec, SilenceStore

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from tests.ingest.rig import Rig, rig, until

__all__ = ["rig"]  # the fixture


def spec(start: datetime, end: datetime) -> SilenceSpec:
    return SilenceSpec(matchers={"device_id": "fence-school"}, starts_at=start, ends_at=end, reason="检修")


async def test_the_hub_deletes_silences_that_ended_over_a_week_ago(rig: Rig, redis_client: aioredis.Redis,
                                                                   keys: Keys) -> None:  # fmt: skip
    now = datetime.now(UTC)
    store = SilenceStore(redis_client, keys)
    old = await store.create(spec(now - timedelta(days=9), now - timedelta(days=8)), "op", now)
    recent = await store.create(spec(now - timedelta(days=2), now - timedelta(hours=1)), "op", now)
    active = await store.create(spec(now - timedelta(hours=1), now + timedelta(hours=1)), "op", now)
    await rig.start()

    async def pruned() -> bool:
        return not await redis_client.hexists(keys.silences, old.id)

    await until(pruned, "the old silence deleted")
    assert {s.id for s in await store.refresh()} == {recent.id, active.id}


async def test_pruning_runs_on_a_schedule(redis_client: aioredis.Redis, keys: Keys) -> None:
    clock = ManualClock(datetime(2026, 5, 1, 8, tzinfo=UTC))
    store = SilenceStore(redis_client, keys)
    task = asyncio.create_task(store.run_pruning(clock, interval_s=0.05))
    try:
        start = clock.now()
        made = await store.create(spec(start, start + timedelta(hours=1)), "op", start)
        clock.advance(2 * 3600)  # ended an hour ago: kept
        assert await store.prune(clock.now() - KEEP_ENDED) == 0
        assert await redis_client.hexists(keys.silences, made.id)
        clock.advance((KEEP_ENDED + timedelta(hours=2)).total_seconds())

        async def gone() -> bool:
            return not await redis_client.hexists(keys.silences, made.id)

        await until(gone, "the silence deleted at a later round", seconds=5)
    finally:
        while not task.done():  # redis-py can swallow a cancellation that lands while it connects: cancel again
            task.cancel()
            await asyncio.wait({task}, timeout=1)


async def test_ending_a_silence_before_it_began_keeps_every_silence_readable(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    now = datetime.now(UTC)
    store = SilenceStore(redis_client, keys)
    later = await store.create(spec(now + timedelta(hours=1), now + timedelta(hours=2)), "op", now)
    other = await store.create(spec(now - timedelta(hours=1), now + timedelta(hours=1)), "op", now)
    ended = await store.expire(later.id, now)
    assert ended is not None and not ended.active(now) and ended.ends_at == now
    assert {s.id for s in await store.refresh()} == {later.id, other.id}  # it failed validation before the fix
    await redis_client.hset(keys.silences, "broken", b"{not a silence")
    assert {s.id for s in await store.refresh()} == {later.id, other.id}  # a bad record is skipped, not fatal
