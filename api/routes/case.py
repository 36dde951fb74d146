"""Cases: list and detail with history."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field, model_validator
from sharpeye.api.deps import (
    AuditDep,
    CasesDep,
    ClockDep,
    InventoryDep,
    case_scope,
    case_visible,
    in_scope,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.permission import allowed as allowed_permission
from sharpeye.api.user import Principal
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, CaseEvent, GeoPoint, Source, Stage
from sharpeye.governance.cluster import find_clusters
from sharpeye.governance.dispatch import DispatchError
from sharpeye.governance.flow import Action, Actor, Args, TransitionError, allowed
from sharpeye.governance.indicator import GroupBy, Period, as_dict, to_csv
from sharpeye.governance.service import CaseConflict, CaseFilter, CaseNotFound, CaseService
from sharpeye.ingest.inventory import DeviceInventory

router = APIRouter(tags=["cases"])

Reader = Annotated[Principal, Depends(require(Permission.cases_read))]
Actor_ = Annotated[Principal, Depends(require(Permission.cases_act))]


class CasePage(BaseModel):
    items: list[Case]
    total: int = Field(description="Matching cases, counted up to 10,000 (see total_capped).")
    total_capped: bool = Field(default=False, description="More than 10,000 match: total is a lower bound.")
    next: str | None = Field(default=None, description="Cursor of the next page (pass as after); null: last.")


def encode_cursor(key: tuple[datetime, str]) -> str:
    return base64.urlsafe_b64encode(f"{key[0].isoformat()}|{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) key of a cursor; a malformed one is a 422 with the reason."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, case_id = text.split("|", 1)
        when = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "malformed cursor (after)") from None
    if when.tzinfo is None or not case_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "malformed cursor (after)")
    return when, case_id


class CaseDetail(BaseModel):
    case: Case
    history: list[CaseEvent]
    actions: list[str] = Field(default_factory=list, description="Actions the caller may take at this stage.")


@router.get("/api/cases")
async def list_cases(
    cases: CasesDep,
    inventory: InventoryDep,
    principal: Reader,
    stage: Annotated[list[Stage] | None, Query(description="Only these stages.")] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000, description="Prefer after: offsets cost their depth.")] = 0,
    after: Annotated[str | None, Query(max_length=200, description="Cursor from the previous page's next.")] = None,
) -> CasePage:
    """Cases newest first, of the caller's scope. Page with ``after`` (keyset: the same cost at any depth)."""
    page = await cases.page(
        CaseFilter(stages=stage or (), department=department, category=category, limit=limit, offset=offset,
                   after=decode_cursor(after) if after else None, scope=case_scope(inventory, principal))
    )  # fmt: skip
    return CasePage(items=page.items, total=page.total, total_capped=page.total_capped,
                    next=encode_cursor(page.next) if page.next else None)  # fmt: skip


@router.get("/api/cases/{case_id}")
async def get_case(cases: CasesDep, inventory: InventoryDep, principal: Reader, case_id: str) -> CaseDetail:
    case = await visible_case(cases, inventory, principal, case_id)
    return await case_detail(cases, principal, case)


async def case_detail(cases: CaseService, principal: Principal, case: Case) -> CaseDetail:
    """A case with its history and the actions the caller may take."""
    may_act = allowed_permission(principal.role, Permission.cases_act)
    actions = [a.value for a in allowed(case, actor_of(principal))] if may_act else []
    return CaseDetail(case=case, history=await cases.history(case.id), actions=actions)


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.actor, principal.role, principal.department)


class CaseAction(BaseModel):
    """One step of the case flow. Which fields an action needs is checked by the flow (e.g. a reason to cancel)."""

    action: Action = Field(description="accept, cancel, merge, dispatch, claim, return, reassign, "
                                        "request_extension, approve_extension, reject_extension, feedback, verify, "
                                        "pass_check, fail_check, park, reopen, assist, assist_feedback")  # fmt: skip
    note: str = Field(default="", max_length=2000, description="Reason, result or comment.")
    department: str | None = Field(default=None, max_length=64, description="dispatch/reassign: manual override.")
    target: str | None = Field(default=None, max_length=40, description="merge: the case this one folds into.")
    departments: list[str] = Field(default_factory=list, max_length=20,
                                   description="assist: the co-handling departments (协办) to add.")  # fmt: skip
    extra_hours: float | None = Field(
        default=None, gt=0, le=24 * 365, allow_inf_nan=False, description="Extension asked or granted."
    )


