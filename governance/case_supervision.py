"""Supervision of cases (督办): each open case's plan of reminders and escalations kept in line with its state,
rebuilt from the record at start, and the history lines of fired steps and delivered notifications.

``CaseSupervising`` is that half of ``governance.service.CaseService``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sharpeye.config.governance import Uplink
from sharpeye.governance.case import Case, Stage
from sharpeye.governance.case_record import to_case
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.escalation import Firing, Supervision
from sharpeye.governance.store import CaseEventRow, CaseRow, Database, OutboxRow
from sqlalchemy import func, select

from sharpeye.clock import Clock
from sharpeye.keys import Keys


class CaseSupervising:
    """Keeps supervision plans in line with the cases, and writes what supervision and notification did."""

    db: Database
    keys: Keys
    clock: Clock
    supervision: Supervision
    dispatcher: Dispatcher

    async def supervise(self, case: Case) -> None:
        """Bring the case's supervision plan in line with its state."""
        if not case.stage.open:
            await self.supervision.finish(case.id)
        elif case.extension_pending:
            await self.supervision.pause(case.id)
        else:
            await self.supervision.schedule(case, self._level_above(case))

    def _level_above(self, case: Case) -> str | None:
        dept = self.dispatcher.departments.get(case.department or "")
        if dept is None:
            return None
        above = self.dispatcher.level_above(dept.unit)
        return above.id if above is not None else None

    async def resync_supervision(self, batch: int = 1000) -> int:
        """Re-plan every open case from the durable record (idempotent); returns how many were planned."""
        open_stages = [s.value for s in Stage if s.open]
        count = 0
        last = ""
        while True:
            async with self.db.sessions() as session:
                rows = (
                    await session.scalars(
                        select(CaseRow)
                        .where(CaseRow.stage.in_(open_stages), CaseRow.id > last)
                        .order_by(CaseRow.id)
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return count
            for row in rows:
                await self.supervise(to_case(row))
                count += 1
            last = rows[-1].id

    async def record_firing(self, firing: Firing) -> bool:
        """Write a fired supervision step (督办) into the case's history, once: a redelivered firing (same
        idempotency key) is recognised and skipped. Returns whether a history entry was written."""
        marker = f"#{firing.idempotency_key}"
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, firing.case_id)
            if row is None:
                return False
            seen = await session.scalar(
                select(func.count())
                .select_from(CaseEventRow)
                .where(CaseEventRow.case_id == firing.case_id, CaseEventRow.note.endswith(marker))
            )
            if seen:
                return False
            stage = Stage(row.stage)
            labels = {"handler": "提醒承办部门", "centre": "提醒中心", "level_above": "上报上级"}
            at = datetime.fromtimestamp(firing.at, UTC)
            session.add(
                CaseEventRow(
                    case_id=firing.case_id,
                    at=at,
                    action="supervise",
                    actor="system:sla",
                    from_stage=stage.value,
                    to_stage=stage.value,
                    note=f"督办 {firing.step}: {labels.get(firing.notify, firing.notify)} {firing.target} {marker}",
                )
            )
            # Uplinks and notification channels hear of it like any case event (a channel may be aimed at the
            # firing's target department).
            payload = {"case_id": firing.case_id, "action": "supervise", "actor": "system:sla", "from": stage.value,
                       "to": stage.value, "at": at.isoformat(), "step": firing.step, "notify": firing.notify,
                       "target": firing.target}  # fmt: skip
            session.add(OutboxRow(stream=self.keys.case_events, payload=payload, created_at=self.clock.now()))
            await session.commit()
            return True

    async def record_delivery(self, case_id: str, event_type: str, uplink: Uplink, delivery: str) -> bool:
        """A notification about the case reached people through a channel: a line in the case's history (no case
        event, so channels are not told about their own messages), once per delivery."""
        marker = f"#{uplink.id}:{delivery}"
        async with self.db.sessions() as session:
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
            stage = Stage(row.stage)
            to = "、".join(uplink.to) if uplink.to else uplink.id
            line = CaseEventRow(case_id=case_id, at=self.clock.now(), action="notified", actor=f"uplink:{uplink.id}",
                                from_stage=stage.value, to_stage=stage.value,
                                note=f"{uplink.format} → {to}: {event_type} {marker}")  # fmt: skip
            session.add(line)
            await session.commit()
            return True
