"""Department work queues: one Redis Stream per department with a consumer group of handlers.

Entries carry case ids and are written only by the outbox relay, with the outbox row id as the entry
id (``<row id>-0``): a relay that crashed after XADD but before marking the row sent re-sends the same
id, which Redis refuses as not newer, so an entry is never queued twice. A handler claims entries
with XREADGROUP; entries a handler claimed and abandoned return with XAUTOCLAIM after ``idle_ms``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sharpeye.alarms.notification import claimed_entries
from sharpeye.governance.store import Database, OutboxRow
from sqlalchemy import select, update

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

GROUP = "handlers"


@dataclass(frozen=True, slots=True)
class QueueEntry:
    entry_id: str
    case_id: str
    department: str


class CaseQueue:
    def __init__(self, redis: aioredis.Redis, keys: Keys, db: Database) -> None:
        self.redis = redis
        self.keys = keys
        self.db = db

    async def ensure_group(self, department: str) -> None:
        try:
            await self.redis.xgroup_create(self.keys.case_queue(department), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def relay(self, now: datetime, limit: int = 500) -> int:
        """Copy unsent outbox rows to their streams; return how many were relayed."""
        async with self.db.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxRow).where(OutboxRow.sent_at.is_(None)).order_by(OutboxRow.id).limit(limit)
                )
            ).all()
            if not rows:
                return 0
            for row in rows:
                department = str(row.payload.get("department", ""))
                if department:
                    await self.ensure_group(department)
                fields = {k: str(v) for k, v in row.payload.items()}
                try:
                    await self.redis.xadd(row.stream, fields, id=f"{row.id}-0")
                except ResponseError as exc:
                    if "equal or smaller" not in str(exc):
                        raise
                    log.info("outbox row %d was already relayed", row.id)
            await session.execute(update(OutboxRow).where(OutboxRow.id.in_([r.id for r in rows])).values(sent_at=now))
            await session.commit()
            return len(rows)

    async def claim(self, department: str, handler: str, count: int = 10, idle_ms: int = 300_000) -> list[QueueEntry]:
        """Entries for ``handler``: first abandoned ones (idle over ``idle_ms``), then new ones."""
        await self.ensure_group(department)
        stream = self.keys.case_queue(department)
        entries = claimed_entries(await self.redis.xautoclaim(stream, GROUP, handler, idle_ms, "0-0", count=count))
        if len(entries) < count:
            fresh = await self.redis.xreadgroup(GROUP, handler, {stream: ">"}, count=count - len(entries))
            for _, items in fresh:
                entries.extend(items)
        return [QueueEntry(eid.decode(), fields[b"case_id"].decode(), department) for eid, fields in entries if fields]

    async def done(self, entry: QueueEntry) -> None:
        await self.redis.xack(self.keys.case_queue(entry.department), GROUP, entry.entry_id)

    async def depth(self, department: str) -> tuple[int, int]:
        """(entries waiting for a first delivery, entries claimed but not done)."""
        stream = self.keys.case_queue(department)
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return 0, 0
        for group in groups:
            if group["name"] in (GROUP, GROUP.encode()):
                lag = group.get("lag")
                return int(lag or 0), int(group["pending"])
        return 0, 0
