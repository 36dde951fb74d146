"""The audit log kept for good: entries of the Redis audit stream (``sharpeye.audit``) archived into the SQL record,
append-only and hash-chained.

The archiver reads the stream in a consumer group of its own and appends each entry as a row whose ``hash`` is the
SHA-256 of the previous row's hash and the entry's canonical JSON; the first row chains from ``GENESIS``. The
previous hash is unique, so two nodes archiving at once cannot fork the chain: the loser of a race retries on the
new end. Re-reading an entry after a crash finds its stream id and does nothing. The database refuses UPDATE and
DELETE on the table (migration 0006), and ``verify`` walks the chain and names the first row that does not fit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from sharpeye.governance.store import AuditRow, Database
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sharpeye.keys import Keys
from sharpeye.redis_connection import log_retry, stop_if_cancelled

log = logging.getLogger(__name__)

GROUP = "audit-archive"
GENESIS = "0" * 64


def entry_hash(prev_hash: str, stream_id: str, entry: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON (sorted keys)."""
    body = orjson.dumps({"id": stream_id, **entry}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def _content(row: AuditRow) -> dict[str, Any]:
    return {"at": row.at.isoformat(), "actor": row.actor, "action": row.action, "target": row.target,
            "origin": row.origin, "details": row.details}  # fmt: skip


@dataclass
class ChainCheck:
    rows: int
    broken_at: int | None = None  # seq of the first row that does not fit
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


class AuditArchive:
    def __init__(self, redis: aioredis.Redis, keys: Keys, db: Database, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.db = db
        self.consumer = consumer
        self.archived = 0

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.audit, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def append(self, stream_id: str, fields: dict[str, str]) -> bool:
        """Archive one stream entry at the chain's end; False if it was archived before."""
        return await self.append_many([(stream_id, fields)]) == 1

    async def append_many(self, items: list[tuple[str, dict[str, str]]]) -> int:
        """Archive stream entries, in their order, at the chain's end in one transaction (one commit for a batch:
        one entry per transaction was a commit per verdict, bench/alarm_handling.py); those archived before are
        left out. Returns how many were appended."""
        entries = []
        for stream_id, fields in items:
            at = datetime.fromisoformat(fields.get("at", ""))
            entries.append((stream_id, at, {
                "at": at.isoformat(), "actor": fields.get("actor", "")[:200], "action": fields.get("action", "")[:100],
                "target": fields.get("target", "")[:200], "origin": fields.get("origin", "")[:200],
                "details": orjson.loads(fields.get("details") or "{}")}))  # fmt: skip
        if not entries:
            return 0
        for _ in range(20):
            async with self.db.sessions() as session:
                ids = [stream_id for stream_id, _, _ in entries]
                done = set(await session.scalars(select(AuditRow.stream_id).where(AuditRow.stream_id.in_(ids))))
                last = await session.scalar(select(AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1))
                prev = last or GENESIS
                rows = []
                for stream_id, at, entry in entries:
                    if stream_id in done:
                        continue
                    digest = entry_hash(prev, stream_id, entry)
                    rows.append(AuditRow(stream_id=stream_id, at=at, actor=entry["actor"], action=entry["action"],
                                         target=entry["target"], origin=entry["origin"], details=entry["details"],
                                         prev_hash=prev, hash=digest))  # fmt: skip
                    prev = digest
                if not rows:
                    return 0
                try:
                    for row in rows:  # one by one, so that their seq follow the chain's order
                        session.add(row)
                        await session.flush()
                    await session.commit()
                    self.archived += len(rows)
                    return len(rows)
                except IntegrityError:  # another node appended first (or archived these entries): look again
                    await session.rollback()
        raise RuntimeError(f"could not append audit entries {entries[0][0]}... to the chain")

    async def run(self, block_ms: int = 1000) -> None:
        """Archive entries until cancelled: unacknowledged ones first, then new ones, acknowledged after commit."""
        await self.ensure_group()
        backlog = True
        while True:
            stop_if_cancelled()  # a cancel swallowed inside redis-py (see sharpeye.redis_connection)
            try:
                start = "0" if backlog else ">"
                got = await self.redis.xreadgroup(GROUP, self.consumer, {self.keys.audit: start}, count=200,
                                                  block=None if backlog else block_ms)  # fmt: skip
                entries = [e for _, items in got for e in items]
                if backlog and not entries:
                    backlog = False
                    continue
                batch = [(entry_id.decode(), fields) for entry_id, raw in entries
                         if (fields := {k.decode(): v.decode() for k, v in raw.items()})]  # fmt: skip
                await self.append_many(batch)
                if entries:
                    await self.redis.xack(self.keys.audit, GROUP, *[entry_id for entry_id, _ in entries])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:  # Redis restarting: say so, without a traceback
                log.warning("archiving the audit log waits for Redis (%s); retrying", exc)
                await asyncio.sleep(1)
            except Exception as exc:
                log_retry(log, "archiving the audit log", exc)
                await asyncio.sleep(1)


async def verify(db: Database, batch: int = 5000) -> ChainCheck:
    """Walk the chain in order: each row must chain from the one before and hash to what it says."""
    prev = GENESIS
    count = 0
    after = 0
    async with db.sessions() as session:
        while True:
            rows = (
                await session.scalars(select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(batch))
            ).all()
            if not rows:
                return ChainCheck(count)
            for row in rows:
                count += 1
                if row.prev_hash != prev:
                    return ChainCheck(count, row.seq, "does not chain from the row before (a row was removed)")
                if entry_hash(prev, row.stream_id, _content(row)) != row.hash:
                    return ChainCheck(count, row.seq, "its content does not match its hash (the row was changed)")
                prev = row.hash
                after = row.seq
