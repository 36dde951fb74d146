"""Alarms: list, detail with history, operator actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from alarms.alarm import Alarm, AlarmState, AlarmTransition
from alarms.store import AlarmNotFound, OperatorAction
from api.deps import HubDep, require
from api.permission import Permission
from api.user import Principal

router = APIRouter(prefix="/api/alarms", tags=["alarms"])

Reader = Annotated[Principal, Depends(require(Permission.alarms_read))]
Actor = Annotated[Principal, Depends(require(Permission.alarms_act))]


class AlarmPage(BaseModel):
    items: list[Alarm]
    total: int = Field(description="Alarms in the index searched (before state filtering).")


class AlarmDetail(BaseModel):
    alarm: Alarm
    history: list[AlarmTransition]
    case_id: str | None = None


class ActionBody(BaseModel):
    note: str = Field(default="", max_length=1000, description="Comment or reason.")


class ActionResult(BaseModel):
    outcome: str
    alarm: Alarm


@router.get("")
async def list_alarms(
    hub: HubDep,
    _: Reader,
    state: Annotated[list[AlarmState] | None, Query(description="Only these states.")] = None,
    open_only: Annotated[bool, Query(description="Only alarms not yet cleared.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlarmPage:
    items, total = await hub.alarm_store.page(
        states=set(state) if state else None, limit=limit, offset=offset, open_only=open_only
    )
    return AlarmPage(items=items, total=total)


@router.get("/{alarm_id}")
async def get_alarm(hub: HubDep, _: Reader, alarm_id: str) -> AlarmDetail:
    alarm = await hub.alarm_store.get(alarm_id)
    if alarm is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm {alarm_id!r}")
    return AlarmDetail(
        alarm=alarm, history=await hub.alarm_store.history(alarm_id), case_id=await hub.cases.case_for_alarm(alarm_id)
    )


async def _act(hub: HubDep, principal: Principal, alarm_id: str, action: OperatorAction, note: str) -> ActionResult:
    try:
        result = await hub.alarm_store.act(alarm_id, action, principal.actor, hub.clock.now(), note)
    except AlarmNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm {alarm_id!r}") from None
    alarm = await hub.alarm_store.get(alarm_id)
    assert alarm is not None
    return ActionResult(outcome=result.outcome, alarm=alarm)


@router.post("/{alarm_id}/acknowledge")
async def acknowledge(hub: HubDep, principal: Actor, alarm_id: str, body: ActionBody | None = None) -> ActionResult:
    return await _act(hub, principal, alarm_id, "acknowledge", body.note if body else "")


@router.post("/{alarm_id}/clear")
async def clear(hub: HubDep, principal: Actor, alarm_id: str, body: ActionBody | None = None) -> ActionResult:
    return await _act(hub, principal, alarm_id, "clear", body.note if body else "")


@router.post("/{alarm_id}/comment")
async def comment(hub: HubDep, principal: Actor, alarm_id: str, body: ActionBody) -> ActionResult:
    if not body.note.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "a comment needs a note")
    return await _act(hub, principal, alarm_id, "comment", body.note)
