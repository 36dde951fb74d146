"""Supervision (督办): reminders to the handler, then the centre, then escalation to the level above.

Each open case has a plan: its configured steps with the instant each one falls due on the case's SLA
clock. The case id sits in the sorted set ``Keys.sla_deadlines`` scored by its next step's time, so a
sweep reads only what is due (``ZRANGEBYSCORE … LIMIT``): its cost depends on how many steps fall due,
not on how many cases are open.

One Lua script fires a due step, records it (an entry in the firing stream and a ``fired:<step>`` mark
in the plan) and moves the case to its next step's time, all at once: a sweeper that dies, a Redis that
restarts, or two sweepers running together can neither lose a firing nor record it twice. Reminders are
sent from the firing stream through a consumer group (``Notifier``); each carries a stable idempotency
key (case, step, generation) so a receiver can drop a repeat after a crash between send and ack.

Keys of this module (beside ``Keys.sla_deadlines``) are defined here as functions of a ``Keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from sharpeye.config.governance import EscalationStep
from sharpeye.governance.case import Case
from sharpeye.governance.sla import SlaPolicy

from sharpeye.clock import Clock
from sharpeye.keys import Keys
from sharpeye.redis_connection import stop_if_cancelled

log = logging.getLogger(__name__)


def plan_key(keys: Keys, case_id: str) -> str:
    """Hash: a case's supervision plan (steps, next index, generation, fired marks)."""
    return keys.sla_plan(case_id)


def plan_prefix(keys: Keys) -> str:
    return keys.sla_plan()


def firing_stream(keys: Keys) -> str:
    """Stream: every fired supervision step, once (the 督办 record, and the notifier's work queue)."""
    return keys.sla_fired


NOTIFIER_GROUP = "notifier"

# KEYS: deadlines, firing stream. ARGV: now (epoch s), batch size, plan key prefix.
_SWEEP = """
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local fired = 0
for _, id in ipairs(due) do
  local plan = ARGV[3] .. id
  local raw = redis.call('HGET', plan, 'steps')
  if not raw then
    redis.call('ZREM', KEYS[1], id)
  else
    local steps = cjson.decode(raw)
    local nxt = tonumber(redis.call('HGET', plan, 'next') or '0')
    local gen = redis.call('HGET', plan, 'gen') or '0'
    while nxt < #steps and tonumber(steps[nxt + 1][2]) <= now do
      local s = steps[nxt + 1]
      redis.call('XADD', KEYS[2], '*', 'case', id, 'step', s[1], 'due', s[2], 'notify', s[3],
                 'target', s[4], 'gen', gen, 'at', ARGV[1])
      redis.call('HSET', plan, 'fired:' .. s[1], ARGV[1])
      nxt = nxt + 1
      fired = fired + 1
    end
    redis.call('HSET', plan, 'next', nxt)
    if nxt < #steps then
      redis.call('ZADD', KEYS[1], steps[nxt + 1][2], id)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return fired
"""

# KEYS: deadlines, plan. ARGV: case id, steps JSON, reset ('1'), clock id (the dispatch time).
# A new clock (a new dispatch) or an explicit reset starts a new generation at step 0; otherwise steps
# already fired keep their place, so a rescheduled clock (after a pause) never repeats a reminder.
_PLAN = """
local steps = cjson.decode(ARGV[2])
local nxt = tonumber(redis.call('HGET', KEYS[2], 'next') or '0')
if ARGV[3] == '1' or redis.call('HGET', KEYS[2], 'clock') ~= ARGV[4] then
  local gen = redis.call('HINCRBY', KEYS[2], 'gen', 1)
  local old = redis.call('HKEYS', KEYS[2])
  for _, f in ipairs(old) do
    if string.sub(f, 1, 6) == 'fired:' then redis.call('HDEL', KEYS[2], f) end
  end
  nxt = 0
end
redis.call('HSET', KEYS[2], 'steps', ARGV[2], 'next', nxt, 'clock', ARGV[4])
if nxt < #steps then
  redis.call('ZADD', KEYS[1], steps[nxt + 1][2], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return nxt
"""


@dataclass(frozen=True, slots=True)
class Firing:
    """One fired step, as recorded in the firing stream."""

    entry_id: str
    case_id: str
    step: str
    notify: str
    target: str
    due: float
    at: float
    generation: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.case_id}:{self.generation}:{self.step}"

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Firing:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        return cls(
            entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            case_id=f["case"],
            step=f["step"],
            notify=f["notify"],
            target=f["target"],
            due=float(f["due"]),
            at=float(f["at"]),
            generation=f["gen"],
        )


