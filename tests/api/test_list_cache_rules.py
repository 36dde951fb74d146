"""When the list cache may serve a kept answer (``sharpeye.api.list_cache.ListCache``), on a clock of the test's own;
and its subscription to the alarm channel on a real Redis: it serves only while subscribed, and nothing from before
a lost subscription."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import redis.asyncio as aioredis
from sharpeye.api.list_cache import Entry, Key, ListCache

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


KEY: Key = ("/api/alarms", b"limit=50", None)


def cache(max_age_s: float = 0.5, settle_s: float = 0.0) -> tuple[ListCache, Clock]:
    clock = Clock()
    lists = ListCache(max_age_s, settle_s, clock=clock)
    lists.live = True
    return lists, clock


async def compute(lists: ListCache, key: Key = KEY, body: bytes = b"[]") -> Entry:
    """One computation, begun and ended at once."""
    seq, began, future = lists.begin(key)
    entry = Entry(seq, began, 200, [(b"content-type", b"application/json")], body)
    lists.end(key, future, entry)
    assert future.result() is entry
    return entry


async def test_an_answer_is_served_until_its_age_bound() -> None:
    lists, clock = cache(max_age_s=0.5)
    entry = await compute(lists)
    clock.now += 0.5
    assert lists.get(KEY, "duty") is entry
    clock.now += 0.01
    assert lists.get(KEY, "duty") is None


async def test_a_change_elsewhere_makes_every_answer_stale_at_once_by_default() -> None:
    lists, _ = cache()
    await compute(lists)
    lists.changed()
    assert lists.get(KEY, "duty") is None
    fresh = await compute(lists)
    assert lists.get(KEY, "duty") is fresh


async def test_with_settle_a_change_elsewhere_shows_after_settle_s_and_ones_own_write_at_once() -> None:
    lists, clock = cache(max_age_s=5, settle_s=0.2)
    entry = await compute(lists)
    lists.changed()
    clock.now += 0.19
    assert lists.get(KEY, "duty") is entry
    clock.now += 0.01
    assert lists.get(KEY, "duty") is None

    entry = await compute(lists)
    lists.wrote("duty")
    assert lists.get(KEY, "duty") is None  # read-your-writes
    assert lists.get(KEY, "duty2") is entry  # the others: within settle_s
    clock.now += 0.2
    assert lists.get(KEY, "duty2") is None


async def test_a_write_by_an_unknown_caller_is_a_change_for_everyone() -> None:
    lists, _ = cache(max_age_s=5, settle_s=1)
    await compute(lists)
    lists.wrote(None)
    assert lists.get(KEY, "duty") is None


async def test_an_answer_computed_across_a_write_is_not_served_to_the_writer() -> None:
    lists, _ = cache(max_age_s=5, settle_s=1)
    seq, began, future = lists.begin(KEY)  # the route reads Redis ...
    lists.wrote("duty")  # ... duty's verdict is recorded and answered ...
    lists.end(KEY, future, Entry(seq, began, 200, [], b"[old]"))  # ... the list, read before it, is done
    assert lists.get(KEY, "duty") is None
    assert lists.joinable(KEY, "duty") is None
    assert lists.get(KEY, "duty2") is not None


async def test_callers_wait_only_for_a_computation_begun_after_what_they_must_see() -> None:
    lists, _ = cache()
    seq, began, future = lists.begin(KEY)
    assert lists.joinable(KEY, "duty") is future
    lists.changed()
    assert lists.joinable(KEY, "duty") is None  # begun before the change
    seq2, began2, future2 = lists.begin(KEY)
    assert lists.joinable(KEY, "duty") is future2
    newer = Entry(seq2, began2, 200, [], b"[new]")
    lists.end(KEY, future2, newer)
    lists.end(KEY, future, Entry(seq, began, 200, [], b"[old]"))  # finishing later, it does not replace the newer
    assert lists.get(KEY, "duty") is newer
    assert future.done() and future2.done() and not lists.inflight


async def test_a_failed_computation_releases_its_waiters_and_keeps_nothing() -> None:
    lists, _ = cache()
    _, _, future = lists.begin(KEY)
    lists.end(KEY, future, None)
    assert future.result() is None and lists.get(KEY, "duty") is None and not lists.inflight


async def test_the_cache_is_bounded() -> None:
    lists, _ = cache()
    for i in range(600):
        await compute(lists, ("/api/alarms", f"limit={i}".encode(), None))
    assert len(lists.entries) == 512 and lists.bytes == 512 * 2
    assert lists.get(("/api/alarms", b"limit=599", None), "duty") is not None
    assert lists.get(("/api/alarms", b"limit=0", None), "duty") is None  # the oldest went first
    await compute(lists, body=b"x" * (32 * 1024 * 1024))  # larger than a quarter of the budget: not kept
    assert lists.get(KEY, "duty") is None


async def test_off_until_subscribed_and_nothing_kept_from_before_a_lost_subscription(
    redis_server: EmbeddedRedis, keys: Keys
) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    lists = ListCache(30)
    assert not lists.enabled
    following = asyncio.create_task(lists.follow(redis, keys.alarm_live))
    try:
        await wait(lambda: lists.enabled, "subscribed")
        entry = await compute(lists)
        assert lists.get(KEY, "duty") is entry
        await redis.publish(keys.alarm_live, b'{"type":"raised","alarm":"a1"}')
        await wait(lambda: lists.get(KEY, "duty") is None, "the change on the alarm channel")

        entry = await compute(lists)
        seq = lists.seq
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        # the subscription is back (redis-py reconnects it, or ``follow`` subscribes again): what was kept before
        # is dropped, whatever was published while it was away
        await wait(lambda: lists.seq > seq and lists.enabled, "subscribed again")
        assert lists.get(KEY, "duty") is None and not lists.entries
        await compute(lists)
        await redis.publish(keys.alarm_live, b'{"type":"cleared","alarm":"a1"}')
        await wait(lambda: lists.get(KEY, "duty") is None, "a change after resubscribing")
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await redis.aclose()
    assert not lists.enabled


async def wait(check: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
