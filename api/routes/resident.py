"""The residents' public report page's API (no account): a challenge (one-time code by SMS, else a captcha), the
report with photos and position, a receipt number to follow the case, and the rating after closing (回访/评价).

Every route here is public and rate-limited (per phone number and per address, in Redis); refusals name the reason.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, model_validator
from sharpeye.api.deps import (
    PUBLIC,
    AuditDep,
    CasesDep,
    ClockDep,
    InventoryDep,
    MetricsDep,
    PhotosDep,
    ResidentsDep,
    SiteDep,
)
from sharpeye.api.routes.field import _form
from sharpeye.api.routes.report import _uploads, photo_refused
from sharpeye.config.org import Level
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import GeoPoint, Satisfaction, Source, Stage
from sharpeye.governance.flow import EVENT_LABELS, Actor, TransitionError
from sharpeye.governance.photo import PhotoRejected, check_async
from sharpeye.governance.resident import (
    PHONE,
    ChallengeFailed,
    RateLimited,
    ResidentStore,
    SmsFailed,
    mask,
    shown_receipt,
)
from sharpeye.governance.service import CaseConflict

from sharpeye.role import Role

router = APIRouter(tags=["residents"], dependencies=[PUBLIC])

PHONE_PATTERN = PHONE.pattern


def _enabled(site: SiteConfig) -> None:
    if not site.governance.residents.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the residents' report page is not enabled here")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limited(exc: RateLimited) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": str(exc.retry_after_s)})


class Unit(BaseModel):
    id: str
    name: str


class PublicConfig(BaseModel):
    sms: bool = Field(description="True: a one-time code is sent by SMS; false: an image captcha is shown.")
    categories: list[str]
    units: list[Unit] = Field(description="The grids a report may name (where the matter is).")
    photo_max_bytes: int
    photos_per_request: int


@router.get("/api/public/config")
async def public_config(site: SiteDep, residents: ResidentsDep) -> PublicConfig:
    """What the residents' page offers: the categories, the grids, and how the phone number is proven."""
    _enabled(site)
    units = [Unit(id=u.id, name=u.name) for u, _ in site.org.walk() if u.level is Level.grid]
    limits = site.governance.reports
    categories = sorted({c for d in site.departments for c in d.categories})
    return PublicConfig(sms=residents.sms is not None, categories=categories, units=units,
                        photo_max_bytes=limits.photo_max_bytes, photos_per_request=limits.photos_per_request)


class ChallengeRequest(BaseModel):
    phone: str = Field(pattern=PHONE_PATTERN, description="A mainland mobile number (11 digits).")


class ChallengeAnswer(BaseModel):
    id: str = Field(description="Send it back with the answer.")
    kind: str = Field(description="sms: a code was sent to the phone; captcha: type the letters of the image.")
    image: str | None = Field(default=None, description="The captcha, a data: URL (PNG).")
    expires_in_s: int


@router.post("/api/public/challenges", status_code=status.HTTP_201_CREATED)
async def challenge(
    site: SiteDep, residents: ResidentsDep, audit: AuditDep, metrics: MetricsDep, request: Request,
    body: ChallengeRequest,
) -> ChallengeAnswer:
    """A one-time code to the phone (SMS uplink configured) or a captcha; valid once, for ``code_ttl_s``."""
    _enabled(site)
    try:
        made = await residents.challenge(body.phone, _address(request))
    except RateLimited as exc:
        metrics.field.labels("resident", "rate_limited").inc()
        raise _limited(exc) from None
    except SmsFailed as exc:
        metrics.field.labels("resident", "sms_failed").inc()
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"the SMS gateway did not send the code: {exc}") from None
    metrics.field.labels("resident", f"challenge_{made.kind}").inc()
    await audit.record(f"resident:{mask(body.phone)}", "resident.challenge", made.kind)
    return ChallengeAnswer(id=made.id, kind=made.kind, image=made.image, expires_in_s=made.expires_in_s)


class ResidentReport(BaseModel):
    phone: str = Field(pattern=PHONE_PATTERN)
    challenge_id: str = Field(min_length=8, max_length=64)
    answer: str = Field(min_length=1, max_length=16, description="The SMS code or the captcha's letters.")
    category: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=2000)
    org_unit: str = Field(min_length=1, max_length=64, description="The grid where the matter is.")
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)

    @model_validator(mode="after")
    def _both_or_neither(self) -> ResidentReport:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        return self


class Receipt(BaseModel):
    receipt: str = Field(description="Keep it: it is the only way to follow the case and rate it.")
    case_id: str


RESIDENT = Role.operator  # the role the flow records for a resident's report (they hold no account)


