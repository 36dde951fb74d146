"""Uplinks: case and alarm events forwarded to external systems as signed webhooks, and to people through
notification channels (企业微信 / 钉钉 robots, SMS gateways, e-mail: ``governance.channel``).

Each configured uplink (``config.governance.Uplink``) reads the case event stream (``Keys.case_events``)
and the alarm notification log (``Keys.alarm_events``) in consumer groups of its own (``uplink-<id>``),
so every uplink sees every event whatever the others do. An event read is first put into the uplink's
durable delivery queue in Redis, then acknowledged on the source stream; a crash in between re-reads it
and the queue recognises it (same delivery id), so nothing is lost or queued twice.

Delivery: a POST of the JSON envelope ::

    {"id": "<delivery id>", "kind": "case" | "alarm", "type": "case.dispatch", "site": "<site id>",
     "occurred_at": "<ISO 8601 UTC>", "data": {...the event's fields...}}

with headers ``X-SharpEye-Delivery`` and ``Idempotency-Key`` (the delivery id: the same on every retry),
``X-SharpEye-Event`` (the type), ``X-SharpEye-Timestamp`` (unix seconds of this attempt) and
``X-SharpEye-Signature: sha256=<hex>``, the HMAC-SHA256 under the uplink's secret of
``<timestamp>.<body>``. A receiver recomputes it (``verify``), refuses timestamps further than a few
minutes from its clock (a replayed request is stale), and drops delivery ids it has seen.

Other formats render the same queued envelope as a text message (``governance.channel``). Which events an uplink
queues is filtered when they are read (types, departments, minimum severity); when a message may go is decided
when it is due: quiet hours hold it until they end, and the per-minute rate (counted in Redis, shared by every
node) holds it until the next minute, neither costing an attempt.

Any 2xx answer (for robots, ``errcode`` 0) is success. Anything else (connection refused, timeout, 4xx,
5xx) is retried with exponential backoff (``backoff_s`` doubling up to ``backoff_max_s``); after
``max_attempts`` the event
goes to the uplink's dead-letter hash, from where ``replay`` puts it back into the queue. Several hub
nodes may run uplinks at once: a due delivery is claimed with a lease (``_CLAIM``), so one node sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.exceptions import ResponseError
from sharpeye.alarms.notification import claimed_entries, consume
from sharpeye.config.governance import Uplink
from sharpeye.governance.channel import DELIVERY, EVENT, SIGNATURE, TIMESTAMP, Attempt, hold_until, send, sign, wanted
from sharpeye.governance.push import PushService

from sharpeye.clock import Clock
from sharpeye.keys import Keys
from sharpeye.redis_connection import stop_if_cancelled

log = logging.getLogger(__name__)

__all__ = ["DELIVERY", "EVENT", "SIGNATURE", "TIMESTAMP", "Attempt", "UplinkService", "sign", "verify"]
DONE_KEPT_S = 7 * 86400  # delivered ids remembered this long (a re-read source entry is not sent again)


# --- keys of this module, as functions of Keys ---------------------------------------------------------
def group(uplink_id: str) -> str:
    return f"uplink-{uplink_id}"


def queue_key(keys: Keys, uplink_id: str, part: str) -> str:
    """``events`` (hash id → body), ``due`` (zset id → next attempt), ``attempts`` (hash), ``done`` (zset
    id → delivered at), ``dead`` (hash id → dead letter JSON)."""
    return keys.uplink(uplink_id, part)


# --- signing -----------------------------------------------------------------------------------------
def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance_s: float = 300) -> str | None:
    """What a receiver checks: None if the request is authentic and fresh, else the reason to refuse it."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP.lower(), "")
    given = lowered.get(SIGNATURE.lower(), "")
    if not stamp.isdigit():
        return "missing or malformed timestamp"
    if abs(now - int(stamp)) > tolerance_s:
        return "stale timestamp (replayed or clock skew)"
    if not hmac.compare_digest(given, sign(secret, int(stamp), body)):
        return "bad signature"
    return None


