"""Uplinks: their queues, dead letters and replay (the webhooks themselves are sent by the hub); hubs above hubs:
escalating a case to the upper hub, and the inbox where another hub's signed deliveries arrive
(``governance.hierarchy``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sharpeye.api.deps import (
    PUBLIC,
    AuditDep,
    CasesDep,
    HierarchyDep,
    InventoryDep,
    ServicesDep,
    SiteDep,
    UplinksDep,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.routes.case import actor_of, visible_case
from sharpeye.api.user import Principal
from sharpeye.governance.case_record import CaseNotFound
from sharpeye.governance.flow import TransitionError
from sharpeye.governance.hierarchy import EscalatedCase, HierarchyState, HubRefused, Received
from sharpeye.governance.uplink import DeadLetter, UplinkState

router = APIRouter(tags=["uplinks"])

Reader = Annotated[Principal, Depends(require(Permission.deadletters_read))]
# Replaying sends data out again: the integrators' (and admins') permission to change integrations.
Operator = Annotated[Principal, Depends(require(Permission.devices_write))]
CaseReader = Annotated[Principal, Depends(require(Permission.cases_read))]
CaseActor = Annotated[Principal, Depends(require(Permission.cases_act))]


@router.get("/api/uplinks")
async def list_uplinks(service: UplinksDep, _: Reader) -> list[UplinkState]:
    """Each uplink with its pending deliveries and dead letters (the secret is never shown)."""
    return await service.states()


@router.get("/api/uplinks/{uplink_id}/dead-letters")
async def dead_letters(
    service: UplinksDep, _: Reader, uplink_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetter]:
    not_found_unless(uplink_id in service.uplinks, f"uplink {uplink_id!r}")
    return await service.dead_letters(uplink_id, limit)


class ReplayBody(BaseModel):
    ids: list[str] | None = Field(default=None, max_length=10_000, description="Dead letters to replay; null: all.")


class Replayed(BaseModel):
    replayed: int


@router.post("/api/uplinks/{uplink_id}/dead-letters/replay")
async def replay(
    service: UplinksDep, audit: AuditDep, principal: Operator, uplink_id: str, body: ReplayBody
) -> Replayed:
    """Put dead letters back into the delivery queue (same delivery ids: a receiver that got one already
    recognises it)."""
    not_found_unless(uplink_id in service.uplinks, f"uplink {uplink_id!r}")
    count = await service.replay(uplink_id, body.ids)
    await audit.record(principal.actor, "uplink.replay", uplink_id, {"count": count})
    return Replayed(replayed=count)


# --- hubs above hubs -------------------------------------------------------------------------------------------
class EscalateBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why the case goes to the upper hub.")


@router.post("/api/cases/{case_id}/escalate-up")
async def escalate_up(
    principal: CaseActor,  # first: who asks is checked before whether this hub has an upper hub
    hierarchy: HierarchyDep,
    cases: CasesDep,
    inventory: InventoryDep,
    audit: AuditDep,
    case_id: str,
    body: EscalateBody,
) -> EscalatedCase:
    """Send a case to the upper hub (上报上级): it follows with its updates, photos and closure, and the upper
    hub's actions on it come back into its history."""
    await visible_case(cases, inventory, principal, case_id)
    try:
        record = await hierarchy.escalate(case_id, actor_of(principal), body.reason)
    except TransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except CaseNotFound:
        not_found_unless(False, f"case {case_id!r}")
        raise
    await audit.record(principal.actor, "case.escalate_up", case_id, body.model_dump())
    return record


@router.get("/api/hierarchy")
async def hierarchy_state(_: CaseReader, services: ServicesDep) -> HierarchyState:
    """The hubs above and below, the cases escalated from here and the cases opened for hubs below (none of them on
    a hub without ``governance.hierarchy``: the console asks every hub)."""
    hierarchy = services.hierarchy
    if hierarchy is None or not hierarchy.enabled:
        return HierarchyState(upper=None, lowers=[], escalated=[], linked=[], held=0)
    return await hierarchy.state()


@router.post("/api/hierarchy/inbox", dependencies=[PUBLIC])
async def inbox(hierarchy: HierarchyDep, site: SiteDep, request: Request) -> Received:
    """Where another hub's uplink delivers (no user: the request is signed with the pair's key, see
    docs/deployment.md). 200 applied / duplicate / held (waits for an earlier message); 401 bad signature;
    403 not a hub of this one; 409 retry later; 413 too large; 422 not a hub message."""
    cap = site.governance.reports.photo_max_bytes * 4 // 3 + 65536
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {cap} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {cap} bytes")
    try:
        return await hierarchy.receive(request.headers, bytes(body))
    except HubRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    except TransitionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
