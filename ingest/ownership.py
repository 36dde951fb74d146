"""Which hub node owns which device: leases in Redis with a short time-to-live and a fencing token.

Several hub nodes share one Redis. Every ``period_s`` each node

1. announces itself (id, start time, last seen, weight, load, the units it owns) under a key that expires
   after ``ttl_s``: a node whose record is gone is dead;
2. reads the live nodes and the current owner of every unit, and computes the same deterministic ``plan``
   every other node computes from the same facts;
3. claims (acquires, or renews) the units the plan gives it and releases those the plan gives another node.

A *unit* is what one node owns: a camera (opened, decoded and analysed by its owner only), or a role that
exists once per site (``role:mqtt-reader``: the node that reads the broker; ``role:gb28181``: the node that
holds the site's SIP signalling). A lease is ``<lease key> = "<token> <node>"`` with a TTL; the token comes
from a per-unit counter that only grows, so a node paused past its lease and woken again holds a value that no
longer matches: the alarm script compares the batch's fence with the lease before applying anything
(``alarms/script.lua``), and refuses the whole batch when it differs.

``plan`` is pure: it keeps a unit where it is while its owner is alive and not above its fair share (so a
node joining moves only what it must), then gives every other unit to the node with the most room, relative
to its weight. The Redis side is one Lua script (claim, release) run atomically per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

ROLE_PREFIX = "role:"
ROLE_MQTT = "role:mqtt-reader"
ROLE_GB28181 = "role:gb28181"
CAMERA_ANALYSED = 10.0
"""Weight of a camera whose picture is analysed (zones, tripwires): decoding at 5 fps plus analytics."""
CAMERA_WATCHED = 2.0
"""Weight of a camera opened for loss and tamper checks and evidence only (and pulled on demand by viewers)."""

_SCRIPT = """
-- KEYS = lease1, counter1, lease2, counter2, ...; ARGV = op, node, ttl_ms
-- claim: take a free lease (a new token) or renew our own; answer the lease value, or '' when another
-- node holds it. release: delete our own lease; answer 1 when it was ours.
local op, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS, 2 do
  local lease, counter = KEYS[i], KEYS[i + 1]
  local cur = redis.call('GET', lease)
  local owner = cur and string.match(cur, '^%d+ (.*)$')
  if op == 'claim' then
    if not cur then
      local token = redis.call('INCR', counter)
      local value = token .. ' ' .. node
      redis.call('SET', lease, value, 'PX', ttl)
      out[#out + 1] = value
    elseif owner == node then
      redis.call('PEXPIRE', lease, ttl)
      out[#out + 1] = cur
    else
      out[#out + 1] = ''
    end
  else
    if owner == node then
      redis.call('DEL', lease)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
"""


class NodeInfo(msgspec.Struct, kw_only=True):
    """A node's announcement, as ``GET /api/cluster`` shows it."""

    id: str
    started_at: float
    last_seen: float
    weight: float
    load: float
    devices: list[str] = msgspec.field(default_factory=list)
    inventory_version: int = 0


_encode = msgspec.json.Encoder().encode
_decode_node = msgspec.json.Decoder(NodeInfo).decode


def _score(unit: str, node: str) -> int:
    """Rendezvous order of ``node`` for ``unit``: a stable tie-break, the same on every node."""
    return int.from_bytes(hashlib.blake2b(f"{unit}\0{node}".encode(), digest_size=8).digest(), "big")


def plan(units: Mapping[str, float], nodes: Mapping[str, float], owners: Mapping[str, str]) -> dict[str, str]:
    """The node each unit should belong to.

    ``units``: unit -> weight (> 0); ``nodes``: live node -> weight (its share of the work, > 0); ``owners``:
    unit -> its current owner (absent or a dead node: free). A unit stays with its live owner (roles first: moving
    the MQTT reader or the SIP signalling interrupts more than moving a camera) while the owner stays within its
    fair share plus half the heaviest unit (so two nodes with an odd count do not trade
    a unit back and forth); the rest go, heaviest first, to the node whose load after taking it is the
    smallest relative to its weight. Deterministic: every node computes the same plan from the same facts.
    """
    if not nodes or not units:
        return {}
    total = sum(units.values())
    capacity = sum(nodes.values())
    target = {n: total * w / capacity for n, w in nodes.items()}
    slack = max(units.values()) / 2
    load = dict.fromkeys(nodes, 0.0)
    out: dict[str, str] = {}
    order = sorted(units, key=lambda u: (-units[u], u))
    for unit in sorted(order, key=lambda u: not u.startswith(ROLE_PREFIX)):  # a role is the costliest to move
        owner = owners.get(unit)
        if owner is not None and owner in nodes and load[owner] + units[unit] <= target[owner] + slack + 1e-9:
            out[unit] = owner
            load[owner] += units[unit]
    for unit in order:
        if unit in out:
            continue
        w = units[unit]
        best = min(nodes, key=lambda n: ((load[n] + w) / nodes[n], -_score(unit, n)))
        out[unit] = best
        load[best] += w
    return out


@dataclass
class Change:
    """What one round changed for this node: units gained (with their lease value) and units lost."""

    gained: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)


Units = Callable[[], Mapping[str, float]]
OnChange = Callable[[Change], Awaitable[None]]
OnDead = Callable[[list[str]], Awaitable[None]]

ABANDONED_IDLE_MS = 10**9
"""Idle time given to a dead node's pending stream entries: past every consumer's claim threshold."""


async def abandon_pending(redis: aioredis.Redis, streams: Sequence[str], consumer: str) -> int:
    """Mark the entries ``consumer`` (a dead node) had read and not acknowledged, in every consumer group of
    ``streams``, as idle for a very long time, so that the next ``XAUTOCLAIM`` of any live consumer takes them at
    once instead of after the group's claim timeout (60 s for the alarm notification log). Nothing is moved or
    lost: the entries stay pending until a live consumer acknowledges them. Returns how many were marked."""
    marked = 0
    for stream in streams:
        try:
            groups = await redis.xinfo_groups(stream)
        except aioredis.ResponseError:  # no such stream yet
            continue
        for group in groups:
            name = group["name"]
            while True:
                pending = await redis.xpending_range(stream, name, "-", "+", 500, consumername=consumer)
                ids = [p["message_id"] for p in pending]
                if not ids:
                    break
                await redis.xclaim(stream, name, consumer, 0, ids, idle=ABANDONED_IDLE_MS, justid=True)
                marked += len(ids)
                if len(ids) < 500:
                    break
    return marked


class Ownership:
    """One node's side of the leases: announce, plan, claim and release, every ``period_s``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        node_id: str,
        units: Units,
        *,
        weight: float = 1.0,
        ttl_s: float = 5.0,
        period_s: float = 1.0,
        on_change: OnChange | None = None,
        observe: Callable[[float], None] | None = None,
        count: Callable[[str, int], None] | None = None,
        on_dead: OnDead | None = None,
    ) -> None:
        if ttl_s <= period_s:
            raise ValueError(f"lease ttl_s ({ttl_s}) must be longer than the renewal period ({period_s})")
        self.redis = redis
        self.keys = keys
        self.node_id = node_id
        self.units = units
        self.weight = weight
        self.ttl_s = ttl_s
        self.period_s = period_s
        self.on_change = on_change
        self._observe = observe
        self._count = count
        self.on_dead = on_dead
        self.started_at = time.time()
        self.owned: dict[str, str] = {}
        self.load = 0.0
        self.last_error: str | None = None
        self.last_round: float = 0.0
        self._sha: str | None = None
        self._wake = asyncio.Event()
        self.inventory_version: Callable[[], int] = lambda: 0  # announced, so nodes can see they agree

    def poke(self) -> None:
        """Run the next round now, not at the end of the period (the units changed: an inventory change)."""
        self._wake.set()

    # --- fences -----------------------------------------------------------------------------------
    def owns(self, unit: str) -> bool:
        return unit in self.owned

    def fence(self, unit: str) -> tuple[str, str] | None:
        """The lease key and the value this node holds for ``unit``, for the alarm script to compare."""
        value = self.owned.get(unit)
        return (self.keys.device_lease(unit), value) if value is not None else None

    # --- Redis ------------------------------------------------------------------------------------
    async def _script(self, op: str, units: Sequence[str]) -> list[object]:
        if not units:
            return []
        keys: list[str] = []
        for unit in units:
            keys += [self.keys.device_lease(unit), self.keys.device_lease_token(unit)]
        if self._sha is None:
            self._sha = str(await self.redis.script_load(_SCRIPT))
        ttl_ms = int(self.ttl_s * 1000)
        try:
            return list(await self.redis.evalsha(self._sha, len(keys), *keys, op, self.node_id, ttl_ms))
        except NoScriptError:  # Redis restarted (scripts are not kept): run it in full, load it again next time
            self._sha = None
            return list(await self.redis.eval(_SCRIPT, len(keys), *keys, op, self.node_id, ttl_ms))

    async def nodes(self) -> list[NodeInfo]:
        """Every live node's announcement (a node whose record expired is dead and is dropped)."""
        ids = sorted(m.decode() for m in await self.redis.smembers(self.keys.nodes))
        if not ids:
            return []
        raw = await self.redis.mget([self.keys.node(i) for i in ids])
        out: list[NodeInfo] = []
        dead: list[str] = []
        for node_id, body in zip(ids, raw, strict=True):
            if body is None:
                dead.append(node_id)
                continue
            try:
                out.append(_decode_node(body))
            except msgspec.ValidationError:
                log.warning("node record %s is not valid; ignored", node_id)
        if dead:
            gone = await self.redis.srem(self.keys.nodes, *dead)
            if gone and self.on_dead is not None:  # the node that removed them (one, by SREM) acts for the others
                await self.on_dead(dead)
        return out

    async def owners(self, units: Sequence[str]) -> dict[str, str]:
        if not units:
            return {}
        raw = await self.redis.mget([self.keys.device_lease(u) for u in units])
        out: dict[str, str] = {}
        for unit, value in zip(units, raw, strict=True):
            if value is not None:
                out[unit] = value.decode().partition(" ")[2]
        return out

    async def _announce(self) -> None:
        now = time.time()
        info = NodeInfo(id=self.node_id, started_at=self.started_at, last_seen=now, weight=self.weight,
                        load=self.load, devices=sorted(self.owned),
                        inventory_version=self.inventory_version())  # fmt: skip
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.node(self.node_id), _encode(info), px=int(self.ttl_s * 1000))
        pipe.sadd(self.keys.nodes, self.node_id)
        await pipe.execute()

    # --- one round --------------------------------------------------------------------------------
    async def round(self) -> Change:
        """Announce, plan, claim and release once; open and close what changed (``on_change``); report it."""
        change = await self.exchange()
        await self._notify(change)
        return change

    async def _notify(self, change: Change) -> None:
        if (change.gained or change.lost) and self.on_change is not None:
            await self.on_change(change)

    async def exchange(self) -> Change:
        """The Redis part of a round (announce, plan, claim, release): what changed, not yet acted on."""
        begun = time.perf_counter()
        units = dict(self.units())
        await self._announce()
        live = {n.id: n.weight for n in await self.nodes()}
        live.setdefault(self.node_id, self.weight)
        names = sorted(units)
        current = await self.owners(names)
        wanted = plan(units, live, current)
        mine = [u for u in names if wanted.get(u) == self.node_id]
        give = [u for u in names if current.get(u) == self.node_id and wanted.get(u) != self.node_id]
        claimed = await self._script("claim", mine)
        released = await self._script("release", give)
        change = Change()
        held: dict[str, str] = {}
        for unit, value in zip(mine, claimed, strict=True):
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text:
                held[unit] = text
                if self.owned.get(unit) != text:
                    change.gained[unit] = text
        for unit in self.owned:
            if unit not in held:
                change.lost.append(unit)
        self.owned = held
        self.load = sum(units.get(u, 0.0) for u in held)
        self.last_round = time.time()
        self.last_error = None
        if self._observe is not None:
            self._observe(time.perf_counter() - begun)
        if self._count is not None:
            if change.gained:
                self._count("gained", len(change.gained))
            if change.lost:
                self._count("lost", len(change.lost))
            if any(released):
                self._count("released", sum(1 for r in released if r))
        if change.gained or change.lost:
            log.info("node %s: gained %s, lost %s", self.node_id, sorted(change.gained), sorted(change.lost))
        return change

    async def run(self) -> None:
        """Rounds every ``period_s`` until cancelled. A round that fails (Redis away) keeps nothing it cannot
        renew: once a lease's TTL has passed since the last good round, this node gives its units up."""
        while True:
            self._wake.clear()  # a poke while this round runs makes the next one start at once
            try:
                # only the Redis part is bounded: opening or closing a camera may take longer, and must not be cut
                async with asyncio.timeout(self.ttl_s / 2):
                    change = await self.exchange()
                await self._notify(change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("lease round failed: %s", self.last_error)
                if self.owned and time.time() - self.last_round > self.ttl_s:
                    change = Change(lost=list(self.owned))
                    self.owned = {}
                    if self.on_change is not None:
                        await self.on_change(change)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.period_s):
                    await self._wake.wait()

    async def release_all(self) -> None:
        """Give every unit back at once (a clean stop), so the others take them without waiting for TTLs."""
        units, self.owned = list(self.owned), {}
        await self._script("release", units)
        await self.redis.delete(self.keys.node(self.node_id))
        await self.redis.srem(self.keys.nodes, self.node_id)