# --- envelopes ---------------------------------------------------------------------------------------
def case_envelope(
    entry_id: str, fields: dict[str, str], site: str, case: dict[str, Any] | None = None
) -> tuple[str, bytes]:
    """The delivery id and body of a case event (``CaseService`` payload: case_id, action, from, to, ...),
    with the case's summary as it is when the event is queued. The id comes from the stream entry id,
    itself the outbox row id: stable across re-reads."""
    delivery = f"case-{entry_id}"
    body = {"id": delivery, "kind": "case", "type": f"case.{fields.get('action', '')}", "site": site,
            "occurred_at": fields.get("at", ""), "data": fields, "case": case}  # fmt: skip
    return delivery, orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def alarm_envelope(fields: dict[str, str], site: str, alarm: dict[str, Any] | None = None) -> tuple[str, bytes]:
    """The delivery id (a digest of the notification's fields: a re-read gives the same id) and body, with the
    alarm's summary as it is when the event is queued."""
    digest = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    delivery = f"alarm-{digest}"
    at = fields.get("at", "")
    if at.replace(".", "", 1).isdigit():  # the notification log stores epoch seconds
        at = datetime.fromtimestamp(float(at), UTC).isoformat()
    body = {"id": delivery, "kind": "alarm", "type": f"alarm.{fields.get('type', '')}", "site": site,
            "occurred_at": at, "data": fields, "alarm": alarm}  # fmt: skip
    return delivery, orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


# --- the durable queue -------------------------------------------------------------------------------
_ENQUEUE = """
-- KEYS: events, due, done, dead; ARGV: id, body, now
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('ZSCORE', KEYS[3], ARGV[1])
   or redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

_CLAIM = """
-- KEYS: due, events, attempts; ARGV: now, lease_until, limit. Returns id, body, attempts triples.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  table.insert(out, id)
  table.insert(out, redis.call('HGET', KEYS[2], id) or '')
  table.insert(out, redis.call('HGET', KEYS[3], id) or '0')
