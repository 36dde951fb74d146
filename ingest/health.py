"""Device health: last seen, message and error counts, and online/offline from heartbeat expectations.

Counts are kept in memory on the hot path and flushed to Redis (``Keys.device``) in one script call per
interval. A device silent for ``heartbeat_s * offline_after`` goes offline: the tracker emits a
``device.online`` reading with value False (a built-in rule raises the device-offline alarm), and a
reading with value True when it is heard again (which clears it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson
import redis.asyncio as aioredis
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.reading import Reading

from sharpeye.keys import Keys

State = Literal["unknown", "online", "offline"]

FLUSH_CHUNK = 1000

# KEYS[1]: the set of device ids; KEYS[i + 1]: the hash of the device in row i of ARGV[1], a JSON list of
# [id, state, last_seen, messages, errors, last_error, since] (all strings).
_FLUSH = """
local rows = cjson.decode(ARGV[1])
for i, row in ipairs(rows) do
  redis.call('HSET', KEYS[i + 1], 'state', row[2], 'last_seen', row[3], 'messages', row[4], 'errors', row[5],
             'last_error', row[6], 'since', row[7])
  redis.call('SADD', KEYS[1], row[1])
end
return #rows
"""


@dataclass
class DeviceStatus:
    state: State = "unknown"
    last_seen: float | None = None
    messages: int = 0
    errors: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.time)
    dirty: bool = True


class HealthTracker:
    def __init__(
        self, inventory: DeviceInventory, redis: aioredis.Redis, keys: Keys, now: Callable[[], float] = time.time
    ) -> None:
        self.inventory = inventory
        self.redis = redis
        self.keys = keys
        self.now = now
        self.status: dict[str, DeviceStatus] = {}
        self._started = now()
        self._write = redis.register_script(_FLUSH)

    def _get(self, device_id: str) -> DeviceStatus:
        status = self.status.get(device_id)
        if status is None:
            status = self.status[device_id] = DeviceStatus(since=self.now())
        return status

    def seen(self, device_id: str, when: float) -> Reading | None:
        """Count a good message. Returns a ``device.online`` reading if the device came back."""
        status = self._get(device_id)
        status.messages += 1
        status.last_seen = when
        status.dirty = True
        if status.state != "online":
            previous = status.state
            status.state = "online"
            status.since = when
            if previous == "offline":
                return Reading(
                    device_id=device_id, kind="device.online", value=True, ts=datetime.fromtimestamp(when, UTC)
                )
        return None

    def error(self, device_id: str, reason: str) -> None:
        status = self._get(device_id)
        status.errors += 1
        status.last_error = reason
        status.dirty = True

    def check(self) -> list[Reading]:
        """Mark silent devices offline; return their ``device.online`` False readings."""
        now = self.now()
        out: list[Reading] = []
        for device in self.inventory:
            if self.inventory.registry.get(device.kind).transport != "mqtt":
                continue  # cameras report their own video loss, GB/T 28181 devices their keepalives
            status = self._get(device.id)
            limit = device.heartbeat_s * device.offline_after
            reference = status.last_seen if status.last_seen is not None else self._started
            if status.state != "offline" and now - reference > limit:
                status.state = "offline"
                status.since = now
                status.dirty = True
                out.append(
                    Reading(device_id=device.id, kind="device.online", value=False, ts=datetime.fromtimestamp(now, UTC))
                )
        return out

    async def flush(self) -> None:
        """Write every changed device's status to Redis: one script call per ``FLUSH_CHUNK`` devices, since a
        pipeline of two commands per device costs the event loop milliseconds of packing and parsing every
        second (the MQTT hot path runs on the same loop)."""
        dirty = [(d, s) for d, s in self.status.items() if s.dirty]
        for start in range(0, len(dirty), FLUSH_CHUNK):
            chunk = dirty[start : start + FLUSH_CHUNK]
            rows = [
                [
                    device_id,
                    status.state,
                    "" if status.last_seen is None else repr(status.last_seen),
                    str(status.messages),
                    str(status.errors),
                    status.last_error,
                    repr(status.since),
                ]
                for device_id, status in chunk
            ]
            keys = [self.keys.devices, *(self.keys.device(device_id) for device_id, _ in chunk)]
            for _, status in chunk:
                status.dirty = False  # before the await: a change made meanwhile is written next time
            try:
                await self._write(keys=keys, args=[orjson.dumps(rows)])
            except BaseException:
                for _, status in chunk:
                    status.dirty = True
                raise

    def snapshot(self, device_id: str) -> DeviceStatus:
        return self.status.get(device_id) or DeviceStatus(since=self._started)


# --- consumers --------------------------------------------------------------------------------------------------
LAG_LIMIT_S = 30.0  # a consumer whose oldest waiting message is older than this is lagging
STUCK_AFTER_S = 10.0  # a consumer whose batch has kept failing this long is stuck


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """How one consumer of a queue is doing (the MQTT pipeline, a consumer group of a Redis stream, the readings
    of SIP and video): what waits for it, how old the oldest of that is, when it last got a batch through, and
    since when its current batch keeps failing."""

    name: str
    pending: int  # messages or entries waiting: received or delivered and not acknowledged, or not yet delivered
    lag_s: float  # age of the oldest of them (0 when none waits)
    last_progress: float | None = None  # time.time() when a batch was last handled (None: not since start)
    stuck_since: float | None = None  # time.time() of the current batch's first failure
    error: str | None = None  # the last failure

    def problem(self, now: float, lag_limit_s: float = LAG_LIMIT_S, stuck_after_s: float = STUCK_AFTER_S) -> str | None:
        """Why the consumer is not healthy, or None."""
        if self.stuck_since is not None and now - self.stuck_since >= stuck_after_s:
            return f"stuck for {now - self.stuck_since:.0f}s on a batch: {self.error or 'failing'}"
        if self.lag_s >= lag_limit_s:
            return f"lagging: oldest of {self.pending} waiting is {self.lag_s:.0f}s old (limit {lag_limit_s:.0f}s)"
        return None

    def describe(self, now: float) -> str:
        progress = "none since start" if self.last_progress is None else f"{now - self.last_progress:.0f}s ago"
        return f"{self.pending} waiting, oldest {self.lag_s:.1f}s; last progress {progress}"