class Supervision:
    """Plans and sweeps supervision steps for open cases."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        sla: SlaPolicy,
        steps: Sequence[EscalationStep],
        batch: int = 500,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.sla = sla
        self.steps = list(steps)
        self.batch = batch
        self._sweep = redis.register_script(_SWEEP)
        self._plan = redis.register_script(_PLAN)

    def plan_for(self, case: Case, level_above: str | None) -> list[tuple[str, float, str, str]]:
        """(step id, due epoch, notify, target) per step, in time order; empty if the clock does not run."""
        out: list[tuple[str, float, str, str]] = []
        for step in self.steps:
            when = self.sla.at_share(case, step.share, step.after_hours * 3600)
            if when is None:
                return []
            target = {"handler": case.department or "", "centre": "centre", "level_above": level_above or "centre"}[
                step.notify
            ]
            # Whole milliseconds, rounded up: exact in Lua's 14-digit numbers, and never early.
            out.append((step.id, math.ceil(when.timestamp() * 1000) / 1000, step.notify, target))
        out.sort(key=lambda s: s[1])
        return out

    async def schedule(self, case: Case, level_above: str | None = None, *, reset: bool = False) -> int:
        """(Re)plan a case's steps: at dispatch and when a pause ends. A new dispatch time (reassignment)
        or ``reset`` starts the steps over under a new generation. Returns the index of the next step."""
        steps = self.plan_for(case, level_above)
        if not steps:
            await self.pause(case.id)
            return 0
        result = await self._plan(
            keys=[self.keys.sla_deadlines, plan_key(self.keys, case.id)],
            args=[case.id, orjson.dumps(steps), "1" if reset else "0", _clock_id(case)],
        )
        return int(result)

    async def pause(self, case_id: str) -> None:
        """Stop chasing a case while its clock is paused; its plan and fired marks stay."""
        await self.redis.zrem(self.keys.sla_deadlines, case_id)

    async def finish(self, case_id: str) -> None:
        """The case left the clocked stages (closed, returned, parked): forget its plan."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.sla_deadlines, case_id)
            pipe.delete(plan_key(self.keys, case_id))
            await pipe.execute()

    async def sweep(self, now: datetime) -> int:
        """Fire every step due at ``now``; returns how many fired. Repeats while a batch comes back full."""
        total = 0
        while True:
            fired = int(
                await self._sweep(
                    keys=[self.keys.sla_deadlines, firing_stream(self.keys)],
                    args=[now.astimezone(UTC).timestamp(), self.batch, plan_prefix(self.keys)],
                )
            )
            total += fired
            if fired < self.batch:
                return total

    async def run(self, clock: Clock, interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set (or the task is cancelled); a Redis
        outage or restart is logged and retried."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                fired = await self.sweep(clock.now())
                if fired:
                    log.info("supervision: %d step(s) fired", fired)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("supervision sweep failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

    async def fired(self, case_id: str) -> dict[str, datetime]:
        """Steps fired for a case in its current generation, with when they fired."""
        raw: Any = await self.redis.hgetall(plan_key(self.keys, case_id))
        out: dict[str, datetime] = {}
        for k, v in raw.items():
            name = k.decode()
            if name.startswith("fired:"):
                out[name[6:]] = datetime.fromtimestamp(float(v), UTC)
        return out


def _clock_id(case: Case) -> str:
    return case.dispatched_at.isoformat() if case.dispatched_at is not None else ""


Deliver = Callable[[Firing], Awaitable[object]]


class Notifier:
    """Sends reminders from the firing stream through a consumer group; a crashed notifier's pending
    entries are claimed by the next one (``XAUTOCLAIM``) after ``min_idle_ms``."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, consumer: str, deliver: Deliver, min_idle_ms: int = 30_000
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.deliver = deliver
        self.min_idle_ms = min_idle_ms

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(firing_stream(self.keys), NOTIFIER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int = 100, block_ms: int | None = None) -> list[Firing]:
        """New entries for this consumer (they stay pending until ``ack``)."""
        reply: Any = await self.redis.xreadgroup(
            NOTIFIER_GROUP, self.consumer, {firing_stream(self.keys): ">"}, count=count, block=block_ms
        )
        out: list[Firing] = []
        for _stream, entries in reply or []:
            out.extend(Firing.from_entry(eid, fields) for eid, fields in entries)
        return out

    async def reclaim(self, count: int = 100) -> list[Firing]:
        """Entries another consumer read and never acknowledged, idle for at least ``min_idle_ms``."""
        reply: Any = await self.redis.xautoclaim(
            firing_stream(self.keys), NOTIFIER_GROUP, self.consumer, self.min_idle_ms, start_id="0-0", count=count
        )
        return [Firing.from_entry(eid, fields) for eid, fields in reply[1] if fields]

    async def ack(self, firings: Sequence[Firing]) -> None:
        if firings:
            await self.redis.xack(firing_stream(self.keys), NOTIFIER_GROUP, *[f.entry_id for f in firings])

    async def run(self, block_ms: int = 1000, stop: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set (within ``block_ms``); a Redis outage is logged and retried."""
        stop = stop or asyncio.Event()
        await self.ensure_group()
        while not stop.is_set():
            stop_if_cancelled()  # a cancel the Redis client swallowed still stops the notifier
            try:
                if not await self.run_once():
                    await self.read_wait(block_ms)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("notifier failed (%s); retrying", exc)
                await asyncio.sleep(1)

    async def read_wait(self, block_ms: int) -> None:
        """Block until the firing stream has entries after the last one seen (or ``block_ms`` passes)."""
        await self.redis.xread({firing_stream(self.keys): "$"}, count=1, block=block_ms)

    async def run_once(self, count: int = 100) -> int:
        """Deliver reclaimed then new reminders, acknowledging each after it is delivered."""
        batch = await self.reclaim(count) + await self.read(count)
        for firing in batch:
            await self.deliver(firing)
            await self.ack([firing])
        return len(batch)
