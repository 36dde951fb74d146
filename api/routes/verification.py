"""研判: alarms waiting for an operator's verdict, the verdicts, and the false-alarm statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field
from sharpeye.api.deps import (
    AlarmsDep,
    ClockDep,
    InventoryDep,
    SiteDep,
    VerificationDep,
    in_scope,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.governance.verification import (
    FalseAlarmCount,
    GroupBy,
    PrecisionBy,
    PrecisionCount,
    Verdict,
    VerificationError,
    Waiting,
    default_window,
)

from sharpeye.audit import entry as audit_entry

router = APIRouter(tags=["verification"])

Reader = Annotated[Principal, Depends(require(Permission.alarms_read))]
Actor = Annotated[Principal, Depends(require(Permission.alarms_act))]


class VerdictBody(BaseModel):
    verdict: Verdict = Field(description="confirm (确认: the case opens), false_alarm (误报), review (转人工复核).")
    reason: str = Field(default="", max_length=100, description="false_alarm: one of governance.false_alarm_reasons.")
    note: str = Field(default="", max_length=1000, description="The operator's note (goes into the case).")


class VerdictResult(BaseModel):
    verdict: Verdict
    case_pending: bool = Field(default=False, description=(
        "confirm: the verdict is recorded and the alarm intake is opening its case (usually within milliseconds; a "
        "hub stopped meanwhile opens it when it is back). The case is announced on the live alarm stream "
        "(/api/ws/alarms, type case_opened, with the case id) and shown as case_id by GET /api/alarms/{id}."))


class FalseAlarmStats(BaseModel):
    by: GroupBy
    since: datetime
    until: datetime
    total: int
    items: list[FalseAlarmCount]
    reasons: list[str] = Field(description="The configured false-alarm reasons (for the verdict form).")


class PrecisionStats(BaseModel):
    by: PrecisionBy
    since: datetime
    until: datetime
    confirmed: int
    false_alarms: int
    precision: float | None = Field(description="Over all items; None when nothing was judged.")
    items: list[PrecisionCount]


@router.get("/api/verifications")
async def waiting(
    verification: VerificationDep,
    inventory: InventoryDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many (the oldest).")] = 500,
) -> list[Waiting]:
    """Alarms waiting for a verdict in the caller's scope, oldest first; ``stage`` says whose turn it is."""
    return await verification.waiting(limit, match=lambda alarm: in_scope(inventory, principal, alarm.org_unit))


@router.post("/api/alarms/{alarm_id}/verdict")
async def give_verdict(
    verification: VerificationDep,
    alarms: AlarmsDep,
    inventory: InventoryDep,
    principal: Actor,
    alarm_id: str,
    body: VerdictBody,
) -> VerdictResult:
    # A scoped caller's alarm is read first (not theirs: 404, as a missing one). An unscoped caller may judge any
    # alarm: the verdict is then one script call, and only a refused one asks whether the alarm exists (404).
    alarm = None
    if principal.org_unit is not None:
        alarm = await alarms.get(alarm_id)
        not_found_unless(alarm is not None and in_scope(inventory, principal, alarm.org_unit), f"alarm {alarm_id!r}")
    # the audit entry goes with the alarm's record, in its round trip
    entry = audit_entry(principal.actor, f"alarm.verdict.{body.verdict}", alarm_id,
                        {"reason": body.reason, "note": body.note})  # fmt: skip
    try:
        outcome = await verification.verdict(alarm_id, body.verdict, principal.actor, principal.role,
                                             reason=body.reason, note=body.note, alarm=alarm, audit=entry)  # fmt: skip
    except VerificationError as exc:
        if exc.conflict and alarm is None:
            not_found_unless(await alarms.exists(alarm_id), f"alarm {alarm_id!r}")
        code = (status.HTTP_503_SERVICE_UNAVAILABLE if exc.unavailable else status.HTTP_409_CONFLICT
                if exc.conflict else status.HTTP_422_UNPROCESSABLE_CONTENT)  # fmt: skip
        raise HTTPException(code, str(exc)) from None
    return VerdictResult(verdict=outcome.verdict, case_pending=outcome.case_pending)


@router.get("/api/stats/false-alarms")
async def false_alarms(
    verification: VerificationDep,
    inventory: InventoryDep,
    site: SiteDep,
    clock: ClockDep,
    principal: Reader,
    by: Annotated[GroupBy, Query(description="camera, rule, zone, hour (local), site (org unit), reason.")] = "camera",
    since: Annotated[datetime | None, Query(description="Raised at or after (aware ISO 8601); default 30 days")] = None,
    until: Annotated[datetime | None, Query(description="Raised before (aware ISO 8601); default now.")] = None,
) -> FalseAlarmStats:
    """False alarms (误报) counted so an integrator sees which camera, rule or zone to fix."""
    start, end = _window(clock.now(), since, until)
    units = inventory.units_below(principal.org_unit) if principal.org_unit else None
    items = await verification.false_alarm_stats(by, start, end, units)
    return FalseAlarmStats(by=by, since=start, until=end, total=sum(i.count for i in items), items=items,
                           reasons=list(site.governance.false_alarm_reasons))  # fmt: skip


@router.get("/api/stats/precision")
async def precision(
    verification: VerificationDep,
    inventory: InventoryDep,
    clock: ClockDep,
    principal: Reader,
    by: Annotated[PrecisionBy, Query(description="camera, rule or zone (device/zone).")] = "camera",
    since: Annotated[datetime | None, Query(description="Raised at or after (aware ISO 8601); default 30 days")] = None,
    until: Annotated[datetime | None, Query(description="Raised before (aware ISO 8601); default now.")] = None,
) -> PrecisionStats:
    """The operators' final verdicts (研判) per camera, rule or zone: confirmed, false alarms and the precision
    (confirmed / (confirmed + false)), least precise first. Verdicts are recorded by the alarm intake just after they
    are given (a second or so)."""
    start, end = _window(clock.now(), since, until)
    units = inventory.units_below(principal.org_unit) if principal.org_unit else None
    items = await verification.precision_stats(by, start, end, units)
    confirmed = sum(i.confirmed for i in items)
    false = sum(i.false_alarms for i in items)
    return PrecisionStats(by=by, since=start, until=end, confirmed=confirmed, false_alarms=false,
                          precision=round(confirmed / (confirmed + false), 4) if confirmed + false else None,
                          items=items)  # fmt: skip


def _window(now: datetime, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    for when in (since, until):
        if when is not None and when.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since/until need a time zone")
    start, end = default_window(now)
    return since or start, until or end
