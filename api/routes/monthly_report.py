"""月报: the statistics of a month (or of any days) as an XLSX workbook or a printable PDF, in one request."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sharpeye.api.deps import (
    AuditDep,
    CasesDep,
    ClockDep,
    InventoryDep,
    SiteDep,
    StatusDep,
    VerificationDep,
    case_scope,
    in_scope,
    require,
)
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.user import Principal
from sharpeye.governance.indicator import GroupBy, IndicatorRow, Period
from sharpeye.governance.monthly_report import (
    ReportData,
    ReportError,
    alarm_case_count,
    day_period,
    month_period,
    to_json,
    to_pdf,
    to_xlsx,
)

router = APIRouter(tags=["cases"])

Reader = Annotated[Principal, Depends(require(Permission.cases_read))]
CAMERA_KINDS = frozenset({"camera", "gb28181"})
MEDIA = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "pdf": "application/pdf"}


@router.get("/api/reports/monthly", response_class=Response,
            responses={200: {"content": {MEDIA["xlsx"]: {}, MEDIA["pdf"]: {}}}})  # fmt: skip
async def monthly_report(
    cases: CasesDep,
    inventory: InventoryDep,
    site: SiteDep,
    clock: ClockDep,
    audit: AuditDep,
    verification: VerificationDep,
    node: StatusDep,
    principal: Reader,
    month: Annotated[str | None, Query(description="The month, YYYY-MM (site time zone).")] = None,
    first: Annotated[date | None, Query(alias="from", description="Or from this day (YYYY-MM-DD) ...")] = None,
    last: Annotated[date | None, Query(alias="to", description="... to this day, included (at most 366 days).")] = None,
    format: Annotated[
        Literal["xlsx", "pdf", "json"],
        Query(description="xlsx (workbook), pdf (printable) or json (the same figures, for the command screen)."),
    ] = "xlsx",
) -> Response:
    """The statistics of the period over the cases of the caller's scope (the figures of ``GET /api/stats``: by
    department, grid, category and day; 结案率, 按期结案率, 满意率), the false-alarm rate and the camera online
    rate (for callers who may see alarms and devices). The XLSX and PDF exports are audited."""
    zone = site.site.timezone
    try:
        if month is not None and (first is not None or last is not None):
            raise ReportError("give either month or from/to, not both")
        if month is not None:
            period = month_period(month, zone)
        elif first is not None and last is not None:
            period = day_period(first, last, zone)
        else:
            raise ReportError("give month=YYYY-MM, or from=YYYY-MM-DD and to=YYYY-MM-DD")
    except ReportError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    now = clock.now()
    scope = case_scope(inventory, principal)

    async def rows(by: GroupBy | None, period_: Period = Period.month) -> list[IndicatorRow]:
        return await cases.stats(now, by=[by] if by else [], period=period_, start=period.start, end=period.end,
                                 scope=scope)  # fmt: skip

    names = {**{u.id: u.name for u, _parent in site.org.walk()}, **{d.id: d.name for d in site.departments}}
    within = [u for u in (principal.org_unit, scope.department) if u is not None]
    label = " · ".join(names.get(u, u) for u in within) or "全部"
    data = ReportData(
        site=site.site.name,
        period=period,
        generated_at=now,
        timezone=zone,
        scope=label,
        total=(await rows(None))[0],
        by_department=await rows(GroupBy.department),
        by_org_unit=await rows(GroupBy.org_unit),
        by_category=await rows(GroupBy.category),
        by_day=await rows(GroupBy.period, Period.day),
        names=names,
    )
    if allowed(principal.role, Permission.alarms_read) and not scope.nothing:
        units = inventory.units_below(principal.org_unit) if principal.org_unit else None
        reasons = await verification.false_alarm_stats("reason", period.start, period.end, units)
        data.false_by_reason = [(r.key, r.count) for r in reasons]
        data.false_alarms = sum(r.count for r in reasons)
        data.alarm_cases = await alarm_case_count(cases.db, period.start, period.end, scope)
    if allowed(principal.role, Permission.devices_read):
        statuses = node.device_statuses()
        cameras = [d for d in inventory if d.kind in CAMERA_KINDS and in_scope(inventory, principal, d.grid)]
        data.cameras = len(cameras)
        data.cameras_online = sum(statuses[d.id][0].state == "online" for d in cameras if d.id in statuses)
    if format == "json":
        return Response(orjson.dumps(to_json(data)), media_type="application/json")
    try:
        body = await asyncio.to_thread(to_xlsx if format == "xlsx" else to_pdf, data)
    except ReportError as exc:  # no CJK font on this machine
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    details = {"report": "monthly", "format": format, "start": period.start.isoformat(),
               "end": period.end.isoformat(), "opened": str(data.total.opened)}  # fmt: skip
    await audit.record(principal.actor, "stats.export", "stats", details)
    filename = f"sharpeye-report-{period.slug}.{format}"
    chinese = quote(f"月报-{period.slug}.{format}")
    disposition = f"attachment; filename=\"{filename}\"; filename*=UTF-8''{chinese}"
    return Response(body, media_type=MEDIA[format], headers={"Content-Disposition": disposition})
