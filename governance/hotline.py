"""12345 hotline import: tickets (工单) from a CSV or JSON export become reported cases.

Every row is validated on its own (required fields, a known org unit, a category the dispatch table can
route, a plausible position, a ticket number not seen before in this file or an earlier import); a bad
row is rejected with its reason and never stops the others. ``dry_run`` shows what would be created and
every rejection without writing anything. Ticket numbers already imported are remembered in Redis
(``ticket_key``), so importing the same export twice creates nothing the second time.

CSV: UTF-8 (with or without BOM) or GB18030, decoded explicitly; a header row with the English names
below or their Chinese equivalents. JSON: a list of objects, or ``{"tickets": [...]}``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from sharpeye.config.rule import Severity
from sharpeye.governance.case import GeoPoint, Source
from sharpeye.governance.dispatch import DispatchError
from sharpeye.governance.flow import Actor
from sharpeye.governance.service import CaseService

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

MAX_ROWS = 5000

# Chinese column headings of common hotline exports, mapped to field names.
HEADINGS = {
    "工单号": "ticket",
    "工单编号": "ticket",
    "标题": "title",
    "类别": "category",
    "问题类别": "category",
    "网格": "org_unit",
    "所属网格": "org_unit",
    "内容": "description",
    "诉求内容": "description",
    "纬度": "lat",
    "经度": "lon",
    "紧急程度": "severity",
    "来电时间": "called_at",
    "受理时间": "accepted_at",
}


def ticket_key(keys: Keys) -> str:
    """Hash: hotline ticket number → the case it became."""
    return keys.hotline_tickets


class Ticket(BaseModel):
    """One hotline ticket (a row of the export)."""

    ticket: str = Field(min_length=1, max_length=64, description="Hotline ticket number (工单号), unique.")
    title: str = Field(min_length=1, max_length=200, description="Short title.")
    category: str = Field(min_length=1, max_length=64, description="Case category.")
    org_unit: str = Field(min_length=1, max_length=64, description="Org unit id (normally a grid).")
    description: str = Field(default="", max_length=5000, description="The caller's account.")
    severity: Severity = Field(default=Severity.minor, description="Severity.")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Latitude, if the hotline geocoded it.")
    lon: float | None = Field(default=None, ge=-180, le=180, description="Longitude.")
    called_at: datetime | None = Field(default=None, description="来电时间, kept in the case's description.")
    accepted_at: datetime | None = Field(default=None, description="受理时间 at the hotline, kept likewise.")


class Rejected(BaseModel):
    row: int = Field(description="Row number: 1 is the first ticket (after the CSV header).")
    ticket: str | None = Field(description="The ticket number, when the row has one.")
    reason: str = Field(description="Why the row was refused.")


class Planned(BaseModel):
    row: int
    ticket: str
    title: str
    category: str
    org_unit: str
    department: str = Field(description="Where the dispatch table would send it.")
    case_id: str | None = Field(default=None, description="The case created (null in a dry run).")


class ImportResult(BaseModel):
    dry_run: bool
    created: list[Planned] = Field(description="Tickets that became cases (in a dry run: that would).")
    rejected: list[Rejected]
    warnings: list[str] = Field(default_factory=list, description="Fields the import ignored, with their rows.")


class ImportError_(ValueError):
    """The file as a whole cannot be read (not the rows in it)."""


def decode(data: bytes) -> str:
    """UTF-8 (BOM or not), else GB18030 (a superset of GB2312/GBK)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise ImportError_("the file is neither UTF-8 nor GB18030 text") from None


def parse(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """The raw rows of a CSV or JSON export (field names normalised), or ImportError_."""
    if fmt == "json":
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ImportError_(f"not JSON: {exc}") from None
        rows = doc.get("tickets") if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise ImportError_('JSON must be a list of tickets or {"tickets": [...]}')
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(decode(data), newline=""))
        if not reader.fieldnames:
            raise ImportError_("the CSV has no header row")
        rows = [{HEADINGS.get(k.strip(), k.strip()): (v or "").strip() for k, v in r.items() if k} for r in reader]
    else:
        raise ImportError_(f"unknown format {fmt!r}: csv or json")
    if len(rows) > MAX_ROWS:
        raise ImportError_(f"{len(rows)} tickets: at most {MAX_ROWS} per import")
    return [r if isinstance(r, dict) else {"__invalid__": r} for r in rows]


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())


