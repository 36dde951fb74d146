"""Uplinks: their queues, dead letters and replay (the webhooks themselves are sent by the hub)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sharpeye.api.deps import AuditDep, UplinksDep, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.governance.uplink import DeadLetter, UplinkState

router = APIRouter(tags=["uplinks"])

Reader = Annotated[Principal, Depends(require(Permission.deadletters_read))]
# Replaying sends data out again: the integrators' (and admins') permission to change integrations.
Operator = Annotated[Principal, Depends(require(Permission.devices_write))]


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
