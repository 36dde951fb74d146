"""Alarms: list with filters, detail with history, operator actions; incidents; silences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field
from sharpeye.alarms.alarm import Alarm, AlarmState, AlarmTransition, Incident
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.silence import MatchKey, Silence, SilenceSpec
from sharpeye.alarms.store import AlarmNotFound, AlarmStore, OperatorAction
from sharpeye.api.deps import (
    AlarmsDep,
    AuditDep,
    CasesDep,
    ClockDep,
    EngineDep,
    InventoryDep,
    in_scope,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.services import AuditLog
from sharpeye.api.user import Principal
from sharpeye.config.rule import Severity
from sharpeye.ingest.inventory import DeviceInventory

from sharpeye.clock import Clock

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
    alarms: AlarmsDep,
    inventory: InventoryDep,
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
            and (org_unit is None or org_unit in inventory.ancestors(alarm.org_unit))
            and in_scope(inventory, principal, alarm.org_unit)
        )

    items, total = await alarms.page(
        match=match, limit=limit, offset=offset, open_only=open_only, since=since, until=until
    )
    return AlarmPage(items=items, total=total)


@router.get("/api/alarms/{alarm_id}")
async def get_alarm(
    alarms: AlarmsDep, inventory: InventoryDep, cases: CasesDep, principal: Reader, alarm_id: str
) -> AlarmDetail:
    alarm = await alarms.get(alarm_id)
    not_found_unless(alarm is not None and in_scope(inventory, principal, alarm.org_unit), f"alarm {alarm_id!r}")
    assert alarm is not None
    incident = await alarms.incident(alarm.incident) if alarm.incident else None
    return AlarmDetail(
        alarm=alarm,
        history=await alarms.history(alarm_id),
        case_id=await cases.case_for_alarm(alarm_id),
        incident=incident,
    )


@dataclass(frozen=True)
class AlarmActions:
    """What an operator action needs: the store, the inventory (scope), the clock and the audit log."""

    alarms: AlarmStore
    inventory: DeviceInventory
    clock: Clock
    audit: AuditLog

    async def act(self, principal: Principal, alarm_id: str, action: OperatorAction, note: str) -> ActionResult:
        current = await self.alarms.get(alarm_id)
        visible = current is not None and in_scope(self.inventory, principal, current.org_unit)
        not_found_unless(visible, f"alarm {alarm_id!r}")
        try:
            result = await self.alarms.act(alarm_id, action, principal.actor, self.clock.now(), note)
        except AlarmNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm {alarm_id!r}") from None
        alarm = await self.alarms.get(alarm_id)
        assert alarm is not None
        await self.audit.record(principal.actor, f"alarm.{action}", alarm_id, {"outcome": result.outcome, "note": note})
        return ActionResult(outcome=result.outcome, alarm=alarm)


def alarm_actions(alarms: AlarmsDep, inventory: InventoryDep, clock: ClockDep, audit: AuditDep) -> AlarmActions:
    return AlarmActions(alarms, inventory, clock, audit)


ActionsDep = Annotated[AlarmActions, Depends(alarm_actions)]


@router.post("/api/alarms/{alarm_id}/acknowledge")
async def acknowledge(
    actions: ActionsDep, principal: Actor, alarm_id: str, body: ActionBody | None = None
) -> ActionResult:
    return await actions.act(principal, alarm_id, "acknowledge", body.note if body else "")


@router.post("/api/alarms/{alarm_id}/clear")
async def clear(actions: ActionsDep, principal: Actor, alarm_id: str, body: ActionBody | None = None) -> ActionResult:
    return await actions.act(principal, alarm_id, "clear", body.note if body else "")


@router.post("/api/alarms/{alarm_id}/comment")
async def comment(actions: ActionsDep, principal: Actor, alarm_id: str, body: ActionBody) -> ActionResult:
    if not body.note.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a comment needs a note")
    return await actions.act(principal, alarm_id, "comment", body.note)


@router.get("/api/incidents/{incident_id}")
async def get_incident(alarms: AlarmsDep, inventory: InventoryDep, principal: Reader, incident_id: str) -> Incident:
    incident = await alarms.incident(incident_id)
    visible = incident is not None and in_scope(inventory, principal, incident.org_unit)
    not_found_unless(visible, f"incident {incident_id!r}")
    assert incident is not None
    return incident


def silence_in_scope(inventory: DeviceInventory, principal: Principal, matchers: Mapping[MatchKey, str]) -> bool:
    """A user scoped to an org unit may see and set only silences confined to it: naming an ``org_unit`` or a
    ``device_id`` (or both) within their scope. Unscoped users may see and set any."""
    if principal.org_unit is None:
        return True
    unit, device_id = matchers.get("org_unit"), matchers.get("device_id")
    if unit is None and device_id is None:
        return False
    if unit is not None and (inventory.unit(unit) is None or not in_scope(inventory, principal, unit)):
        return False
    device = inventory.get(device_id) if device_id is not None else None
    return device_id is None or (device is not None and in_scope(inventory, principal, device.grid))


def _check_spec(inventory: DeviceInventory, principal: Principal, spec: SilenceSpec) -> None:
    if not silence_in_scope(inventory, principal, spec.matchers):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a silence must name an org_unit or device_id within your scope ({principal.org_unit})",
        )


async def _visible_silence(
    engine: AlarmEngine, inventory: DeviceInventory, principal: Principal, silence_id: str
) -> Silence:
    silence = await engine.silences.get(silence_id)
    visible = silence is not None and silence_in_scope(inventory, principal, silence.matchers)
    not_found_unless(visible, f"silence {silence_id!r}")
    assert silence is not None
    return silence


@router.get("/api/silences")
async def list_silences(engine: EngineDep, inventory: InventoryDep, principal: Reader) -> list[Silence]:
    """Silences and maintenance windows; a scoped user sees those confined to their scope."""
    return [s for s in await engine.silences.refresh() if silence_in_scope(inventory, principal, s.matchers)]


@router.post("/api/silences", status_code=status.HTTP_201_CREATED)
async def create_silence(
    engine: EngineDep, inventory: InventoryDep, clock: ClockDep, audit: AuditDep, principal: Actor, spec: SilenceSpec
) -> Silence:
    """Silence matching alarms for a window. A scoped user's silence must be confined to their scope (403)."""
    _check_spec(inventory, principal, spec)
    silence = await engine.silences.create(spec, principal.actor, clock.now())
    await audit.record(principal.actor, "silence.create", silence.id, silence.model_dump(mode="json"))
    return silence


