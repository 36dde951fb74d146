"""Alarms: list with filters, detail with history, operator actions; incidents; silences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field
from sharpeye.alarms.alarm import Alarm, AlarmState, AlarmTransition, Incident
from sharpeye.alarms.silence import Silence, SilenceSpec
from sharpeye.alarms.store import AlarmNotFound, OperatorAction
from sharpeye.api.deps import HubDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.config.rule import Severity

from sharpeye.audit import record

router = APIRouter(tags=["alarms"])

Reader = Annotated[Principal, Depends(require(Permission.alarms_read))]
Actor = Annotated[Principal, Depends(require(Permission.alarms_act))]


class AlarmPage(BaseModel):
    items: list[Alarm]
    total: int = Field(description="Alarms changed in the time range searched (before the other filters).")


class AlarmDetail(BaseModel):
    alarm: Alarm
    history: list[AlarmTransition]
    case_id: str | None = None
    incident: Incident | None = None


class ActionBody(BaseModel):
    note: str = Field(default="", max_length=1000, description="Comment or reason.")


class ActionResult(BaseModel):
    outcome: str
    alarm: Alarm


@router.get("/api/alarms")
async def list_alarms(
    hub: HubDep,
    principal: Reader,
    state: Annotated[list[AlarmState] | None, Query(description="Only these states.")] = None,
    severity: Annotated[list[Severity] | None, Query(description="Only these severities.")] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    org_unit: Annotated[str | None, Query(max_length=64, description="This org unit and everything below.")] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="Changed at or after (aware ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Changed at or before (aware ISO 8601).")] = None,
    open_only: Annotated[bool, Query(description="Only alarms not yet cleared.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AlarmPage:
    for when in (since, until):
        if when is not None and when.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since/until need a time zone")
    states, severities = set(state or ()), set(severity or ())

    def match(alarm: Alarm) -> bool:
        return (
            (not states or alarm.state in states)
            and (not severities or alarm.severity in severities)
            and (site is None or alarm.site == site)
            and (device is None or alarm.device_id == device)
            and (org_unit is None or org_unit in hub.inventory.ancestors(alarm.org_unit))
            and in_scope(hub, principal, alarm.org_unit)
        )

    items, total = await hub.alarm_store.page(
        match=match, limit=limit, offset=offset, open_only=open_only, since=since, until=until
    )
    return AlarmPage(items=items, total=total)


@router.get("/api/alarms/{alarm_id}")
async def get_alarm(hub: HubDep, principal: Reader, alarm_id: str) -> AlarmDetail:
    alarm = await hub.alarm_store.get(alarm_id)
    not_found_unless(alarm is not None and in_scope(hub, principal, alarm.org_unit), f"alarm {alarm_id!r}")
    assert alarm is not None
    incident = await hub.alarm_store.incident(alarm.incident) if alarm.incident else None
    return AlarmDetail(
        alarm=alarm,
        history=await hub.alarm_store.history(alarm_id),
        case_id=await hub.cases.case_for_alarm(alarm_id),
        incident=incident,
    )


async def _act(hub: HubDep, principal: Principal, alarm_id: str, action: OperatorAction, note: str) -> ActionResult:
    current = await hub.alarm_store.get(alarm_id)
    not_found_unless(current is not None and in_scope(hub, principal, current.org_unit), f"alarm {alarm_id!r}")
    try:
        result = await hub.alarm_store.act(alarm_id, action, principal.actor, hub.clock.now(), note)
    except AlarmNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm {alarm_id!r}") from None
    alarm = await hub.alarm_store.get(alarm_id)
    assert alarm is not None
    await record(
        hub.redis, hub.keys, principal.actor, f"alarm.{action}", alarm_id, {"outcome": result.outcome, "note": note}
    )
    return ActionResult(outcome=result.outcome, alarm=alarm)


@router.post("/api/alarms/{alarm_id}/acknowledge")
async def acknowledge(hub: HubDep, principal: Actor, alarm_id: str, body: ActionBody | None = None) -> ActionResult:
    return await _act(hub, principal, alarm_id, "acknowledge", body.note if body else "")


@router.post("/api/alarms/{alarm_id}/clear")
async def clear(hub: HubDep, principal: Actor, alarm_id: str, body: ActionBody | None = None) -> ActionResult:
    return await _act(hub, principal, alarm_id, "clear", body.note if body else "")


@router.post("/api/alarms/{alarm_id}/comment")
async def comment(hub: HubDep, principal: Actor, alarm_id: str, body: ActionBody) -> ActionResult:
    if not body.note.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a comment needs a note")
    return await _act(hub, principal, alarm_id, "comment", body.note)


@router.get("/api/incidents/{incident_id}")
async def get_incident(hub: HubDep, principal: Reader, incident_id: str) -> Incident:
    incident = await hub.alarm_store.incident(incident_id)
    visible = incident is not None and in_scope(hub, principal, incident.org_unit)
    not_found_unless(visible, f"incident {incident_id!r}")
    assert incident is not None
    return incident


@router.get("/api/silences")
async def list_silences(hub: HubDep, _: Reader) -> list[Silence]:
    return await hub.engine.silences.refresh()


@router.post("/api/silences", status_code=status.HTTP_201_CREATED)
async def create_silence(hub: HubDep, principal: Actor, spec: SilenceSpec) -> Silence:
    silence = await hub.engine.silences.create(spec, principal.actor, hub.clock.now())
    await record(hub.redis, hub.keys, principal.actor, "silence.create", silence.id, silence.model_dump(mode="json"))
    return silence


@router.put("/api/silences/{silence_id}")
async def update_silence(hub: HubDep, principal: Actor, silence_id: str, spec: SilenceSpec) -> Silence:
    """Change a silence's matchers, window or reason; audited with before and after."""
    before = await hub.engine.silences.get(silence_id)
    silence = await hub.engine.silences.update(silence_id, spec)
    if silence is None or before is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    await record(hub.redis, hub.keys, principal.actor, "silence.update", silence_id,
                 {"before": before.model_dump(mode="json"), "after": silence.model_dump(mode="json")})  # fmt: skip
    await hub.engine.sweep()
    return silence


@router.delete("/api/silences/{silence_id}")
async def expire_silence(hub: HubDep, principal: Actor, silence_id: str) -> Silence:
    """End a silence now; it stays on record. Alarms it hid that are still active are notified."""
    silence = await hub.engine.silences.expire(silence_id, hub.clock.now())
    if silence is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    await record(hub.redis, hub.keys, principal.actor, "silence.expire", silence_id, silence.model_dump(mode="json"))
    await hub.engine.sweep()
    return silence
