"""The field app's API (/field/ on a phone): a grid worker's one-click report (idempotent by a client-generated id,
so the phone's offline queue may send it again), their tasks (cases dispatched to their department or to a
department of their grid) with 签收 and feedback with photos and position, and 巡查 patrols with a GPS track.

The phone's people hold only ``reports:create``, ``tasks:act`` and ``patrols:write`` (see api/permission.py): none
of these routes shows a case that is not the caller's task, and the console's routes stay closed to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sharpeye.api.body import json_safe
from sharpeye.api.deps import (
    AuditDep,
    CasesDep,
    ClockDep,
    FieldDep,
    InventoryDep,
    MetricsDep,
    PhotosDep,
    SiteDep,
    case_scope,
    in_scope,
    not_found_unless,
    require,
    signed_in,
)
from sharpeye.api.permission import ROLE_PERMISSIONS, Permission
from sharpeye.api.routes.report import _uploads, photo_refused
from sharpeye.api.user import Principal
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, CaseEvent, GeoPoint, Source, Stage
from sharpeye.governance.field import (
    Patrol,
    PatrolError,
    PatrolNotFound,
    ReportPending,
    TrackPoint,
)
from sharpeye.governance.flow import Action, Actor, Args, TransitionError
from sharpeye.governance.photo import Photo, PhotoRejected, check_async
from sharpeye.governance.service import CaseConflict, CaseFilter, CaseNotFound, CaseScope, CaseService
from sharpeye.ingest.inventory import DeviceInventory

ERRORS: dict[str, bool] = {"include_url": False, "include_context": False}  # the validators' exceptions are not JSON

router = APIRouter(tags=["field"])

Reporter = Annotated[Principal, Depends(require(Permission.reports_create))]
Taker = Annotated[Principal, Depends(require(Permission.tasks_act))]
Patroller = Annotated[Principal, Depends(require(Permission.patrols_write))]
PatrolReader = Annotated[Principal, Depends(require(Permission.patrols_read))]

OPEN_TASK = (Stage.dispatched, Stage.handling)
DONE_TASK = (Stage.feedback, Stage.verifying, Stage.closed)
CLIENT_ID = r"^[A-Za-z0-9-]{8,64}$"


def task_departments(site: SiteConfig, principal: Principal) -> frozenset[str]:
    """The departments whose cases are the caller's tasks: their own, and for a grid worker every department
    attached to their grid."""
    found = {principal.department} if principal.department else set()
    if principal.role.value == "grid_worker" and principal.org_unit:
        found |= {d.id for d in site.departments if d.unit == principal.org_unit}
    return frozenset(found)


def field_actor(site: SiteConfig, principal: Principal) -> Actor:
    return Actor(principal.actor, principal.role, principal.department, task_departments(site, principal))


def task_scope(inventory: DeviceInventory, site: SiteConfig, principal: Principal) -> CaseScope:
    departments = task_departments(site, principal)
    base = case_scope(inventory, principal)
    if not departments:
        return CaseScope(nothing=True)
    return CaseScope(base.org_units, None, base.nothing, tuple(sorted(departments)))


def is_task(inventory: DeviceInventory, site: SiteConfig, principal: Principal, case: Case) -> bool:
    mine = task_departments(site, principal)
    return (
        (case.department in mine or any(a.department in mine for a in case.assists))
        and in_scope(inventory, principal, case.org_unit)
    )


async def task_case(
    cases: CaseService, inventory: DeviceInventory, site: SiteConfig, principal: Principal, case_id: str
) -> Case:
    """The case if it is the caller's task; else 404 as for a missing one."""
    case = await cases.get(case_id)
    not_found_unless(case is not None and is_task(inventory, site, principal, case), f"task {case_id!r}")
    assert case is not None
    return case


class Profile(BaseModel):
    username: str
    role: str
    org_unit: str | None
    department: str | None
    permissions: list[Permission]
    must_change_password: bool = Field(default=False, description="Sign in again to choose a new password first.")
    categories: list[str] = Field(description="Case categories a report may name (those some department handles).")
    units: list[str] = Field(description="Org units a report may name: the caller's unit and those below it.")