end
return out
"""


class DeadLetter(BaseModel):
    id: str = Field(description="Delivery id (the idempotency key).")
    attempts: int = Field(description="Attempts made.")
    error: str = Field(description="The last attempt's failure.")
    dead_at: datetime = Field(description="When it was given up (UTC).")
    body: dict[str, Any] = Field(description="The envelope that was being delivered.")


class UplinkState(BaseModel):
    id: str
    format: str = Field(description="webhook, wecom, dingtalk, sms, email or webpush.")
    url: str
    events: list[str]
    pending: int = Field(description="Events waiting for delivery (including retries).")
    dead: int = Field(description="Dead letters.")
    delivered_recently: int = Field(description="Deliveries remembered (the last 7 days).")


CaseLookup = Callable[[str], Awaitable[Any]]  # case id -> governance.case.Case | None
AlarmLookup = Callable[[str], Awaitable[Any]]  # alarm id -> alarms.alarm.Alarm | None
# (case id, what was sent, through which channel, delivery id) -> None: a notification reached people
Delivered = Callable[[str, str, Uplink, str], Awaitable[Any]]

# The case fields a webhook carries (no free text beyond the title: receivers fetch details by API).
SUMMARY = ("id", "title", "category", "severity", "source", "stage", "org_unit", "department", "level",
           "created_at", "due_at", "closed_at", "light", "location", "merged_into", "assists")  # fmt: skip
ALARM_SUMMARY = ("id", "title", "severity", "category", "state", "device_id", "channel", "org_unit", "place",
                 "first_seen", "last_seen", "count", "incident")  # fmt: skip


class UplinkService:
    """Runs every configured uplink (``run``) and manages their queues (``states``, ``dead_letters``,
    ``replay``). Construct it with the hub's Redis, keys and clock; ``run`` forever in a task."""

    def __init__(
        self,
        uplinks: list[Uplink],
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        *,
        site_id: str,
        consumer: str,
        poll_s: float = 0.5,
        batch: int = 50,
        concurrency: int = 8,
        case_lookup: CaseLookup | None = None,
        alarm_lookup: AlarmLookup | None = None,
        timezone: str = "Asia/Shanghai",
        on_delivered: Delivered | None = None,
        push: PushService | None = None,
    ) -> None:
        self.uplinks = {u.id: u for u in uplinks}
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.site_id = site_id
        self.consumer = consumer
        self.poll_s = poll_s
        self.batch = batch
        self.case_lookup = case_lookup
        self.alarm_lookup = alarm_lookup
        self.on_delivered = on_delivered
        self.push = push  # Web Push: the VAPID key and the browsers' subscriptions (webpush uplinks)
        self.zone = ZoneInfo(timezone)
        self._slots = asyncio.Semaphore(concurrency)
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._wake: dict[str, asyncio.Event] = {}
        self.attempts = 0  # delivery attempts made by this process (for tests and metrics)
        self.failures = 0
        self.held = 0  # deliveries put off by quiet hours or the rate limit
        self.filtered = 0  # events an uplink's filters left out

    def _k(self, uplink_id: str, part: str) -> str:
        return queue_key(self.keys, uplink_id, part)

    def _now(self) -> float:
        return self.clock.now().timestamp()

    # --- feeding -----------------------------------------------------------------------------------
    async def ensure_groups(self) -> None:
        """Consumer groups for every uplink on both streams, starting at the streams' ends (a new uplink
        receives events from now on, not the history)."""
        for uplink in self.uplinks.values():
            for stream in (self.keys.case_events, self.keys.alarm_events):
                try:
                    await self.redis.xgroup_create(stream, group(uplink.id), id="$", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    async def enqueue(self, uplink: Uplink, delivery: str, body: bytes, *, filtered: bool = True) -> bool:
        """Queue one event for delivery; False if it is already queued, delivered or dead, or the uplink's filters
        (types, departments, severity) leave it out. ``filtered=False``: no filter applies (hub-to-hub messages are
        numbered: leaving one out would stop the receiver at the gap)."""
        if filtered and not wanted(uplink, orjson.loads(body)):
            self.filtered += 1
            return False
        u = uplink.id
        keys = [self._k(u, "events"), self._k(u, "due"), self._k(u, "done"), self._k(u, "dead")]
        added = bool(await self._enqueue(keys=keys, args=[delivery, body, self._now()]))
        if added and u in self._wake:
            self._wake[u].set()
        return added

    async def _feed_alarms(self, uplink: Uplink) -> None:
        async def handle(events: list[dict[str, str]]) -> None:
            for fields in events:
                delivery, body = alarm_envelope(fields, self.site_id, await self._alarm_summary(fields.get("alarm")))
                await self.enqueue(uplink, delivery, body)

        await consume(self.redis, self.keys, group(uplink.id), self.consumer, handle, block_ms=int(self.poll_s * 1000))

    async def _feed_cases(self, uplink: Uplink, abandoned_after_ms: int = 60_000) -> None:
        """The case event stream, read like ``alarms.notification.consume`` (own backlog first, then entries
        abandoned by dead consumers, then new ones), with entry ids kept for the delivery ids."""
        stream, grp = self.keys.case_events, group(uplink.id)
        backlog = True
        while True:
            stop_if_cancelled()  # a cancel swallowed inside redis-py (see sharpeye.redis_connection)
            try:
                if backlog:
                    own = await self.redis.xreadgroup(grp, self.consumer, {stream: "0"}, count=100)
                    entries = [e for _, items in own for e in items]
                    backlog = bool(entries)
                else:
                    entries = claimed_entries(
                        await self.redis.xautoclaim(stream, grp, self.consumer, abandoned_after_ms, "0-0", count=100)
                    )
                    if not entries:
                        fresh = await self.redis.xreadgroup(
                            grp, self.consumer, {stream: ">"}, count=100, block=int(self.poll_s * 1000)
                        )
                        entries = [e for _, items in fresh for e in items]
                for entry_id, fields in entries:
                    if fields:
                        decoded = {k.decode(): v.decode() for k, v in fields.items()}
                        if "case" in uplink.events:
                            summary = await self._summary(decoded.get("case_id", ""))
                            delivery, body = case_envelope(entry_id.decode(), decoded, self.site_id, summary)
                            await self.enqueue(uplink, delivery, body)
                if entries:
                    await self.redis.xack(stream, grp, *[entry_id for entry_id, _ in entries])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("uplink %s: reading case events failed; retrying", uplink.id)
                await asyncio.sleep(1)

    async def _alarm_summary(self, alarm_id: str | None) -> dict[str, Any] | None:
        if self.alarm_lookup is None or not alarm_id:
            return None
        alarm = await self.alarm_lookup(alarm_id)
        if alarm is None:
            return None
        dumped: dict[str, Any] = alarm.model_dump(mode="json", include=set(ALARM_SUMMARY))
        return dumped

    async def _summary(self, case_id: str) -> dict[str, Any] | None:
        if self.case_lookup is None or not case_id:
            return None
        case = await self.case_lookup(case_id)
        if case is None:
            return None
        dumped: dict[str, Any] = case.model_dump(mode="json", include=set(SUMMARY))
        return dumped

    # --- delivering --------------------------------------------------------------------------------
    def backoff(self, uplink: Uplink, attempts: int) -> float:
        """Delay after the ``attempts``-th failed attempt: backoff_s, doubling, at most backoff_max_s."""
        return float(min(uplink.backoff_s * 2 ** min(attempts - 1, 40), uplink.backoff_max_s))

    async def post(self, client: httpx.AsyncClient, uplink: Uplink, delivery: str, body: bytes) -> Attempt:
        """One attempt in the uplink's format (``governance.channel.send``)."""
        return await send(client, uplink, delivery, body, self.clock.now(), self.zone, self.push)

    async def _may_send(self, uplink: Uplink, body: bytes) -> float | None:
        """None: send now. Else the time to try again: the end of the uplink's quiet hours, or the next minute
        when this minute's messages (counted in Redis for every node) have reached the uplink's rate."""
        now = self.clock.now()
        held = hold_until(uplink, orjson.loads(body), now, self.zone)
        if held is not None:
            return held.timestamp()
        rate = uplink.rate
        if rate is None:
            return None
        minute = math.floor(now.timestamp() / 60)
        key = self._k(uplink.id, f"rate:{minute}")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        if int(count) <= rate:
            return None
        await self.redis.decr(key)
        return float((minute + 1) * 60)

    async def deliver_due(self, client: httpx.AsyncClient, uplink: Uplink) -> int:
        """Claim due deliveries of one uplink and attempt them; returns how many were attempted."""
        u = uplink.id
        now = self._now()
        raw = await self._claim(
            keys=[self._k(u, "due"), self._k(u, "events"), self._k(u, "attempts")],
            args=[now, now + uplink.timeout_s + 2, self.batch],
        )
        triples = [(raw[i].decode(), raw[i + 1], int(raw[i + 2])) for i in range(0, len(raw), 3)]

        async def one(delivery: str, body: bytes, before: int) -> None:
            if not body:  # replayed or delivered by another node meanwhile
                await self.redis.zrem(self._k(u, "due"), delivery)
                return
            later = await self._may_send(uplink, body)
            if later is not None:
                self.held += 1
                await self.redis.zadd(self._k(u, "due"), {delivery: later})
                return
            async with self._slots:
                result = await self.post(client, uplink, delivery, body)
            self.attempts += 1
            await self._settle(uplink, delivery, body, before + 1, result)
            if result.ok and uplink.format != "webhook" and self.on_delivered is not None:
                envelope = orjson.loads(body)
                case_id = (envelope.get("case") or {}).get("id") or (envelope.get("data") or {}).get("case_id")
                if envelope.get("kind") == "case" and case_id:
                    try:
                        await self.on_delivered(case_id, str(envelope.get("type", "")), uplink, delivery)
                    except Exception:  # the message went out; its line in the history is not worth a resend
                        log.warning("uplink %s: recording delivery %s in case %s failed", u, delivery, case_id,
                                    exc_info=True)  # fmt: skip

        await asyncio.gather(*(one(d, b, n) for d, b, n in triples))
        return len(triples)

    async def _settle(self, uplink: Uplink, delivery: str, body: bytes, attempts: int, result: Attempt) -> None:
        u = uplink.id
        now = self._now()
        async with self.redis.pipeline(transaction=True) as pipe:
            if result.ok:
                pipe.hdel(self._k(u, "events"), delivery)
                pipe.hdel(self._k(u, "attempts"), delivery)
                pipe.zrem(self._k(u, "due"), delivery)
                pipe.zadd(self._k(u, "done"), {delivery: now})
                pipe.zremrangebyscore(self._k(u, "done"), "-inf", now - DONE_KEPT_S)
            elif attempts >= uplink.max_attempts:
                self.failures += 1
                letter = {"id": delivery, "attempts": attempts, "error": result.error, "dead_at": now,
                          "body": orjson.loads(body)}  # fmt: skip
                pipe.hset(self._k(u, "dead"), delivery, orjson.dumps(letter))
                pipe.hdel(self._k(u, "events"), delivery)
                pipe.hdel(self._k(u, "attempts"), delivery)
                pipe.zrem(self._k(u, "due"), delivery)
                log.warning("uplink %s: %s dead after %d attempts: %s", u, delivery, attempts, result.error)
            else:
                self.failures += 1
                pipe.hset(self._k(u, "attempts"), delivery, attempts)
                pipe.zadd(self._k(u, "due"), {delivery: now + self.backoff(uplink, attempts)})
            await pipe.execute()

    async def _send_loop(self, uplink: Uplink) -> None:
        wake = self._wake.setdefault(uplink.id, asyncio.Event())
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                try:
                    wake.clear()
                    if await self.deliver_due(client, uplink) >= self.batch:
                        continue  # more may be due
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("uplink %s: delivery round failed; retrying", uplink.id)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await wake.wait()

    async def run(self) -> None:
        """Feed and deliver every uplink until cancelled."""
        if not self.uplinks:
            return
        await self.ensure_groups()
        tasks = []
        for uplink in self.uplinks.values():
            tasks.append(self._feed_cases(uplink))
            if "alarm" in uplink.events:
                tasks.append(self._feed_alarms(uplink))
            tasks.append(self._send_loop(uplink))
        await asyncio.gather(*tasks)

    # --- operating ---------------------------------------------------------------------------------
    async def states(self) -> list[UplinkState]:
        out = []
        for u in self.uplinks.values():
            out.append(
                UplinkState(
                    id=u.id,
                    format=u.format,
                    url=u.endpoint,
                    events=list(u.events),
                    pending=int(await self.redis.hlen(self._k(u.id, "events"))),
                    dead=int(await self.redis.hlen(self._k(u.id, "dead"))),
                    delivered_recently=int(await self.redis.zcard(self._k(u.id, "done"))),
                )
            )
        return out

    async def dead_letters(self, uplink_id: str, limit: int = 100) -> list[DeadLetter]:
        raw = await self.redis.hgetall(self._k(uplink_id, "dead"))
        letters = []
        for value in raw.values():
            item = orjson.loads(value)
            item["dead_at"] = datetime.fromtimestamp(item["dead_at"], UTC)
            letters.append(DeadLetter.model_validate(item))
        letters.sort(key=lambda d: (d.dead_at, d.id))
        return letters[:limit]

    async def replay(self, uplink_id: str, ids: list[str] | None = None) -> int:
        """Put dead letters (these, or all) back into the delivery queue with a fresh attempt count."""
        dead = self._k(uplink_id, "dead")
        chosen = ids if ids is not None else [k.decode() for k in await self.redis.hkeys(dead)]
        count = 0
        now = self._now()
        for delivery in chosen:
            value = await self.redis.hget(dead, delivery)
            if value is None:
                continue
            body = orjson.dumps(orjson.loads(value)["body"], option=orjson.OPT_SORT_KEYS)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._k(uplink_id, "events"), delivery, body)
                pipe.hdel(self._k(uplink_id, "attempts"), delivery)
                pipe.zadd(self._k(uplink_id, "due"), {delivery: now})
                pipe.hdel(dead, delivery)
                await pipe.execute()
            count += 1
        if count and uplink_id in self._wake:
            self._wake[uplink_id].set()
        log.info("uplink %s: %d dead letter(s) replayed", uplink_id, count)
        return count
