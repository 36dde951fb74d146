"""Uplinks: their queues, dead letters and replay (the webhooks themselves are sent by the hub)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sharpeye.api.deps import HubDep, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.governance.uplink import DeadLetter, UplinkService, UplinkState

from sharpeye.audit import record
from sharpeye.node.hub import Hub

router = APIRouter(tags=["uplinks"])

Reader = Annotated[Principal, Depends(require(Permission.deadletters_read))]
# Replaying sends data out again: the integrators' (and admins') permission to change integrations.
Operator = Annotated[Principal, Depends(require(Permission.devices_write))]


def uplinks(hub: Hub) -> UplinkService:
    """The hub's uplink service when it runs one, else a view on the same Redis queues."""
    running = getattr(hub, "uplinks", None)
    if isinstance(running, UplinkService):
        return running
    return UplinkService(hub.site.governance.uplinks, hub.redis, hub.keys, hub.clock, site_id=hub.site.site.id,
                         consumer=hub.node_id)  # fmt: skip


@router.get("/api/uplinks")
async def list_uplinks(hub: HubDep, _: Reader) -> list[UplinkState]:
    """Each uplink with its pending deliveries and dead letters (the secret is never shown)."""
    return await uplinks(hub).states()


@router.get("/api/uplinks/{uplink_id}/dead-letters")
async def dead_letters(
    hub: HubDep, _: Reader, uplink_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetter]:
    service = uplinks(hub)
    not_found_unless(uplink_id in service.uplinks, f"uplink {uplink_id!r}")
    return await service.dead_letters(uplink_id, limit)


class ReplayBody(BaseModel):
    ids: list[str] | None = Field(default=None, max_length=10_000, description="Dead letters to replay; null: all.")


class Replayed(BaseModel):
    replayed: int


@router.post("/api/uplinks/{uplink_id}/dead-letters/replay")
async def replay(hub: HubDep, principal: Operator, uplink_id: str, body: ReplayBody) -> Replayed:
    """Put dead letters back into the delivery queue (same delivery ids: a receiver that got one already
    recognises it)."""
    service = uplinks(hub)
    not_found_unless(uplink_id in service.uplinks, f"uplink {uplink_id!r}")
    count = await service.replay(uplink_id, body.ids)
    await record(hub.redis, hub.keys, principal.actor, "uplink.replay", uplink_id, {"count": count})
    return Replayed(replayed=count)