async def import_tickets(
    service: CaseService, redis: aioredis.Redis, keys: Keys, rows: list[dict[str, Any]], actor: Actor, *,
    dry_run: bool, in_scope: Callable[[str], bool] | None = None,
) -> ImportResult:  # fmt: skip
    """Validate every row; unless ``dry_run``, create a reported case for each valid one."""
    planned: list[tuple[Planned, Ticket]] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    ignored: dict[str, list[int]] = {}
    for n, raw in enumerate(rows, start=1):
        number = str(raw.get("ticket") or "").strip() or None
        if "__invalid__" in raw:
            rejected.append(Rejected(row=n, ticket=None, reason="not an object"))
            continue
        cleaned = {k: (None if v == "" and k in ("lat", "lon") else v) for k, v in raw.items()}
        try:
            fields = {k: (None if v == "" and k in ("called_at", "accepted_at") else v) for k, v in cleaned.items()}
            ticket = Ticket.model_validate({k: v for k, v in fields.items() if k in Ticket.model_fields},
                                           strict=False)  # fmt: skip
            for name in sorted(set(cleaned) - set(Ticket.model_fields)):  # an export's extra columns
                ignored.setdefault(name, []).append(n)
        except ValidationError as exc:
            rejected.append(Rejected(row=n, ticket=number, reason=_reason(exc)))
            continue
        except ValueError as exc:
            rejected.append(Rejected(row=n, ticket=number, reason=str(exc)))
            continue
        reason = None
        if (ticket.lat is None) != (ticket.lon is None):
            reason = "lat and lon go together"
        elif ticket.ticket in seen:
            reason = f"ticket {ticket.ticket} appears twice in this file"
        elif ticket.org_unit not in service.dispatcher.units:
            reason = f"no org unit {ticket.org_unit!r}"
        elif in_scope is not None and not in_scope(ticket.org_unit):
            reason = f"org unit {ticket.org_unit!r} is outside your scope"
        elif await redis.hexists(ticket_key(keys), ticket.ticket):
            existing = await redis.hget(ticket_key(keys), ticket.ticket)
            reason = f"ticket {ticket.ticket} was imported before as case {existing.decode() if existing else '?'}"
        department = ""
        if reason is None:
            try:
                department = service.dispatcher.choose(ticket.category, ticket.org_unit, ticket.severity).department
            except DispatchError as exc:
                reason = f"cannot be dispatched: {exc}"
        seen.add(ticket.ticket)
        if reason is not None:
            rejected.append(Rejected(row=n, ticket=ticket.ticket, reason=reason))
            continue
        planned.append((Planned(row=n, ticket=ticket.ticket, title=ticket.title, category=ticket.category,
                                org_unit=ticket.org_unit, department=department), ticket))  # fmt: skip
    warnings = [f"field {name!r} ignored (rows {', '.join(map(str, at[:10]))}{', ...' if len(at) > 10 else ''})"
                for name, at in ignored.items()]  # fmt: skip
    if dry_run:
        return ImportResult(dry_run=True, created=[p for p, _ in planned], rejected=rejected, warnings=warnings)
    created: list[Planned] = []
    for plan, ticket in planned:
        # Claim the ticket number first, so two imports running at once create it once.
        if not await redis.hsetnx(ticket_key(keys), ticket.ticket, "pending"):
            rejected.append(Rejected(row=plan.row, ticket=ticket.ticket, reason="imported meanwhile by another run"))
            continue
        try:
            location = (
                GeoPoint(lat=ticket.lat, lon=ticket.lon) if ticket.lat is not None and ticket.lon is not None else None
            )
            case = await service.report(
                title=ticket.title, category=ticket.category, severity=ticket.severity, source=Source.hotline,
                org_unit=ticket.org_unit, actor=actor, location=location,
                description=f"12345 工单 {ticket.ticket}{_times(ticket)}\n{ticket.description}".strip(),
            )  # fmt: skip
        except Exception:
            await redis.hdel(ticket_key(keys), ticket.ticket)
            raise
        await redis.hset(ticket_key(keys), ticket.ticket, case.id)
        created.append(plan.model_copy(update={"case_id": case.id}))
    log.info("hotline import: %d created, %d rejected", len(created), len(rejected))
    return ImportResult(dry_run=False, created=created, rejected=rejected, warnings=warnings)


def _times(ticket: Ticket) -> str:
    """The hotline's own times, for the case's description (the case's times are the hub's)."""
    parts = [f"{label}：{value.isoformat(sep=' ')}" for label, value in (("来电时间", ticket.called_at),
             ("受理时间", ticket.accepted_at)) if value is not None]  # fmt: skip
    return f"（{'，'.join(parts)}）" if parts else ""
