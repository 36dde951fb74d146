"""Hubs above hubs (综治 levels: village/town → district → city): a lower hub escalates chosen cases to the hub
above it, with their updates, photos and closure; the upper hub's actions on them come back down.

Both directions ride on the signed uplinks (``governance.uplink``): an uplink with ``events: [hub]`` is fed only
by this module, and keeps its durable queue, retries, dead letters and HMAC signatures. A message is an uplink
envelope of kind ``hub`` ::

    {"id": "hub-<dir>-<link>-<seq>", "kind": "hub", "type": "hub.escalate" | "hub.update" | "hub.photo" |
     "hub.close" | "hub.action", "site": "<sender's site>", "occurred_at": "...",
     "data": {"link": "<lower site>:<lower case id>", "seq": n, ...}}

**Order.** Each link (one escalated case) and direction has its own sequence. A message's number is taken from
what it stands for (a case event's stream entry id, a photo id) through a script that gives the same number to
the same source, so a message re-read after a crash gets its old number and its old delivery id, and the uplink
queue recognises it. The messages of a hub are numbered by one feeder at a time (a lease), in the order of the
case event stream. The uplink may deliver them out of order (concurrent sends, retries): the receiver applies
message n only after n-1; a later one is held in Redis and applied when the gap closes.

**Once.** The receiver remembers the last number applied per link: a duplicate (a retry whose answer was lost,
a replayed dead letter) is answered 200 and ignored. Each application is itself idempotent (a history line
carries its delivery id; a photo its id; the upper case is found by its link), so a crash between applying
and recording the number repeats nothing. A per-link lock keeps two nodes of the receiving hub from applying
at once (the loser answers 409 and the sender retries).

**Counting.** The upper hub opens one case per link, in the org unit configured for that lower hub
(``LowerHub.org_unit``): its statistics count the escalated case once, however often it is delivered, updated
or escalated again.

**Closure.** When the lower case closes (结案, or is cancelled or merged), the upper case is closed on the record
(``closed_below``: the work was done below, so the upper hub's flow is not walked through).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import ResponseError
from sharpeye.config.governance import Governance, Uplink
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, GeoPoint, Source, Stage
from sharpeye.governance.case_record import CaseNotFound, extra_of, indicator_columns, to_case
from sharpeye.governance.flow import Actor, TransitionError
from sharpeye.governance.photo import EXTENSIONS, PhotoRejected, Upload, check_async
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import CaseEventRow, CasePhotoRow, CaseRow, OutboxRow
from sharpeye.governance.uplink import UplinkService, verify
from sqlalchemy import func, select, update

from sharpeye.keys import Keys
from sharpeye.redis_connection import stop_if_cancelled
from sharpeye.role import Role

log = logging.getLogger(__name__)

HUB_ACTOR = "hub:"  # actors of what another hub did: never sent back where it came from
FEEDER = "feeder"  # the one consumer name of the feed (its pending entries pass to the next lease holder)
GROUP = "hierarchy"
HELD_MAX = 1000  # messages held per link while an earlier one is missing
LOCK_S = 30.0
LEASE_S = 10.0

Op = Literal["escalate", "update", "photo", "close", "action"]
UP_OPS = frozenset({"escalate", "update", "photo", "close"})


class HubData(BaseModel):
    """What every hub message carries (the rest of ``data`` depends on the operation)."""

    link: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{1,64}$")
    seq: int = Field(ge=1)


class HubEnvelope(BaseModel):
    id: str = Field(min_length=1, max_length=300)
    kind: Literal["hub"]
    type: str
    site: str = Field(min_length=1, max_length=64)
    occurred_at: str = ""
    data: dict[str, Any]

    @property
    def op(self) -> str:
        return self.type.removeprefix("hub.")


class EscalatedCase(BaseModel):
    """A case of this hub sent up (``GET /api/hierarchy``)."""

    case_id: str
    at: datetime
    by: str
    reason: str
    sent: bool = Field(description="Its first message is queued for the upper hub.")
    upper_case: str | None = Field(default=None, description="The upper hub's case, once it has acted.")
    upper_stage: str | None = None
    closed: bool = False


class LinkedCase(BaseModel):
    """A case of this hub opened for a lower hub's escalation."""

    case_id: str
    site: str
    lower_case: str


