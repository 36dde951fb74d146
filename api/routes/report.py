"""People's reports beyond the JSON one: a report with photos (multipart), photos on a case (upload, list,
download, each checked against the caller's scope), the 12345 hotline import with a dry run, and merge
proposals (并单) with their confirmation."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError
from sharpeye.api.body import json_safe
from sharpeye.api.deps import (
    AuditDep,
    CasesDep,
    ClockDep,
    HotlineDep,
    InventoryDep,
    PhotosDep,
    SiteDep,
    case_visible,
    in_scope,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.routes.case import CaseDetail, ReportBody, actor_of, case_detail, visible_case
from sharpeye.api.user import Principal
from sharpeye.config.governance import ReportLimits
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, GeoPoint
from sharpeye.governance.flow import TransitionError
from sharpeye.governance.hotline import ImportError_, ImportResult, parse
from sharpeye.governance.merge import MergeProposal
from sharpeye.governance.photo import Photo, PhotoRejected, PhotoStore, Upload, check_async
from sharpeye.governance.service import CaseConflict, CaseNotFound, CaseService
from sharpeye.ingest.inventory import DeviceInventory
from starlette.datastructures import UploadFile

from sharpeye.clock import Clock

ERRORS: dict[str, bool] = {"include_url": False, "include_context": False}  # the validators' exceptions are not JSON

router = APIRouter(tags=["reports"])

Reader = Annotated[Principal, Depends(require(Permission.cases_read))]
Actor_ = Annotated[Principal, Depends(require(Permission.cases_act))]

IMPORT_MAX_BYTES = 10 * 1024 * 1024


class ReportWithPhotos(BaseModel):
    case: Case
    photos: list[Photo]
    merge_proposals: list[MergeProposal] = Field(
        default_factory=list, description="Open cases of the same matter (并单 candidates), best first."
    )


def _content_length(request: Request, cap: int) -> None:
    """Refuse before reading: no declared length (411), or more than the cap (413)."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise HTTPException(status.HTTP_411_LENGTH_REQUIRED, "a Content-Length header is required")
    if int(declared) > cap:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"request is {declared} bytes: at most {cap}")


async def _uploads(limits: ReportLimits, request: Request) -> tuple[dict[str, str], list[Upload]]:
    """The text fields, the ``photos`` files and the ``voice`` file of a multipart request, within the configured
    limits."""
    _content_length(request, limits.request_max_bytes)
    fields: dict[str, str] = {}
    uploads: list[Upload] = []
    try:
        async with request.form(max_files=limits.photos_per_request + 1, max_fields=20, max_part_size=65536) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name == "photos":
                        data = await value.read(limits.photo_max_bytes + 1)
                        uploads.append(Upload(value.filename or "photo", data))
                    elif name == "voice":
                        data = await value.read(limits.voice_max_bytes + 1)
                        uploads.append(Upload(value.filename or "voice", data, "voice"))
                    else:
                        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unexpected file field {name!r}")
                else:
                    fields[name] = value
    except HTTPException:
        raise
    except Exception as exc:  # malformed multipart, too many files or fields (starlette's own limits)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unreadable form: {exc}") from None
    return fields, uploads


def photo_refused(exc: PhotoRejected) -> HTTPException:
    """The answer to a refused upload, with the reason: 413 when too large, 422 when too many files, else 415."""
    if exc.too_large:
        return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, exc.reason)
    if exc.too_many:
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.reason)
    return HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, exc.reason)


async def _store(
    photos: PhotoStore, clock: Clock, principal: Principal, case_id: str, uploads: list[Upload]
) -> list[Photo]:
    try:
        return await photos.add(case_id, uploads, principal.actor, clock.now())
    except PhotoRejected as exc:
        raise photo_refused(exc) from None


@router.post("/api/reports/form", status_code=status.HTTP_201_CREATED)
async def report_with_photos(
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    site: SiteDep,
    clock: ClockDep,
    audit: AuditDep,
    principal: Actor_,
    request: Request,
) -> ReportWithPhotos:
    """A report as a multipart form (a patrol terminal's one-click report): the fields of ``POST /api/reports``
    plus files named ``photos`` (JPEG/PNG by their bytes, size-capped). Photos are checked before the case is
    created: a bad photo refuses the whole report."""
    fields, uploads = await _uploads(site.governance.reports, request)
    try:
        body = ReportBody.model_validate(fields)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, json_safe(exc.errors(**ERRORS))) from None
    try:
        await check_async(uploads, site.governance.reports)
    except PhotoRejected as exc:
        raise photo_refused(exc) from None
    case = await _create(cases, inventory, principal, body)
    photos = await _store(photo_store, clock, principal, case.id, uploads) if uploads else []
    await audit.record(principal.actor, "case.report", case.id,
                       {**body.model_dump(mode="json"), "photos": [p.id for p in photos]})  # fmt: skip
    proposals = await visible_proposals(cases, inventory, site, principal, case.id)
    return ReportWithPhotos(case=case, photos=photos, merge_proposals=proposals)


