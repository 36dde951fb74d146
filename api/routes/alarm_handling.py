"""How a monitoring room works an alarm beyond acknowledging it: its procedure (处置预案) ticked step by step, who
owns it and the hand-over to another operator or the next shift (交接班)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field
from sharpeye.alarms.alarm import Alarm
from sharpeye.alarms.store import AlarmStore
from sharpeye.api.deps import (
    AlarmsDep,
    AuditDep,
    ClockDep,
    InventoryDep,
    SiteDep,
    UsersDep,
    VerificationDep,
    in_scope,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.config.governance import Procedure
from sharpeye.config.site import SiteConfig
from sharpeye.governance.verification import Waiting
from sharpeye.ingest.inventory import DeviceInventory

router = APIRouter(tags=["alarms"])

Reader = Annotated[Principal, Depends(require(Permission.alarms_read))]
Actor = Annotated[Principal, Depends(require(Permission.alarms_act))]


def procedure_for(site: SiteConfig, alarm: Alarm) -> Procedure | None:
    """The alarm's procedure: one naming its rule, else one naming its category."""
    procedures = site.governance.procedures
    return next((p for p in procedures if alarm.rule_id in p.rules), None) or next(
        (p for p in procedures if alarm.category in p.categories), None
    )


class ProcedureView(BaseModel):
    procedure: Procedure | None = Field(description="None: no procedure applies to this alarm.")
    done: dict[str, dict[str, str]] = Field(description="Ticked steps (1-based number -> who and when).")


class StepBody(BaseModel):
    note: str = Field(default="", max_length=500, description="What was done (a call's outcome...).")


class HandBody(BaseModel):
    to: str | None = Field(default=None, max_length=100, description="A user name; null: the next shift.")
    note: str = Field(default="", max_length=1000, description="What the next person needs to know.")


class Handover(BaseModel):
    """What a shift hands over: open alarms by owner, alarms still waiting for a verdict."""

    mine: list[Alarm]
    others: list[Alarm]
    unowned: list[Alarm]
    waiting_verdict: list[Waiting]


async def _alarm(alarms: AlarmStore, inventory: DeviceInventory, principal: Principal, alarm_id: str) -> Alarm:
    alarm = await alarms.get(alarm_id)
    not_found_unless(alarm is not None and in_scope(inventory, principal, alarm.org_unit), f"alarm {alarm_id!r}")
    assert alarm is not None
    return alarm


@router.get("/api/alarms/{alarm_id}/procedure")
async def get_procedure(
    alarms: AlarmsDep, inventory: InventoryDep, site: SiteDep, principal: Reader, alarm_id: str
) -> ProcedureView:
    alarm = await _alarm(alarms, inventory, principal, alarm_id)
    return ProcedureView(procedure=procedure_for(site, alarm), done=alarm.steps)


@router.post("/api/alarms/{alarm_id}/procedure/{step}")
async def tick_step(
    alarms: AlarmsDep,
    inventory: InventoryDep,
    site: SiteDep,
    clock: ClockDep,
    audit: AuditDep,
    principal: Actor,
    alarm_id: str,
    step: int,
    body: StepBody | None = None,
) -> Alarm:
    """Tick one step (1-based) of the alarm's procedure: into the alarm's history and the audit, once."""
    alarm = await _alarm(alarms, inventory, principal, alarm_id)
    procedure = procedure_for(site, alarm)
    if procedure is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no procedure applies to this alarm")
    if not 1 <= step <= len(procedure.steps):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"step must be 1..{len(procedure.steps)}")
    note = f"{procedure.title} {step}. {procedure.steps[step - 1]}" + (f" — {body.note}" if body and body.note else "")
    result = await alarms.act(alarm_id, "step", principal.actor, clock.now(), note, {"step": step})
    if result.outcome == "noop":
        raise HTTPException(status.HTTP_409_CONFLICT, f"step {step} was ticked already")
    await audit.record(principal.actor, "alarm.procedure", alarm_id, {"step": step, "note": note})
    return await _alarm(alarms, inventory, principal, alarm_id)


@router.post("/api/alarms/{alarm_id}/take")
async def take(
    alarms: AlarmsDep, inventory: InventoryDep, clock: ClockDep, audit: AuditDep, principal: Actor, alarm_id: str
) -> Alarm:
    """The caller works this alarm from now on; others see who has it."""
    await _alarm(alarms, inventory, principal, alarm_id)
    await alarms.act(alarm_id, "owner", principal.actor, clock.now(), "", {"owner": principal.actor})
    await audit.record(principal.actor, "alarm.take", alarm_id)
    return await _alarm(alarms, inventory, principal, alarm_id)


@router.post("/api/alarms/{alarm_id}/hand")
async def hand(
    alarms: AlarmsDep,
    inventory: InventoryDep,
    clock: ClockDep,
    audit: AuditDep,
    users: UsersDep,
    principal: Actor,
    alarm_id: str,
    body: HandBody,
) -> Alarm:
    """Hand the alarm to another operator, or release it for the next shift, with a note."""
    await _alarm(alarms, inventory, principal, alarm_id)
    owner = ""
    if body.to:
        target = await users.get(body.to)
        if target is None or target.disabled:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no user {body.to!r}")
        owner = f"user:{body.to}"
    note = body.note or ("交接给下一班" if not owner else f"转交 {body.to}")
    await alarms.act(alarm_id, "owner", principal.actor, clock.now(), note, {"owner": owner})
    await audit.record(principal.actor, "alarm.hand", alarm_id, {"to": owner, "note": body.note})
    return await _alarm(alarms, inventory, principal, alarm_id)


@router.get("/api/handover")
async def handover(
    alarms: AlarmsDep, inventory: InventoryDep, verification: VerificationDep, principal: Reader
) -> Handover:
    """The shift hand-over (交接班): every alarm not yet cleared in the caller's scope, by owner, and what waits for
    a verdict."""
    items, _ = await alarms.page(
        match=lambda a: in_scope(inventory, principal, a.org_unit), limit=500, offset=0, open_only=True
    )
    mine = [a for a in items if a.owner == principal.actor]
    others = [a for a in items if a.owner and a.owner != principal.actor]
    unowned = [a for a in items if not a.owner]
    waiting = [w for w in await verification.waiting()
               if w.alarm is not None and in_scope(inventory, principal, w.alarm.org_unit)]  # fmt: skip
    return Handover(mine=mine, others=others, unowned=unowned, waiting_verdict=waiting)