@router.post("/api/public/reports", status_code=status.HTTP_201_CREATED)
async def resident_report(
    site: SiteDep,
    residents: ResidentsDep,
    cases: CasesDep,
    inventory: InventoryDep,
    photo_store: PhotosDep,
    clock: ClockDep,
    audit: AuditDep,
    metrics: MetricsDep,
    request: Request,
) -> Receipt:
    """A resident's report (multipart, photos in ``photos``): the phone number proven by the challenge's answer.
    Answers a receipt number to follow the case."""
    _enabled(site)
    fields, uploads = await _uploads(site.governance.reports, request)
    body = _form(ResidentReport, fields)
    assert isinstance(body, ResidentReport)
    known = {c for d in site.departments for c in d.categories}
    if body.category not in known:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no category {body.category!r}")
    unit = inventory.unit(body.org_unit)
    if unit is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no grid {body.org_unit!r}")
    try:
        await check_async(uploads, site.governance.reports)
    except PhotoRejected as exc:
        metrics.field.labels("resident", "photo_refused").inc()
        raise photo_refused(exc) from None
    try:
        await residents.verify(body.challenge_id, body.phone, body.answer)
        await residents.limit_reports(body.phone)
    except ChallengeFailed as exc:
        metrics.field.labels("resident", "challenge_failed").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except RateLimited as exc:
        metrics.field.labels("resident", "rate_limited").inc()
        raise _limited(exc) from None
    location = GeoPoint(lat=body.lat, lon=body.lon) if body.lat is not None and body.lon is not None else None
    actor = Actor(f"resident:{mask(body.phone)}", RESIDENT)
    title = body.description.strip().splitlines()[0][:60] or body.category
    try:
        case = await cases.report(title=title, category=body.category, severity=Severity.minor,
                                  source=Source.resident, org_unit=body.org_unit, actor=actor,
                                  description=f"{body.description}\n联系电话：{body.phone}（群众上报）",
                                  location=location)  # fmt: skip
    except TransitionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if uploads:
        await photo_store.add(case.id, uploads, actor.id, clock.now())
    receipt = await residents.issue_receipt(case.id, body.phone)
    await audit.record(actor.id, "case.report", case.id, {"via": "resident", "photos": str(len(uploads))})
    metrics.field.labels("resident", "report").inc()
    return Receipt(receipt=shown_receipt(receipt), case_id=case.id)


class PublicEvent(BaseModel):
    at: datetime
    action: str
    label: str


class PublicCase(BaseModel):
    """What a receipt shows: the case's progress, never who handled it or other reporters' details."""

    case_id: str
    title: str
    category: str
    stage: Stage
    stage_label: str
    created_at: datetime
    closed_at: datetime | None
    satisfaction: Satisfaction | None
    may_rate: bool
    progress: list[PublicEvent]


async def _receipt_case(
    residents: ResidentStore, cases: CasesDep, metrics: MetricsDep, request: Request, receipt: str
) -> str:
    try:
        await residents.limit_lookups(_address(request))
    except RateLimited as exc:
        metrics.field.labels("resident", "rate_limited").inc()
        raise _limited(exc) from None
    case_id = await residents.case_of(receipt)
    if case_id is None or await cases.get(case_id) is None:
        metrics.field.labels("resident", "receipt_refused").inc()
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no case has this receipt number: check what you typed")
    return case_id


_SHOWN = {"report", "accept", "dispatch", "claim", "feedback", "pass_check", "cancel", "merge", "rate"}


@router.get("/api/public/receipts/{receipt}")
async def receipt_case(
    site: SiteDep, residents: ResidentsDep, cases: CasesDep, metrics: MetricsDep, request: Request, receipt: str
) -> PublicCase:
    """The progress of the case of a receipt number; an unknown or forged number is refused."""
    _enabled(site)
    case_id = await _receipt_case(residents, cases, metrics, request, receipt)
    case = await cases.get(case_id)
    assert case is not None
    history = [PublicEvent(at=e.at, action=e.action, label=EVENT_LABELS[e.action]["zh"] if e.action in EVENT_LABELS
                           else e.action)
               for e in await cases.history(case_id) if e.action in _SHOWN]  # fmt: skip
    return PublicCase(case_id=case.id, title=case.title, category=case.category, stage=case.stage,
                      stage_label=case.stage.label_zh, created_at=case.created_at, closed_at=case.closed_at,
                      satisfaction=case.satisfaction,
                      may_rate=case.stage is Stage.closed and case.satisfaction is None, progress=history)  # fmt: skip


class Rating(BaseModel):
    satisfaction: Satisfaction = Field(description="satisfied (满意), basic (基本满意) or unsatisfied (不满意).")
    comment: str = Field(default="", max_length=500)


@router.post("/api/public/receipts/{receipt}/rating")
async def rate(
    site: SiteDep,
    residents: ResidentsDep,
    cases: CasesDep,
    audit: AuditDep,
    metrics: MetricsDep,
    request: Request,
    receipt: str,
    body: Rating,
) -> PublicCase:
    """回访/评价: the reporter rates the closed case, once; 满意率 in the statistics counts it."""
    _enabled(site)
    case_id = await _receipt_case(residents, cases, metrics, request, receipt)
    try:
        await cases.rate(case_id, body.satisfaction, body.comment, "resident")
    except (TransitionError, CaseConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await audit.record("resident", "case.rate", case_id, body.model_dump(mode="json"))
    metrics.field.labels("resident", "rating").inc()
    return await receipt_case(site, residents, cases, metrics, request, receipt)
