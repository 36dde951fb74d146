"""Case operations on the durable record: create, read, list, with history and outbox in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.site import SiteConfig
from governance.case import Case, CaseEvent, Source, Stage
from governance.store import CaseAlarmRow, CaseEventRow, CaseRow, Database, OutboxRow
from sharpeye.clock import Clock
from sharpeye.keys import Keys


@dataclass(frozen=True, slots=True)
class CaseFilter:
    stages: Sequence[Stage] = ()
    department: str | None = None
    org_units: Sequence[str] = ()
    category: str | None = None
    limit: int = 50
    offset: int = 0


def to_case(row: CaseRow) -> Case:
    return Case(
        id=row.id,
        title=row.title,
        category=row.category,
        severity=row.severity,
        source=Source(row.source),
        stage=Stage(row.stage),
        org_unit=row.org_unit,
        department=row.department,
        level=row.level,
        created_at=row.created_at,
        updated_at=row.updated_at,
        dispatched_at=row.dispatched_at,
        due_at=row.due_at,
        closed_at=row.closed_at,
        alarm_ids=list(row.alarm_ids or []),
        description=row.description,
    )


class CaseService:
    def __init__(self, site: SiteConfig, db: Database, redis: aioredis.Redis, keys: Keys, clock: Clock) -> None:
        self.site = site
        self.db = db
        self.redis = redis
        self.keys = keys
        self.clock = clock

    async def next_number(self, now: datetime) -> str:
        day = now.strftime("%Y%m%d")
        seq = await self.redis.incr(self.keys.case_sequence(day))
        return f"{self.site.site.id.upper()}-{day}-{seq:05d}"

    @staticmethod
    def add_event(session: AsyncSession, case_id: str, event: CaseEvent) -> None:
        session.add(
            CaseEventRow(
                case_id=case_id,
                at=event.at,
                action=event.action,
                actor=event.actor,
                from_stage=event.from_stage.value if event.from_stage else None,
                to_stage=event.to_stage.value,
                note=event.note,
            )
        )

    @staticmethod
    def enqueue(session: AsyncSession, stream: str, payload: dict[str, str], now: datetime) -> None:
        session.add(OutboxRow(stream=stream, payload=payload, created_at=now))

    async def case_for_alarm(self, alarm_id: str) -> str | None:
        async with self.db.sessions() as session:
            return await session.scalar(select(CaseAlarmRow.case_id).where(CaseAlarmRow.alarm_id == alarm_id))

    async def get(self, case_id: str) -> Case | None:
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            return to_case(row) if row else None

    async def history(self, case_id: str) -> list[CaseEvent]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)
            )
            return [
                CaseEvent(
                    at=r.at,
                    action=r.action,
                    actor=r.actor,
                    from_stage=Stage(r.from_stage) if r.from_stage else None,
                    to_stage=Stage(r.to_stage),
                    note=r.note,
                )
                for r in rows
            ]

    async def list(self, flt: CaseFilter) -> tuple[list[Case], int]:
        query = select(CaseRow)
        if flt.stages:
            query = query.where(CaseRow.stage.in_([s.value for s in flt.stages]))
        if flt.department:
            query = query.where(CaseRow.department == flt.department)
        if flt.org_units:
            query = query.where(CaseRow.org_unit.in_(list(flt.org_units)))
        if flt.category:
            query = query.where(CaseRow.category == flt.category)
        async with self.db.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = await session.scalars(
                query.order_by(CaseRow.created_at.desc(), CaseRow.id.desc()).limit(flt.limit).offset(flt.offset)
            )
            return [to_case(r) for r in rows], int(total)

    async def count_open(self) -> dict[str, int]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(CaseRow.stage, func.count())
                .where(CaseRow.stage.not_in([Stage.closed.value, Stage.cancelled.value]))
                .group_by(CaseRow.stage)
            )
            return {stage: int(n) for stage, n in rows.all()}