class HierarchyState(BaseModel):
    upper: str | None = Field(description="The uplink to the upper hub, if any.")
    lowers: list[str] = Field(description="Sites of the lower hubs taken.")
    escalated: list[EscalatedCase]
    linked: list[LinkedCase]
    held: int = Field(description="Messages received early, waiting for an earlier one.")


class Received(BaseModel):
    status: Literal["applied", "duplicate", "held"]
    applied: int = Field(default=0, description="Messages applied by this delivery (it and the held ones it freed).")


class HubRefused(Exception):
    """A delivery refused: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# Same source -> same number; a new source -> the next number of its link and direction.
_NUMBER = """
-- KEYS: counters, numbers; ARGV: counter field, source field
local n = redis.call('HGET', KEYS[2], ARGV[2])
if n then return tonumber(n) end
n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], ARGV[2], n)
return n
"""


def _text(value: Any, limit: int = 4000) -> str:
    return str(value if value is not None else "")[:limit]


class HierarchyService:
    """Both halves: the lower's (``escalate``, the feed up) and the upper's (taking escalations, the feed down);
    a middle hub runs both. ``receive`` takes a delivery of the other hub; ``run`` feeds the uplinks."""

    def __init__(
        self,
        governance: Governance,
        site_id: str,
        cases: CaseService,
        uplinks: UplinkService,
        redis: aioredis.Redis,
        keys: Keys,
        photo_root: Path,
        *,
        node_id: str,
        poll_s: float = 0.5,
        count: Callable[[str, str], None] | None = None,
        relay: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.config = governance.hierarchy
        self.limits = governance.reports
        self.site_id = site_id
        self.cases = cases
        self.uplinks = uplinks
        self.redis = redis
        self.keys = keys
        self.photo_root = photo_root
        self.node_id = node_id
        self.poll_s = poll_s
        self.count = count or (lambda direction, outcome: None)
        self.relay = relay  # copies outbox rows to their streams now (else the hub's housekeeping does, within 10 s)
        by_id = {u.id: u for u in governance.uplinks}
        self.upper: Uplink | None = by_id[self.config.upper.uplink] if self.config.upper is not None else None
        self.lowers = {lower.site: lower for lower in self.config.lowers}
        self.lower_uplinks = {lower.site: by_id[lower.uplink] for lower in self.config.lowers}
        for lower in self.config.lowers:
            if lower.org_unit not in cases.dispatcher.units:
                raise ValueError(f"hierarchy lower {lower.site!r}: no org unit {lower.org_unit!r} in this site")
        self._number = redis.register_script(_NUMBER)

    @property
    def enabled(self) -> bool:
        return self.upper is not None or bool(self.lowers)

    def _k(self, part: str) -> str:
        return self.keys.hierarchy(part)

    # --- the lower hub: escalating --------------------------------------------------------------------------
    async def escalate(self, case_id: str, actor: Actor, reason: str) -> EscalatedCase:
        """Send a case of this hub to the upper hub (上报上级): a history line and a case event now; the feed
        sends the case, then its updates, photos and closure."""
        if self.upper is None:
            raise TransitionError("escalate_up", "this hub has no upper hub (governance.hierarchy.upper)")
        case = await self.cases.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        if case.stage.terminal:
            raise TransitionError("escalate_up", f"case {case_id} is {case.stage}: nothing to escalate")
        now = self.cases.clock.now()
        record = EscalatedCase(case_id=case_id, at=now, by=actor.id, reason=reason, sent=False)
        if not await self.redis.hsetnx(self._k("escalated"), case_id, record.model_dump_json()):
            raise TransitionError("escalate_up", f"case {case_id} is already escalated")
        try:
            payload = {"case_id": case_id, "action": "escalate_up", "actor": actor.id, "from": case.stage.value,
                       "to": case.stage.value, "at": now.isoformat(), "reason": reason}  # fmt: skip
            async with self.cases.db.sessions() as session:
                session.add(CaseEventRow(case_id=case_id, at=now, action="escalate_up", actor=actor.id,
                                         from_stage=case.stage.value, to_stage=case.stage.value,
                                         note=f"上报上级: {reason}"))  # fmt: skip
                session.add(OutboxRow(stream=self.keys.case_events, payload=payload, created_at=now))
                await session.commit()
        except BaseException:
            await self.redis.hdel(self._k("escalated"), case_id)
            raise
        self.count("up", "escalated")
        await self._relay()
        return record

    async def _relay(self) -> None:
        if self.relay is not None:
            try:
                await self.relay()
            except Exception:  # the hub's housekeeping relays it later
                log.warning("hierarchy: relaying the case event now failed", exc_info=True)

    async def _escalated(self, case_id: str) -> EscalatedCase | None:
        raw = await self.redis.hget(self._k("escalated"), case_id)
        return EscalatedCase.model_validate_json(raw) if raw else None

    async def _save(self, record: EscalatedCase) -> None:
        await self.redis.hset(self._k("escalated"), record.case_id, record.model_dump_json())

    # --- sending ---------------------------------------------------------------------------------------------
    async def _send(self, uplink: Uplink, direction: str, link: str, source: str, op: Op, data: dict[str, Any]) -> int:
        seq = int(await self._number(keys=[self._k("counters"), self._k("numbers")],
                                     args=[f"{direction}|{link}", f"{direction}|{link}|{source}"]))  # fmt: skip
        delivery = f"hub-{direction}-{link}-{seq}"
        at = self.cases.clock.now().isoformat()
        body = {"id": delivery, "kind": "hub", "type": f"hub.{op}", "site": self.site_id, "occurred_at": at,
                "data": {**data, "link": link, "seq": seq}}  # fmt: skip
        await self.uplinks.enqueue(uplink, delivery, orjson.dumps(body, option=orjson.OPT_SORT_KEYS), filtered=False)
        self.count(direction, f"sent_{op}")
        return seq

    async def _feed_entry(self, entry_id: str, fields: dict[str, str]) -> None:
        case_id = fields.get("case_id", "")
        actor = fields.get("actor", "")
        if not case_id or actor.startswith(HUB_ACTOR):
            return  # another hub's doing, applied here: it is not sent back
        if self._overdue_at_top(fields):
            reason = f"督办 {_text(fields.get('step'), 64)}: 本级已无上级部门，超期上报上级"
            with contextlib.suppress(TransitionError, CaseNotFound):  # escalated already, or finished meanwhile
                await self.escalate(case_id, Actor("system:sla", Role.supervisor), reason)
        if self.upper is not None:
            record = await self._escalated(case_id)
            if record is not None and not record.closed:
                await self._feed_up(self.upper, record, entry_id, fields)
        origin = await self.redis.hget(self._k("origin"), case_id)
        if origin is not None:
            link = origin.decode()
            uplink = self.lower_uplinks.get(link.split(":", 1)[0])
            if uplink is not None:
                case = await self.cases.get(case_id)
                data = {"upper_case": case_id, "action": fields.get("action", ""), "actor": actor,
                        "from": fields.get("from", ""), "to": fields.get("to", ""), "at": fields.get("at", ""),
                        "department": (case.department if case else None) or "",
                        "light": str(case.light) if case and case.light else ""}  # fmt: skip
                await self._send(uplink, "down", link, f"event:{entry_id}", "action", data)

    def _overdue_at_top(self, fields: Mapping[str, str]) -> bool:
        """A supervision step for the level above fired, and this hub has none above the case's department."""
        upper = self.config.upper
        return (upper is not None and upper.escalate_overdue and fields.get("action") == "supervise"
                and fields.get("notify") == "level_above" and fields.get("target") == "centre")  # fmt: skip

    async def _feed_up(self, uplink: Uplink, record: EscalatedCase, entry_id: str, fields: dict[str, str]) -> None:
        link = f"{self.site_id}:{record.case_id}"
        action = fields.get("action", "")
        if action == "escalate_up":
            case = await self.cases.get(record.case_id)
            if case is None:
                return
            snapshot = case.model_dump(
                mode="json",
                include={
                    "id",
                    "title",
                    "category",
                    "severity",
                    "source",
                    "stage",
                    "description",
                    "location",
                    "created_at",
                    "org_unit",
                },
            )
            await self._send(uplink, "up", link, f"event:{entry_id}", "escalate",
                             {"case": snapshot, "reason": record.reason, "actor": record.by})  # fmt: skip
            if not record.sent:
                await self._save(record.model_copy(update={"sent": True}))
            return
        if not record.sent:
            return  # an event of the case before its escalation entry was read: the snapshot has it
        data = {"action": action, "actor": fields.get("actor", ""), "from": fields.get("from", ""),
                "to": fields.get("to", ""), "at": fields.get("at", ""),
                "reason": _text(fields.get("reason"), 500)}  # fmt: skip
        to = fields.get("to", "")
        if to in (Stage.closed, Stage.cancelled, Stage.merged):
            await self._send(uplink, "up", link, f"event:{entry_id}", "close", data)
            await self._save(record.model_copy(update={"closed": True}))
        else:
            await self._send(uplink, "up", link, f"event:{entry_id}", "update", data)

    async def _feed_photos(self) -> None:
        """Photos of escalated open cases not yet sent (photos are not case events: they are looked for)."""
        if self.upper is None:
            return
        raw = await self.redis.hgetall(self._k("escalated"))
        active = {k.decode(): EscalatedCase.model_validate_json(v) for k, v in raw.items()}
        active = {k: r for k, r in active.items() if r.sent and not r.closed}
        if not active:
            return
        async with self.cases.db.sessions() as session:
            rows = (
                await session.scalars(
                    select(CasePhotoRow).where(CasePhotoRow.case_id.in_(list(active))).order_by(CasePhotoRow.created_at)
                )
            ).all()
        for row in rows:
            link = f"{self.site_id}:{row.case_id}"
            if await self.redis.hexists(self._k("numbers"), f"up|{link}|photo:{row.id}"):
                continue
            path = self.photo_root / row.case_id / f"{row.id}.{EXTENSIONS.get(row.media_type, 'jpg')}"
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError:
                log.warning("hierarchy: photo %s of case %s is missing on disk; not sent", row.id, row.case_id)
                continue
            await self._send(self.upper, "up", link, f"photo:{row.id}", "photo",
                             {"photo_id": row.id, "media_type": row.media_type, "filename": row.filename,
                              "actor": row.actor, "sha256": row.sha256,
                              "bytes": base64.b64encode(data).decode()})  # fmt: skip

    async def _hold_lease(self) -> bool:
        key = self._k("feeder")
        mine = await self.redis.get(key)
        if mine is not None and mine.decode() == self.node_id:
            await self.redis.pexpire(key, int(LEASE_S * 1000))
            return True
        return bool(await self.redis.set(key, self.node_id, nx=True, px=int(LEASE_S * 1000)))

    async def run(self) -> None:
        """Feed the hub uplinks from the case event stream (one node at a time: whoever holds the lease)."""
        if not self.enabled:
            return
        stream = self.keys.case_events
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self.redis.xgroup_create(stream, GROUP, id="$", mkstream=True)
        backlog = True
        while True:
            stop_if_cancelled()  # a cancel swallowed inside redis-py (see sharpeye.redis_connection)
            try:
                if not await self._hold_lease():
                    backlog = True
                    await asyncio.sleep(LEASE_S / 4)
                    continue
                await self._relay()  # case actions taken through the API reach the stream now, not within 10 s
                got = await self.redis.xreadgroup(GROUP, FEEDER, {stream: "0" if backlog else ">"}, count=100,
                                                  block=None if backlog else int(self.poll_s * 1000))  # fmt: skip
                entries = [e for _, items in got for e in items]
                if backlog and not entries:
                    backlog = False
                for entry_id, fields in entries:
                    decoded = {k.decode(): v.decode() for k, v in fields.items()}
                    await self._feed_entry(entry_id.decode(), decoded)
                    await self.redis.xack(stream, GROUP, entry_id)
                await self._feed_photos()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hierarchy: feeding the hub uplinks failed; retrying")
                await asyncio.sleep(1)

    # --- receiving -------------------------------------------------------------------------------------------
    def _secret_for(self, envelope: HubEnvelope) -> tuple[str, str]:
        """(direction, secret) of a delivery: actions come from the upper hub, the rest from a lower one."""
        if envelope.op == "action":
            if self.upper is None or self.upper.secret is None:
                raise HubRefused(403, "this hub has no upper hub")
            return "down", self.upper.secret.get_secret_value()
        if envelope.op not in UP_OPS:
            raise HubRefused(422, f"unknown hub message type {envelope.type!r}")
        uplink = self.lower_uplinks.get(envelope.site)
        if uplink is None or uplink.secret is None:
            raise HubRefused(403, f"site {envelope.site!r} is not a lower hub of this one")
        return "up", uplink.secret.get_secret_value()

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Received:
        """A delivery of another hub: checked (shape, signature, freshness, who may send it), then applied in
        order, once. Raises HubRefused with the status to answer."""
        try:
            envelope = HubEnvelope.model_validate_json(body)
            data = HubData.model_validate(envelope.data)
        except ValidationError as exc:
            self.count("in", "invalid")
            raise HubRefused(422, f"not a hub message: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
        direction, secret = self._secret_for(envelope)
        refused = verify(secret, headers, body, self.cases.clock.now().timestamp())
        if refused is not None:
            self.count("in", "bad_signature")
            raise HubRefused(401, refused)
        site = data.link.split(":", 1)[0]
        if site != (envelope.site if direction == "up" else self.site_id):
            self.count("in", "invalid")
            raise HubRefused(403, f"site {envelope.site!r} may not send about link {data.link!r}")
        key = f"{direction}|{data.link}"
        lock = self._k(f"lock:{key}")
        token = uuid.uuid4().hex
        if not await self.redis.set(lock, token, nx=True, px=int(LOCK_S * 1000)):
            self.count("in", "busy")
            raise HubRefused(409, "another delivery of this case is being applied; retry")
        try:
            return await self._in_order(key, envelope, data, body)
        finally:
            if (await self.redis.get(lock) or b"").decode() == token:
                await self.redis.delete(lock)

    async def _in_order(self, key: str, envelope: HubEnvelope, data: HubData, body: bytes) -> Received:
        applied = int(await self.redis.hget(self._k("applied"), key) or 0)
        if data.seq <= applied:
            self.count("in", "duplicate")
            return Received(status="duplicate")
        held = self._k(f"held:{key}")
        if data.seq > applied + 1:
            if await self.redis.hlen(held) >= HELD_MAX:
                raise HubRefused(429, f"{HELD_MAX} messages of {data.link} wait for number {applied + 1}")
            await self.redis.hset(held, str(data.seq), body)
            self.count("in", "held")
            return Received(status="held")
        count = 0
        current: HubEnvelope | None = envelope
        while current is not None:
            await self._apply(current)
            applied += 1
            count += 1
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._k("applied"), key, applied)
                pipe.hdel(held, str(applied))
                await pipe.execute()
            self.count("in", f"applied_{current.op}")
            nxt = await self.redis.hget(held, str(applied + 1))
            current = HubEnvelope.model_validate_json(nxt) if nxt is not None else None
        return Received(status="applied", applied=count)

    async def _apply(self, envelope: HubEnvelope) -> None:
        data = envelope.data
        site, case_id = str(data["link"]).split(":", 1)
        op = envelope.op
        if op == "action":
            await self._apply_action(envelope, case_id)
            return
        if op == "escalate":
            await self._open_upper(envelope, site, case_id)
            return
        upper = await self.redis.hget(self._k("links"), f"{site}:{case_id}")
        if upper is None:  # numbered after its escalation, so this means the escalation failed to apply
            raise HubRefused(409, f"no case here for {site}:{case_id}")
        upper_id = upper.decode()
        actor = f"{HUB_ACTOR}{site}"
        marker = f"#{envelope.id}"
        if op == "update":
            step = f"{_text(data.get('from'), 16)}→{_text(data.get('to'), 16)}"
            note = f"下级 {site} {_text(data.get('action'), 40)}: {step}"
            if data.get("reason"):
                note += f" ({_text(data.get('reason'), 500)})"
            await self._line(upper_id, "lower_update", actor, f"{note} {marker}", marker)
        elif op == "photo":
            await self._store_photo(upper_id, site, data)
        elif op == "close":
            await self._close_upper(upper_id, actor, f"下级 {site} 办结 ({_text(data.get('to'), 16)}) {marker}")

    async def _open_upper(self, envelope: HubEnvelope, site: str, lower_case: str) -> None:
        link = f"{site}:{lower_case}"
        existing = await self.redis.hget(self._k("links"), link)
        if existing is not None:  # escalated again (or a repeat): the same case, a line in its history
            marker = f"#{envelope.id}"
            reason = _text(envelope.data.get("reason"), 500)
            await self._line(existing.decode(), "lower_update", f"{HUB_ACTOR}{site}", f"下级 {site} 再次上报: {reason} "
                             f"{marker}", marker)  # fmt: skip
            return
        try:
            snapshot = envelope.data["case"]
            location = snapshot.get("location")
            title = _text(snapshot["title"], 200)
            category = _text(snapshot["category"], 100)
            severity = Severity(snapshot["severity"])
            source = Source(snapshot.get("source", "grid_worker"))
            point = GeoPoint.model_validate(location) if location else None
        except (KeyError, TypeError, ValueError) as exc:
            raise HubRefused(422, f"escalation of {link}: bad case snapshot ({exc})") from exc
        reason = _text(envelope.data.get("reason"), 500)
        tag = f"[{link}]"  # ends the description: finds the case again after a crash before its link was recorded
        description = (f"{_text(snapshot.get('description'), 3000)}\n\n下级 {site} 案件 {lower_case} 上报上级"
                       f"（{_text(envelope.data.get('actor'), 100)}）: {reason} {tag}").strip()  # fmt: skip
        lower = self.lowers[site]
        async with self.cases.db.sessions() as session:
            found = await session.scalar(
                select(CaseRow.id).where(
                    CaseRow.org_unit == lower.org_unit, CaseRow.description.endswith(tag, autoescape=True)
                )
            )
        if found is None:
            case = await self.cases.report(
                title=title, category=category, severity=severity, source=source, org_unit=lower.org_unit,
                actor=Actor(f"{HUB_ACTOR}{site}", Role.operator), description=description, location=point,
            )  # fmt: skip
            found = case.id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("links"), link, found)
            pipe.hset(self._k("origin"), found, link)
            await pipe.execute()
        log.info("hierarchy: %s escalated by %s opened as %s", lower_case, site, found)

    async def _line(self, case_id: str, action: str, actor: str, note: str, marker: str) -> bool:
        """A history line (no case event: nothing is sent back), once per marker."""
        async with self.cases.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            if row is None:
                return False
            seen = await session.scalar(
                select(func.count())
                .select_from(CaseEventRow)
                .where(CaseEventRow.case_id == case_id, CaseEventRow.note.endswith(marker))
            )
            if seen:
                return False
            session.add(CaseEventRow(case_id=case_id, at=self.cases.clock.now(), action=action, actor=actor,
                                     from_stage=row.stage, to_stage=row.stage, note=note))  # fmt: skip
            await session.commit()
            return True

    async def _store_photo(self, case_id: str, site: str, data: Mapping[str, Any]) -> None:
        photo_id = hashlib.sha256(f"{site}:{data.get('photo_id')}".encode()).hexdigest()[:32]
        async with self.cases.db.sessions() as session:
            if await session.get(CasePhotoRow, photo_id) is not None:
                return
        try:
            content = base64.b64decode(str(data.get("bytes", "")), validate=True)
            name = _text(data.get("filename"), 200) or "photo"
            voice = str(data.get("media_type", "")).startswith("audio/")
            upload = Upload(name, content, "voice") if voice else Upload(name, content)
            (media,) = await check_async([upload], self.limits)
        except (ValueError, PhotoRejected) as exc:
            raise HubRefused(422, f"photo of {site}: {exc}") from exc
        if data.get("sha256") and hashlib.sha256(content).hexdigest() != data["sha256"]:
            raise HubRefused(422, f"photo of {site}: bytes do not match their SHA-256")
        target = self.photo_root / case_id / f"{photo_id}.{EXTENSIONS[media]}"
        await asyncio.to_thread(_write, target, content)
        async with self.cases.db.sessions() as session:
            session.add(CasePhotoRow(id=photo_id, case_id=case_id, media_type=media, size=len(content),
                                     sha256=hashlib.sha256(content).hexdigest(),
                                     filename=_text(data.get("filename"), 200) or "photo",
                                     actor=f"{HUB_ACTOR}{site}:{_text(data.get('actor'), 60)}",
                                     created_at=self.cases.clock.now()))  # fmt: skip
            await session.commit()

    async def _close_upper(self, case_id: str, actor: str, note: str) -> None:
        """Close the upper case on the record (the lower hub did the work); nothing if it is finished already."""
        now = self.cases.clock.now()
        async with self.cases.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            if row is None:
                return
            case = to_case(row)
            if case.stage.terminal:
                return
            new = case.model_copy(update={"stage": Stage.closed, "closed_at": now, "updated_at": now,
                                          "extension_pending": False})  # fmt: skip
            result = await session.execute(
                update(CaseRow)
                .where(CaseRow.id == case_id, CaseRow.updated_at == case.updated_at)
                .values(
                    stage=new.stage.value, closed_at=now, updated_at=now, extra=extra_of(new), **indicator_columns(new)
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 1) != 1:
                await session.rollback()
                raise HubRefused(409, f"case {case_id} changed while it was closed; retry")
            session.add(CaseEventRow(case_id=case_id, at=now, action="closed_below", actor=actor,
                                     from_stage=case.stage.value, to_stage=Stage.closed.value, note=note))  # fmt: skip
            payload = {"case_id": case_id, "action": "closed_below", "actor": actor, "from": case.stage.value,
                       "to": Stage.closed.value, "at": now.isoformat()}  # fmt: skip
            session.add(OutboxRow(stream=self.keys.case_events, payload=payload, created_at=now))
            await session.commit()
        await self.cases.supervise(new)
        await self._relay()

    async def _apply_action(self, envelope: HubEnvelope, case_id: str) -> None:
        record = await self._escalated(case_id)
        if record is None:
            raise HubRefused(404, f"case {case_id} was not escalated from this hub")
        data = envelope.data
        marker = f"#{envelope.id}"
        action = _text(data.get("action"), 40)
        note = f"上级 {envelope.site} {action}: {_text(data.get('from'), 16)}→{_text(data.get('to'), 16)}"
        if data.get("department"):
            note += f" [{_text(data.get('department'), 64)}]"
        await self._line(case_id, "upper_action", f"{HUB_ACTOR}{envelope.site}", f"{note} {marker}", marker)
        await self._save(record.model_copy(update={"upper_case": _text(data.get("upper_case"), 64) or None,
                                                   "upper_stage": _text(data.get("to"), 16) or None}))  # fmt: skip

    # --- reading ---------------------------------------------------------------------------------------------
    async def state(self) -> HierarchyState:
        raw = await self.redis.hgetall(self._k("escalated"))
        escalated = [EscalatedCase.model_validate_json(v) for v in raw.values()]
        linked = []
        for link, upper in (await self.redis.hgetall(self._k("links"))).items():
            site, lower_case = link.decode().split(":", 1)
            linked.append(LinkedCase(case_id=upper.decode(), site=site, lower_case=lower_case))
        held = 0
        async for key in self.redis.scan_iter(match=self._k("held:*"), count=500):
            held += int(await self.redis.hlen(key))
        return HierarchyState(
            upper=self.upper.id if self.upper is not None else None, lowers=sorted(self.lowers),
            escalated=sorted(escalated, key=lambda r: r.at), linked=sorted(linked, key=lambda r: r.case_id),
            held=held,
        )  # fmt: skip

    async def upper_case_of(self, site: str, lower_case: str) -> Case | None:
        upper = await self.redis.hget(self._k("links"), f"{site}:{lower_case}")
        return await self.cases.get(upper.decode()) if upper is not None else None


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(data)
    part.replace(target)
