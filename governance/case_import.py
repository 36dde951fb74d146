"""Bringing an old system's cases in (``sharpeye cases import FILE``), with their historical times.

A CSV export (UTF-8, with or without BOM, or GB18030) or an XLSX workbook (its first sheet), one case a row, is
read with Chinese or English headings; each row's times (上报/受理/分拨/签收/反馈/核查/结案) become the
case's history with those times, its stage is the last step it reached, and its deadline is the category's
time limit counted from its 分拨 time, so the indicators of an imported month are computed as for cases made
here. Columns the import does not know are ignored, with one warning naming them. Every row is checked first; a
rejected row comes back with its reason and the others go on.

Idempotent on the old system's case number: an imported case's id is ``<SITE>-IMP-<old number>``, and a row whose
case exists is reported as such and left alone. The dry run reads and checks everything and writes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

import openpyxl
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, CaseEvent, GeoPoint, Source, Stage
from sharpeye.governance.case_record import new_row
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.store import CaseEventRow, CaseRow, Database
from sqlalchemy import select

HEADINGS: dict[str, str] = {
    "案件编号": "ticket", "原案件编号": "ticket", "工单号": "ticket", "编号": "ticket", "ticket": "ticket",
    "标题": "title", "title": "title", "类别": "category", "问题类别": "category", "category": "category",
    "网格": "org_unit", "所属网格": "org_unit", "org_unit": "org_unit", "描述": "description", "内容": "description",
    "诉求内容": "description", "description": "description", "处置部门": "department", "部门": "department",
    "department": "department", "上报时间": "reported_at", "来电时间": "reported_at", "reported_at": "reported_at",
    "受理时间": "accepted_at", "立案时间": "accepted_at", "accepted_at": "accepted_at", "分拨时间": "dispatched_at",
    "派遣时间": "dispatched_at", "dispatched_at": "dispatched_at", "签收时间": "claimed_at", "claimed_at": "claimed_at",
    "反馈时间": "handled_at", "handled_at": "handled_at", "核查时间": "verified_at", "verified_at": "verified_at",
    "结案时间": "closed_at", "closed_at": "closed_at", "纬度": "lat", "lat": "lat", "经度": "lon", "lon": "lon",
}  # fmt: skip
STEPS: tuple[tuple[str, str, Stage], ...] = (
    ("accepted_at", "accept", Stage.accepted),
    ("dispatched_at", "dispatch", Stage.dispatched),
    ("claimed_at", "claim", Stage.handling),
    ("handled_at", "feedback", Stage.feedback),
    ("verified_at", "verify", Stage.verifying),
    ("closed_at", "pass_check", Stage.closed),
)
# The step each one needs before it (签收 and 核查 may be missing in an old system's export).
PREREQUISITE = {"accepted_at": "reported_at", "dispatched_at": "accepted_at", "claimed_at": "dispatched_at",
                "handled_at": "dispatched_at", "verified_at": "handled_at", "closed_at": "handled_at"}  # fmt: skip
TICKET = re.compile(r"^[A-Za-z0-9_.\-]{1,28}$")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")
MAX_ROWS = 100_000


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, no header, no case number column)."""


@dataclass
class RowOutcome:
    row: int  # line in the file (the header is line 1)
    ticket: str
    outcome: Literal["create", "exists", "rejected"]
    case_id: str = ""
    stage: str = ""
    reason: str = ""


@dataclass
class ImportReport:
    dry_run: bool
    rows: list[RowOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)


def decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"neither UTF-8 nor GB18030 (byte {exc.start})") from None


def xlsx_rows(data: bytes) -> list[list[str]]:
    """The first sheet of an XLSX workbook as rows of text (times as ``YYYY-MM-DD HH:MM:SS``)."""
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # a ZIP that is not a workbook, a damaged file
        raise ImportFileError(f"not a readable XLSX workbook: {exc}") from None
    try:
        sheet = book.worksheets[0]
        rows: list[list[str]] = []
        for values in sheet.iter_rows(values_only=True):
            if len(rows) > MAX_ROWS:
                raise ImportFileError(f"more than {MAX_ROWS} rows: split the file")
            rows.append(["" if v is None else v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v)
                         for v in values])  # fmt: skip
        return rows
    finally:
        book.close()