@router.get("/api/field/profile")
async def profile(
    site: SiteDep, inventory: InventoryDep, principal: Annotated[Principal, Depends(signed_in)]
) -> Profile:
    """Who the phone's user is and what their app shows: any signed-in user (the app hides what the role lacks)."""
    categories = sorted({c for d in site.departments for c in d.categories})
    units = sorted(inventory.units_below(principal.org_unit)) if principal.org_unit else []
    return Profile(username=principal.username, role=principal.role.value, org_unit=principal.org_unit,
                   department=principal.department, permissions=sorted(ROLE_PERMISSIONS[principal.role]),
                   must_change_password=principal.must_change_password,
                   categories=categories, units=units)  # fmt: skip


# --- one-click report ------------------------------------------------------------------------------------
class FieldReport(BaseModel):
    """The text fields of a field report (multipart, with files named ``photos``)."""

    client_id: str = Field(pattern=CLIENT_ID, description="Made on the phone when the report is written; a resend "
                                                          "with the same id returns the same case.")  # fmt: skip
    category: str = Field(min_length=1, max_length=64)
    title: str = Field(default="", max_length=200, description="Default: the category and the place.")
    description: str = Field(default="", max_length=5000)
    org_unit: str | None = Field(default=None, max_length=64, description="Default: the reporter's own unit.")
    severity: Severity = Severity.minor
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False)
    taken_at: datetime | None = Field(default=None, description="When the report was written on the phone.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> FieldReport:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        return self


class FieldReportResult(BaseModel):
    case_id: str
    created: bool = Field(description="False: this report was received before (a resend); nothing new was made.")
    photos: list[Photo] = Field(default_factory=list)


def _form(model: type[BaseModel], fields: dict[str, str]) -> BaseModel:
    cleaned = {k: v for k, v in fields.items() if v != ""}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, json_safe(exc.errors(**ERRORS))) from None


@router.post("/api/field/reports", status_code=status.HTTP_201_CREATED)
async def field_report(
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    field: FieldDep,
    site: SiteDep,
    clock: ClockDep,
    audit: AuditDep,
    metrics: MetricsDep,
    principal: Reporter,
    request: Request,
    response: Response,
) -> FieldReportResult:
    """One-click report (一键上报) from the field app: category, description, position and photos. Idempotent by
    ``client_id``: a resend (the phone's offline queue after a lost answer) gets the first case back (200 with
    ``created: false``). Photos are checked (type by their bytes, size, EXIF) before anything is made."""
    fields, uploads = await _uploads(site.governance.reports, request)
    body = _form(FieldReport, fields)
    assert isinstance(body, FieldReport)
    unit = body.org_unit or principal.org_unit
    if unit is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "org_unit is required (you have no unit)")
    if inventory.unit(unit) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no org unit {unit!r}")
    if not in_scope(inventory, principal, unit):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"org unit {unit!r} is outside your scope")
    try:
        await check_async(uploads, site.governance.reports)
    except PhotoRejected as exc:
        metrics.field.labels("report", "photo_refused").inc()
        raise photo_refused(exc) from None
    try:
        earlier = await field.claim_report(body.client_id)
    except ReportPending:
        raise HTTPException(status.HTTP_409_CONFLICT, "this report is being received: send it again shortly",
                            headers={"Retry-After": "2"}) from None  # fmt: skip
    if earlier is not None:
        metrics.field.labels("report", "resent").inc()
        response.status_code = status.HTTP_200_OK
        found = await cases.get(earlier)
        return FieldReportResult(case_id=earlier, created=False,
                                 photos=await photo_store.list(earlier) if found else [])  # fmt: skip
    try:
        location = GeoPoint(lat=body.lat, lon=body.lon) if body.lat is not None and body.lon is not None else None
        name = inventory.unit(unit)
        title = body.title or f"{body.category} @ {name.name if name else unit}"
        case = await cases.report(title=title, category=body.category, severity=body.severity,
                                  source=Source.grid_worker, org_unit=unit, actor=field_actor(site, principal),
                                  description=body.description, location=location)  # fmt: skip
        photos = await photo_store.add(case.id, uploads, principal.actor, clock.now()) if uploads else []
    except TransitionError as exc:
        await field.report_failed(body.client_id)
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except BaseException:
        await field.report_failed(body.client_id)
        raise
    await field.report_made(body.client_id, case.id)
    metrics.field.labels("report", "created").inc()
    await audit.record(principal.actor, "case.report", case.id,
                       {**body.model_dump(mode="json"), "photos": [p.id for p in photos], "via": "field"})  # fmt: skip
    return FieldReportResult(case_id=case.id, created=True, photos=photos)