async def _create(cases: CaseService, inventory: DeviceInventory, principal: Principal, body: ReportBody) -> Case:
    if inventory.unit(body.org_unit) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no org unit {body.org_unit!r}")
    if not in_scope(inventory, principal, body.org_unit):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"org unit {body.org_unit!r} is outside your scope")
    location = GeoPoint(lat=body.lat, lon=body.lon) if body.lat is not None and body.lon is not None else None
    try:
        return await cases.report(title=body.title, category=body.category, severity=body.severity,
                                  source=body.source, org_unit=body.org_unit, actor=actor_of(principal),
                                  description=body.description, location=location)  # fmt: skip
    except TransitionError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


@router.post("/api/cases/{case_id}/photos", status_code=status.HTTP_201_CREATED)
async def add_photos(
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    site: SiteDep,
    clock: ClockDep,
    audit: AuditDep,
    principal: Actor_,
    case_id: str,
    request: Request,
) -> list[Photo]:
    """Attach photos (multipart files named ``photos``) to a case in the caller's scope."""
    case = await visible_case(cases, inventory, principal, case_id)
    if case.stage.terminal:
        raise HTTPException(status.HTTP_409_CONFLICT, f"case {case_id} is {case.stage}: no more photos")
    _, uploads = await _uploads(site.governance.reports, request)
    if not uploads:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no files named 'photos'")
    photos = await _store(photo_store, clock, principal, case_id, uploads)
    await audit.record(principal.actor, "case.photos", case_id, {"photos": [p.id for p in photos]})
    return photos


@router.get("/api/cases/{case_id}/photos")
async def list_photos(
    cases: CasesDep, inventory: InventoryDep, photo_store: PhotosDep, principal: Reader, case_id: str
) -> list[Photo]:
    await visible_case(cases, inventory, principal, case_id)
    return await photo_store.list(case_id)


@router.get("/api/cases/{case_id}/photos/{photo_id}", response_class=FileResponse)
async def photo(
    cases: CasesDep,
    inventory: InventoryDep,
    store: PhotosDep,
    audit: AuditDep,
    principal: Reader,
    case_id: str,
    photo_id: str,
) -> FileResponse:
    """The photo's bytes, for callers who may see the case. Every download is audited."""
    await visible_case(cases, inventory, principal, case_id)
    found = await store.get(case_id, photo_id)
    not_found_unless(found is not None and store.path(found).is_file(), f"photo {photo_id!r}")
    assert found is not None
    await audit.record(principal.actor, "case.photo_download", case_id, {"photo": photo_id})
    return FileResponse(store.path(found), media_type=found.media_type,
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})  # fmt: skip


@router.post("/api/reports/import")
async def import_hotline(
    hotline: HotlineDep,
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Actor_,
    request: Request,
    format: Annotated[Literal["csv", "json"], Query(description="The body's format.")],
    dry_run: Annotated[bool, Query(description="Only show what would be created and what is rejected.")] = True,
) -> ImportResult:
    """12345 hotline import: the body is the export (CSV with a header row, or JSON). Each ticket becomes a
    reported case; every rejected row comes back with its reason. ``dry_run`` (the default) writes nothing."""
    _content_length(request, IMPORT_MAX_BYTES)
    data = await request.body()
    try:
        rows = parse(data, format)
    except ImportError_ as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    result = await hotline.import_tickets(rows, actor_of(principal), dry_run=dry_run,
                                          in_scope=lambda unit: in_scope(inventory, principal, unit))  # fmt: skip
    if not dry_run:
        summary = {"created": [p.case_id for p in result.created], "rejected": len(result.rejected)}
        await audit.record(principal.actor, "case.import", "hotline", summary)
    return result


@router.get("/api/cases/{case_id}/merge-proposals")
async def merge_proposals(
    cases: CasesDep, inventory: InventoryDep, site: SiteDep, principal: Reader, case_id: str
) -> list[MergeProposal]:
    """Open cases of the same matter (same category, nearby, close in time) this report could fold into."""
    await visible_case(cases, inventory, principal, case_id)
    return await visible_proposals(cases, inventory, site, principal, case_id)


async def visible_proposals(
    cases: CaseService, inventory: DeviceInventory, site: SiteConfig, principal: Principal, case_id: str
) -> list[MergeProposal]:
    """Merge proposals whose target the caller may see."""
    found = await cases.merge_proposals(case_id, site.governance.merge)
    visible = []
    for proposal in found:
        target = await cases.get(proposal.target)
        if target is not None and case_visible(inventory, principal, target):
            visible.append(proposal)
    return visible


class MergeBody(BaseModel):
    target: str = Field(min_length=1, max_length=40, description="The case this one folds into.")
    note: str = Field(default="", max_length=2000, description="Why (recorded in both histories).")


@router.post("/api/cases/{case_id}/merge")
async def merge(
    cases: CasesDep, inventory: InventoryDep, audit: AuditDep, principal: Actor_, case_id: str, body: MergeBody
) -> CaseDetail:
    """Confirm a merge (并单): this case ends as merged and its alarms move into the target."""
    await visible_case(cases, inventory, principal, case_id)
    await visible_case(cases, inventory, principal, body.target)
    try:
        await cases.merge(case_id, actor_of(principal), body.target, body.note)
    except TransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except CaseConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except CaseNotFound:
        not_found_unless(False, f"case {case_id!r}")
    await audit.record(principal.actor, "case.merge", case_id, body.model_dump())
    return await case_detail(cases, principal, await visible_case(cases, inventory, principal, case_id))