class ReportBody(BaseModel):
    """A person's report: a grid worker's one-click report, a resident's app report, a hotline call."""

    title: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    org_unit: str = Field(min_length=1, max_length=64, description="Where: an org unit id (normally a grid).")
    description: str = Field(default="", max_length=5000)
    severity: Severity = Severity.minor
    source: Source = Source.grid_worker
    lat: float | None = Field(
        default=None, ge=-90, le=90, allow_inf_nan=False, description="Where, if the terminal knows: latitude."
    )
    lon: float | None = Field(
        default=None, ge=-180, le=180, allow_inf_nan=False, description="... and longitude (both or neither)."
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> ReportBody:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        return self


@router.post("/api/cases/{case_id}/actions")
async def act_on_case(
    cases: CasesDep, inventory: InventoryDep, audit: AuditDep, principal: Actor_, case_id: str, body: CaseAction
) -> CaseDetail:
    """Take one action of the flow; an illegal one is refused (409) with the reason."""
    await visible_case(cases, inventory, principal, case_id)
    actor = actor_of(principal)
    extra_s = body.extra_hours * 3600 if body.extra_hours is not None else None
    try:
        if body.action in (Action.dispatch, Action.reassign):  # by the dispatch table, or a recorded override
            await cases.dispatch(case_id, actor, department=body.department, reason=body.note)
        else:
            unknown = [d for d in body.departments if d not in cases.dispatcher.departments]
            if unknown:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no department {', '.join(unknown)}")
            args = Args(reason=body.note, target=body.target, extra_s=extra_s, departments=tuple(body.departments))
            await cases.act(case_id, body.action, actor, args)
    except TransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (CaseConflict, DispatchError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except CaseNotFound:
        not_found_unless(False, f"case {case_id!r}")
    await audit.record(principal.actor, f"case.{body.action.value}", case_id, body.model_dump())
    after_action = await cases.get(case_id)  # the actor sees the outcome, even when it leaves their department
    not_found_unless(after_action is not None, f"case {case_id!r}")
    assert after_action is not None
    return await case_detail(cases, principal, after_action)


class BulkAction(BaseModel):
    """受理 or 派遣 of many cases at once (an imported month, a hotline batch)."""

    action: Literal["accept", "dispatch"] = Field(description="accept (立案) or dispatch (by the dispatch table).")
    ids: list[str] = Field(min_length=1, max_length=500, description="The cases, each acted on by itself.")
    note: str = Field(default="", max_length=2000)


class BulkOutcome(BaseModel):
    id: str
    ok: bool
    stage: Stage | None = None
    department: str | None = None
    reason: str = ""


@router.post("/api/cases/bulk")
async def bulk_action(
    cases: CasesDep, inventory: InventoryDep, audit: AuditDep, principal: Actor_, body: BulkAction
) -> list[BulkOutcome]:
    """The same step for many cases: each is checked and done on its own (one refused does not stop the others),
    and each outcome comes back with its reason."""
    actor = actor_of(principal)
    out: list[BulkOutcome] = []
    for case_id in dict.fromkeys(body.ids):
        case = await cases.get(case_id)
        if case is None or not case_visible(inventory, principal, case):
            out.append(BulkOutcome(id=case_id, ok=False, reason=f"no case {case_id!r}"))
            continue
        try:
            if body.action == "accept":
                done = await cases.act(case_id, Action.accept, actor, Args(reason=body.note))
            else:
                done = await cases.dispatch(case_id, actor, reason=body.note)
        except (TransitionError, CaseConflict, DispatchError) as exc:
            out.append(BulkOutcome(id=case_id, ok=False, stage=case.stage, reason=str(exc)))
            continue
        out.append(BulkOutcome(id=case_id, ok=True, stage=done.stage, department=done.department))
    await audit.record(principal.actor, f"case.bulk_{body.action}", "cases",
                       {"ids": [o.id for o in out if o.ok], "refused": str(sum(not o.ok for o in out))})  # fmt: skip
    return out


async def visible_case(cases: CaseService, inventory: DeviceInventory, principal: Principal, case_id: str) -> Case:
    """The case, if the caller may see it; else 404 as for a missing one."""
    case = await cases.get(case_id)
    not_found_unless(case is not None and case_visible(inventory, principal, case), f"case {case_id!r}")
    assert case is not None
    return case


@router.post("/api/reports", status_code=status.HTTP_201_CREATED)
async def report(
    cases: CasesDep, inventory: InventoryDep, audit: AuditDep, principal: Actor_, body: ReportBody
) -> Case:
    """A new case (上报) from a person; the centre accepts and dispatches it."""
    if inventory.unit(body.org_unit) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no org unit {body.org_unit!r}")
    if not in_scope(inventory, principal, body.org_unit):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"org unit {body.org_unit!r} is outside your scope")
    try:
        case = await cases.report(title=body.title, category=body.category, severity=body.severity,
                                  source=body.source, org_unit=body.org_unit, actor=actor_of(principal),
                                  description=body.description,
                                  location=GeoPoint(lat=body.lat, lon=body.lon)
                                  if body.lat is not None and body.lon is not None else None)  # fmt: skip
    except TransitionError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    await audit.record(principal.actor, "case.report", case.id, body.model_dump(mode="json"))
    return case


@router.get("/api/stats", response_model=None)
async def stats(
    cases: CasesDep,
    inventory: InventoryDep,
    clock: ClockDep,
    audit: AuditDep,
    principal: Reader,
    by: Annotated[list[GroupBy] | None, Query(description="Group by department, org_unit, category, period.")] = None,
    period: Annotated[Period, Query()] = Period.month,
    start: Annotated[datetime | None, Query(description="Cases accepted from (aware ISO 8601).")] = None,
    end: Annotated[datetime | None, Query(description="... until (exclusive).")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> list[dict[str, object]] | Response:
    """结案率, 按期结案率, handling time, returns, extensions, rework, parked, open by light (DOMAIN.md definitions),
    over the cases of the caller's scope. The CSV export is audited."""
    for when in (start, end):
        if when is not None and when.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start/end need a time zone")
    groups = by or []
    rows = await cases.stats(clock.now(), by=groups, period=period, start=start, end=end,
                             scope=case_scope(inventory, principal))  # fmt: skip
    if format == "csv":
        query = {"by": [g.value for g in groups], "period": period.value, "rows": len(rows),
                 "start": start.isoformat() if start else None, "end": end.isoformat() if end else None}  # fmt: skip
        await audit.record(principal.actor, "stats.export", "stats", query)
        return Response(to_csv(rows, groups), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="sharpeye-stats.csv"'})  # fmt: skip
    return [as_dict(row, groups) for row in rows]


@router.get("/api/stats/clusters")
async def clusters(
    cases: CasesDep,
    inventory: InventoryDep,
    clock: ClockDep,
    principal: Reader,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    radius_m: Annotated[float, Query(gt=0, le=10_000, allow_inf_nan=False)] = 300.0,
    min_size: Annotated[int, Query(ge=2, le=1000)] = 3,
) -> list[dict[str, object]]:
    """Class-case analysis (类案分析): same-category cases clustered in place and time, largest first; over the
    cases of the caller's scope."""
    now = clock.now()
    records = await cases.records(now - timedelta(days=days), None, scope=case_scope(inventory, principal))
    found = find_clusters(records, radius_m=radius_m, min_size=min_size, start=now - timedelta(days=days))
    return [jsonable_encoder(c) for c in found]