# --- tasks -----------------------------------------------------------------------------------------------
class Task(BaseModel):
    case: Case
    history: list[CaseEvent] = Field(default_factory=list)
    photos: list[Photo] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list, description="claim and/or feedback, when the caller may.")


@router.get("/api/field/tasks")
async def tasks(
    cases: CasesDep,
    inventory: InventoryDep,
    site: SiteDep,
    principal: Taker,
    done: Annotated[
        bool, Query(description="Done tasks (fed back, being checked, closed) instead of open ones.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[Case]:
    """The caller's tasks: cases dispatched to their department or (a grid worker) to a department of their grid,
    within their scope; open ones (派遣, 处置) or done ones, newest first."""
    page = await cases.page(CaseFilter(stages=DONE_TASK if done else OPEN_TASK, limit=limit,
                                       scope=task_scope(inventory, site, principal)))  # fmt: skip
    return page.items


def _task_actions(case: Case, actor: Actor) -> list[str]:
    from sharpeye.governance.flow import allowed

    return [a.value for a in allowed(case, actor) if a in (Action.claim, Action.feedback, Action.assist_feedback)]


async def _task(cases: CaseService, photo_store: PhotosDep, site: SiteConfig, principal: Principal, case: Case) -> Task:
    return Task(case=case, history=await cases.history(case.id), photos=await photo_store.list(case.id),
                actions=_task_actions(case, field_actor(site, principal)))  # fmt: skip


@router.get("/api/field/tasks/{case_id}")
async def task(
    cases: CasesDep, inventory: InventoryDep, photo_store: PhotosDep, site: SiteDep, principal: Taker, case_id: str
) -> Task:
    case = await task_case(cases, inventory, site, principal, case_id)
    return await _task(cases, photo_store, site, principal, case)


@router.get("/api/field/tasks/{case_id}/photos/{photo_id}", response_class=FileResponse)
async def task_photo(
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    site: SiteDep,
    audit: AuditDep,
    principal: Taker,
    case_id: str,
    photo_id: str,
) -> FileResponse:
    await task_case(cases, inventory, site, principal, case_id)
    found = await photo_store.get(case_id, photo_id)
    not_found_unless(found is not None and photo_store.path(found).is_file(), f"photo {photo_id!r}")
    assert found is not None
    await audit.record(principal.actor, "case.photo_download", case_id, {"photo": photo_id})
    return FileResponse(photo_store.path(found), media_type=found.media_type,
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})  # fmt: skip


class Position(BaseModel):
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Position:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        return self

    def point(self) -> GeoPoint | None:
        return GeoPoint(lat=self.lat, lon=self.lon) if self.lat is not None and self.lon is not None else None


async def _act(
    cases: CaseService, site: SiteConfig, principal: Principal, case_id: str, action: Action, args: Args
) -> None:
    try:
        await cases.act(case_id, action, field_actor(site, principal), args)
    except TransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except CaseConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except CaseNotFound:
        not_found_unless(False, f"task {case_id!r}")


@router.post("/api/field/tasks/{case_id}/claim")
async def claim(
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    site: SiteDep,
    audit: AuditDep,
    metrics: MetricsDep,
    principal: Taker,
    case_id: str,
    body: Position,
) -> Task:
    """签收: the caller takes the task (the case goes to 处置); their position, if sent, is kept in the history.
    Signing again for a task one already signed for changes nothing (a resend from the phone's queue)."""
    case = await task_case(cases, inventory, site, principal, case_id)
    if not (case.stage is Stage.handling and case.claimed_by == principal.actor):
        await _act(cases, site, principal, case_id, Action.claim, Args(position=body.point()))
        await audit.record(principal.actor, "case.claim", case_id, {**body.model_dump(), "via": "field"})
        metrics.field.labels("claim", "done").inc()
    return await _task(cases, photo_store, site, principal, await task_case(cases, inventory, site, principal, case_id))


class Feedback(Position):
    client_id: str = Field(pattern=CLIENT_ID, description="Made on the phone; a resend changes nothing.")
    note: str = Field(min_length=1, max_length=2000, description="What was done (处置结果).")

    @field_validator("note")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the feedback needs a note of what was done")
        return value


@router.post("/api/field/tasks/{case_id}/feedback")
async def feedback(
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    field: FieldDep,
    site: SiteDep,
    clock: ClockDep,
    audit: AuditDep,
    metrics: MetricsDep,
    principal: Taker,
    case_id: str,
    request: Request,
) -> Task:
    """反馈 (multipart): the result, the position and photos of the work done; the case goes to 反馈 for the centre
    to check. From a co-handling department (协办) it is that department's own feedback (the stage stays).
    Idempotent by ``client_id``."""
    fields, uploads = await _uploads(site.governance.reports, request)
    body = _form(Feedback, fields)
    assert isinstance(body, Feedback)
    await task_case(cases, inventory, site, principal, case_id)
    try:
        await check_async(uploads, site.governance.reports)
    except PhotoRejected as exc:
        metrics.field.labels("feedback", "photo_refused").inc()
        raise photo_refused(exc) from None
    key = f"feedback-{case_id}-{body.client_id}"
    try:
        earlier = await field.claim_report(key)
    except ReportPending:
        raise HTTPException(status.HTTP_409_CONFLICT, "this feedback is being received: send it again shortly",
                            headers={"Retry-After": "2"}) from None  # fmt: skip
    if earlier is None:
        case = await task_case(cases, inventory, site, principal, case_id)
        lead = case.department in task_departments(site, principal)
        action = Action.feedback if lead else Action.assist_feedback  # a co-handling department's own feedback
        try:
            await _act(cases, site, principal, case_id, action, Args(reason=body.note, position=body.point()))
            photos = await photo_store.add(case_id, uploads, principal.actor, clock.now()) if uploads else []
        except BaseException:
            await field.report_failed(key)
            raise
        await field.report_made(key, case_id)
        await audit.record(principal.actor, "case.feedback", case_id,
                           {**body.model_dump(), "photos": [p.id for p in photos], "via": "field"})  # fmt: skip
        metrics.field.labels("feedback", "done").inc()
    else:
        metrics.field.labels("feedback", "resent").inc()
    return await _task(cases, photo_store, site, principal, await task_case(cases, inventory, site, principal, case_id))


# --- patrols ---------------------------------------------------------------------------------------------
class TrackBatch(BaseModel):
    points: list[TrackPoint] = Field(max_length=500, description="GPS fixes in time order (resent ones are skipped).")


class PatrolEnd(BaseModel):
    note: str = Field(default="", max_length=2000)


class PatrolTrack(BaseModel):
    patrol: Patrol
    track: list[TrackPoint]


def _patrol_error(exc: Exception) -> HTTPException:
    if isinstance(exc, PatrolNotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, f"no patrol {exc.args[0]!r}")
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


@router.post("/api/field/patrols", status_code=status.HTTP_201_CREATED)
async def start_patrol(field: FieldDep, audit: AuditDep, metrics: MetricsDep, principal: Patroller) -> Patrol:
    """Start a 巡查 patrol; its track follows in batches."""
    patrol = await field.start(principal.username, principal.org_unit)
    await audit.record(principal.actor, "patrol.start", patrol.id)
    metrics.field.labels("patrol", "started").inc()
    return patrol


@router.post("/api/field/patrols/{patrol_id}/points")
async def patrol_points(field: FieldDep, metrics: MetricsDep, principal: Patroller, patrol_id: str,
                        body: TrackBatch) -> Patrol:  # fmt: skip
    """Add a batch of GPS fixes to one's own open patrol (out-of-range or future points refuse the batch)."""
    try:
        patrol = await field.add_points(patrol_id, principal.username, body.points)
    except (PatrolError, PatrolNotFound) as exc:
        metrics.field.labels("patrol", "points_refused").inc()
        raise _patrol_error(exc) from None
    metrics.field.labels("patrol", "points").inc(len(body.points))
    return patrol


@router.post("/api/field/patrols/{patrol_id}/end")
async def end_patrol(field: FieldDep, audit: AuditDep, principal: Patroller, patrol_id: str,
                     body: PatrolEnd) -> Patrol:  # fmt: skip
    try:
        patrol = await field.end(patrol_id, principal.username, body.note)
    except PatrolNotFound as exc:
        raise _patrol_error(exc) from None
    await audit.record(principal.actor, "patrol.end", patrol_id, {"points": str(patrol.points)})
    return patrol


@router.get("/api/field/patrols")
async def my_patrols(field: FieldDep, principal: Patroller,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[Patrol]:  # fmt: skip
    """One's own patrols, newest first."""
    return [p for p in await field.list(limit=limit * 5) if p.username == principal.username][:limit]


def _patrol_visible(inventory: DeviceInventory, principal: Principal, patrol: Patrol) -> bool:
    if principal.org_unit is None:
        return True
    return patrol.org_unit is not None and in_scope(inventory, principal, patrol.org_unit)


@router.get("/api/patrols")
async def patrols(
    field: FieldDep,
    inventory: InventoryDep,
    principal: PatrolReader,
    username: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="Started from (aware ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="... until (exclusive).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Patrol]:
    """Grid workers' patrols in the caller's scope, newest first (each with its length and last position)."""
    for when in (since, until):
        if when is not None and when.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since/until need a time zone")
    found = [p for p in await field.list(since=since, until=until, limit=limit)
             if (username is None or p.username == username) and _patrol_visible(inventory, principal, p)]  # fmt: skip
    return found[:limit]


class WorkerPosition(BaseModel):
    username: str
    org_unit: str | None
    patrol_id: str
    patrolling: bool = Field(description="True while the patrol is open.")
    position: TrackPoint


@router.get("/api/patrols/positions")
async def last_positions(
    field: FieldDep,
    inventory: InventoryDep,
    principal: PatrolReader,
    since: Annotated[datetime | None, Query(description="Patrols started from (aware ISO 8601).")] = None,
) -> list[WorkerPosition]:
    """Each grid worker's last known position (the last point of their newest patrol with a track), in scope."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since needs a time zone")
    out: dict[str, WorkerPosition] = {}
    for patrol in await field.list(since=since, limit=500):
        if patrol.username in out or patrol.last is None or not _patrol_visible(inventory, principal, patrol):
            continue
        out[patrol.username] = WorkerPosition(username=patrol.username, org_unit=patrol.org_unit, patrol_id=patrol.id,
                                              patrolling=patrol.ended_at is None, position=patrol.last)  # fmt: skip
    return sorted(out.values(), key=lambda p: p.username)


@router.get("/api/patrols/{patrol_id}")
async def patrol_track(
    field: FieldDep, inventory: InventoryDep, principal: PatrolReader, patrol_id: str
) -> PatrolTrack:
    """One patrol with its whole GPS track."""
    patrol = await field.get(patrol_id)
    not_found_unless(patrol is not None and _patrol_visible(inventory, principal, patrol), f"patrol {patrol_id!r}")
    assert patrol is not None
    return PatrolTrack(patrol=patrol, track=await field.track(patrol_id))
