"""The durable record of cases: SQLAlchemy 2 (SQLite by default, PostgreSQL for deployments).

Tables: ``cases``, ``case_events`` (history and audit trail), ``case_alarms`` (which alarm opened or
joined which case; the primary key makes intake idempotent) and ``outbox`` (queue entries written in
the same transaction as the case change, relayed to Redis Streams afterwards). The schema is created
and upgraded by Alembic migrations under ``governance/migrations``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator, event, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS = Path(__file__).with_name("migrations")
# The covering index of the indicator query (governance/statistic.py), 立案 time first (migration 0004).
INDICATOR_INDEX = ("accepted_at", "stage", "department", "category", "org_unit", "due_at", "closed_at", "returns",
                   "extensions", "reworks", "satisfaction")  # fmt: skip


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[str]: JSON}  # noqa: RUF012


class CaseRow(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16), index=True)
    org_unit: Mapped[str] = mapped_column(String(64), index=True)
    department: Mapped[str | None] = mapped_column(String(64), index=True)
    level: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_at: Mapped[datetime | None]
    description: Mapped[str] = mapped_column(Text, default="")
    alarm_ids: Mapped[list[str]] = mapped_column(default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Copies of fields of ``extra`` that the indicators select and sum (migration 0004).
    accepted_at: Mapped[datetime | None]
    returns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    extensions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reworks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    satisfaction: Mapped[str | None] = mapped_column(String(16))  # the reporter's rating (migration 0007)

    __table_args__ = (
        Index("ix_cases_created", "created_at"),
        # The indicators: select by 立案 time, reading only this index (a covering index; migration 0004).
        Index("ix_cases_indicators", *INDICATOR_INDEX),
        # The case list: filter by department and stage, newest first (migration 0003).
        Index("ix_cases_list_department", "department", "stage", "created_at", "id"),
        Index("ix_cases_list_stage", "stage", "created_at", "id"),
    )


class CaseEventRow(Base):
    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class CaseAlarmRow(Base):
    __tablename__ = "case_alarms"

    alarm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)


class CaseIncidentRow(Base):
    """The case an incident (correlated alarms) feeds; later alarms of the incident join that case."""

    __tablename__ = "case_incidents"

    incident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)


class CaseAssistRow(Base):
    """A co-handling department (协办) of a case, so that department's people find the case (migration 0008). The
    assist itself (its feedback) lives in the case's ``extra``."""

    __tablename__ = "case_assists"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class CasePhotoRow(Base):
    """A photo attached to a case (a report's evidence); the bytes live under the data dir."""

    __tablename__ = "case_photos"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class FalseAlarmRow(Base):
    """An alarm an operator judged false (误报): it never became a case. Counted per camera (device), rule, zone,
    hour and org unit so an integrator sees which camera or rule to fix."""

    __tablename__ = "false_alarms"

    alarm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(64))
    org_unit: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(64))
    raised_at: Mapped[datetime] = mapped_column(index=True)
    judged_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100))


class VerdictRow(Base):
    """The final verdict (研判) an operator or the time limit gave an alarm: ``confirmed`` (it became a case) or
    ``false_alarm``. Written by the alarm intake from the verdict notifications (off the verdict request's path,
    migration 0009); the accuracy report (``GET /api/stats/precision``) counts them per camera, rule and zone."""

    __tablename__ = "verdicts"

    alarm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(64))
    org_unit: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(64))
    raised_at: Mapped[datetime] = mapped_column(index=True)
    judged_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))


class AuditRow(Base):
    """One audit entry, archived from the Redis audit stream: append-only (the database refuses UPDATE and DELETE,
    migration 0006) and hash-chained (``hash`` = SHA-256 of the previous hash and this entry), so a changed or
    removed entry breaks the chain at that place (``governance.audit_archive.verify``)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(String(40), unique=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)


def is_sqlite_file(url: str) -> bool:
    """A SQLite database in a file (not ``:memory:``), where write-ahead logging applies."""
    return url.startswith("sqlite") and ":memory:" not in url and not url.rstrip("/").endswith(":")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (the case list, stats) run while a writer commits; NORMAL sync is durable in WAL
    mode across process crashes; the busy timeout turns a brief writer overlap into a wait, not an error."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


class Database:
    """An async engine and session factory; ``migrate()`` brings the schema to the newest revision."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        if is_sqlite_file(url):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)

    async def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        # Alembic's env.py runs its own event loop: give it a thread.
        await asyncio.to_thread(command.upgrade, cfg, "head")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    async def close(self, settle_s: float = 10.0) -> None:
        """Dispose of the engine once the connections in use are back, waiting at most ``settle_s``: a session left
        by a cancelled task closes in a task of its own (SQLAlchemy shields it), which may still wait for SQLite's
        lock (its busy timeout). Disposed under it, that close can end up awaiting a connection whose worker is
        gone, and the event loop cannot finish (the likely cause of a hub teardown that hung on a loaded run)."""
        in_use: Callable[[], int] = getattr(self.engine.pool, "checkedout", lambda: 0)
        for _ in range(int(settle_s / 0.05)):
            if in_use() == 0:
                break
            await asyncio.sleep(0.05)
        await self.engine.dispose()