@router.put("/api/silences/{silence_id}")
async def update_silence(
    engine: EngineDep, inventory: InventoryDep, audit: AuditDep, principal: Actor, silence_id: str, spec: SilenceSpec
) -> Silence:
    """Change a silence's matchers, window or reason; audited with before and after. Scoped users: the silence
    and the change must be within their scope."""
    before = await _visible_silence(engine, inventory, principal, silence_id)
    _check_spec(inventory, principal, spec)
    silence = await engine.silences.update(silence_id, spec)
    if silence is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    change = {"before": before.model_dump(mode="json"), "after": silence.model_dump(mode="json")}
    await audit.record(principal.actor, "silence.update", silence_id, change)
    await engine.sweep()
    return silence


@router.delete("/api/silences/{silence_id}")
async def expire_silence(
    engine: EngineDep, inventory: InventoryDep, clock: ClockDep, audit: AuditDep, principal: Actor, silence_id: str
) -> Silence:
    """End a silence now; it stays on record. Alarms it hid that are still active are notified."""
    await _visible_silence(engine, inventory, principal, silence_id)
    silence = await engine.silences.expire(silence_id, clock.now())
    if silence is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    await audit.record(principal.actor, "silence.expire", silence_id, silence.model_dump(mode="json"))
    await engine.sweep()
    return silence