def _time(text: str, zone: ZoneInfo, name: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
        for fmt in TIME_FORMATS:
            try:
                value = datetime.strptime(text, fmt).replace(tzinfo=zone)
                break
            except ValueError:
                continue
    if value is None:
        raise ValueError(f"{name}: {text!r} is not a time (2026-01-05 09:30)")
    return value if value.tzinfo else value.replace(tzinfo=zone)


class CaseImport:
    def __init__(self, site: SiteConfig, db: Database) -> None:
        self.site = site
        self.db = db
        self.zone = ZoneInfo(site.site.timezone)
        self.sla = SlaPolicy.from_config(site.governance, site.site.timezone)
        self.units = {u.id for u, _ in site.org.walk()}
        self.departments = {d.id: d for d in site.departments}
        self.categories = {c for d in site.departments for c in d.categories}

    def parse(self, data: bytes) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
        """(line, row by field name) of every row, and the warnings (ignored columns). XLSX (the first sheet) or
        CSV, told apart by the bytes (an XLSX file is a ZIP)."""
        reader = iter(xlsx_rows(data)) if data.startswith(b"PK\x03\x04") else csv.reader(io.StringIO(decode(data)))
        header = next(reader, None)
        if not header:
            raise ImportFileError("the file is empty: a header row is needed")
        names = [HEADINGS.get(h.strip()) for h in header]
        if "ticket" not in names:
            raise ImportFileError("no case number column (案件编号 or ticket)")
        warnings = []
        ignored = [h.strip() for h, n in zip(header, names, strict=True) if n is None and h.strip()]
        if ignored:
            warnings.append(f"columns ignored: {', '.join(ignored)}")
        rows: list[tuple[int, dict[str, str]]] = []
        for line, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise ImportFileError(f"more than {MAX_ROWS} rows: split the file")
            rows.append((line, {n: v for n, v in zip(names, values, strict=False) if n is not None}))
        return rows, warnings

    def case_of(self, row: dict[str, str]) -> tuple[Case, list[CaseEvent]]:
        """The case and its history a row describes; ValueError naming what is wrong."""
        ticket = row.get("ticket", "").strip()
        if not TICKET.match(ticket):
            raise ValueError(f"case number {ticket!r}: 1-28 letters, digits, '-', '_' or '.'")
        category = row.get("category", "").strip()
        if category not in self.categories:
            raise ValueError(f"category {category!r}: no department handles it")
        unit = row.get("org_unit", "").strip()
        if unit not in self.units:
            raise ValueError(f"org unit {unit!r} is not in the org tree")
        title = row.get("title", "").strip() or category
        if len(title) > 200:
            raise ValueError("title: at most 200 characters")
        reported = _time(row.get("reported_at", ""), self.zone, "上报时间")
        if reported is None:
            raise ValueError("上报时间 (reported_at) is required")
        times = {name: _time(row.get(name, ""), self.zone, name) for name, _, _ in STEPS}
        previous, stage = reported, Stage.reported
        case_id = f"{self.site.site.id.upper()}-IMP-{ticket}"
        actor = f"import:{ticket}"
        events = [CaseEvent(at=reported, action="report", actor=actor, from_stage=None, to_stage=Stage.reported,
                            case_id=case_id, role="import", data={"source": "import"})]  # fmt: skip
        department = row.get("department", "").strip() or None
        for name, action, target in STEPS:
            at = times[name]
            if at is None:
                continue
            needed = PREREQUISITE[name]
            if needed != "reported_at" and times[needed] is None:
                raise ValueError(f"{name} is given but {needed} is not")
            if at < previous:
                raise ValueError(f"{name} {at.isoformat()} is before the step before it ({previous.isoformat()})")
            data = {"department": department or ""} if action == "dispatch" else {}
            events.append(CaseEvent(at=at, action=action, actor=actor, from_stage=stage, to_stage=target,
                                    case_id=case_id, role="import", data=data))  # fmt: skip
            previous, stage = at, target
        if times["dispatched_at"] is not None and department not in self.departments:
            raise ValueError(f"department {department!r}: a dispatched case needs a known department")
        lat, lon = row.get("lat", "").strip(), row.get("lon", "").strip()
        location = None
        if lat or lon:
            try:
                location = GeoPoint(lat=float(lat), lon=float(lon))
            except ValueError:
                raise ValueError(f"position {lat!r}, {lon!r}: both, in range") from None
        dispatched = times["dispatched_at"]
        sla, due = self.sla.start(category, dispatched) if dispatched is not None else (None, None)
        level = str(self._level(department)) if dispatched is not None and department else None
        case = Case(id=case_id, title=title, category=category, severity=Severity.minor, source=Source.hotline,
                    stage=stage, org_unit=unit, department=department if dispatched else None, level=level,
                    created_at=reported, updated_at=previous, dispatched_at=dispatched, due_at=due,
                    closed_at=times["closed_at"], description=row.get("description", "").strip()[:5000],
                    location=location, accepted_at=times["accepted_at"], handled_at=times["handled_at"], sla=sla,
                    claimed_by=actor if times["claimed_at"] else None)  # fmt: skip
        if case.stage.open and case.sla is not None:
            case = case.model_copy(update={"light": self.sla.light(case, previous)})
        return case, events

    def _level(self, department: str) -> str:
        unit = self.departments[department].unit
        for u, _ in self.site.org.walk():
            if u.id == unit:
                return str(u.level)
        return ""

    async def run(self, data: bytes, *, dry_run: bool = True) -> ImportReport:
        rows, warnings = self.parse(data)
        report = ImportReport(dry_run=dry_run, warnings=warnings)
        built: list[tuple[Case, list[CaseEvent]]] = []
        async with self.db.sessions() as session:
            prefix = f"{self.site.site.id.upper()}-IMP-%"
            existing = set(await session.scalars(select(CaseRow.id).where(CaseRow.id.like(prefix))))
        seen: set[str] = set()
        for line, row in rows:
            ticket = row.get("ticket", "").strip()
            try:
                case, events = self.case_of(row)
            except ValueError as exc:
                report.rows.append(RowOutcome(line, ticket, "rejected", reason=str(exc)))
                continue
            if case.id in existing or case.id in seen:
                why = "imported before" if case.id in existing else "twice in this file"
                report.rows.append(RowOutcome(line, ticket, "exists", case.id, case.stage.value, why))
                continue
            seen.add(case.id)
            built.append((case, events))
            report.rows.append(RowOutcome(line, ticket, "create", case.id, case.stage.value))
        if not dry_run and built:
            async with self.db.sessions() as session:
                session.add_all(new_row(case) for case, _ in built)
                await session.flush()
                for case, events in built:
                    for event in events:
                        department = event.data.get("department")
                        session.add(
                            CaseEventRow(
                                case_id=case.id,
                                at=event.at,
                                action=event.action,
                                actor=event.actor,
                                from_stage=event.from_stage.value if event.from_stage else None,
                                to_stage=event.to_stage.value,
                                note="导入" + (f" [department={department}]" if department else ""),
                            )
                        )
                await session.commit()
        return report
