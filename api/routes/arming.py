"""Arming (布防) and disarming (撤防) an electronic fence controller from the hub: the command is published on
``sharpeye/fence/<id>/command`` (QoS 1) and the controller confirms each zone it changed with an ``arming`` message
carrying the command's id. Needs ``devices:control`` and the fence in the caller's unit; audited (``fence.arming``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field
from sharpeye.api.deps import AuditDep, ClockDep, InventoryDep, ServicesDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.ingest.fence.command import FenceCommand, encode_command

router = APIRouter(tags=["devices"])


class ArmingRequest(BaseModel):
    command: Literal["arm", "disarm"] = Field(description="arm (布防) or disarm (撤防).")
    zone: str | None = Field(default=None, max_length=64, description="One zone; none: every perimeter zone.")


@router.post("/api/devices/{device_id}/arming", status_code=status.HTTP_202_ACCEPTED)
async def arming(
    services: ServicesDep,
    inventory: InventoryDep,
    audit: AuditDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_control))],
    device_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: ArmingRequest,
) -> dict[str, Any]:
    """Send an arm/disarm command to a fence controller; 202 with the command's id (the controller's ``arming``
    confirmation carries it). Tamper zones stay armed whatever is sent."""
    device = inventory.get(device_id)
    not_found_unless(device is not None and in_scope(inventory, principal, device.grid), "device")
    assert device is not None
    if device.kind != "fence":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{device_id} is a {device.kind}, not a fence")
    zones = {z.id: z for z in getattr(device, "zones", [])}
    if body.zone is not None and body.zone not in zones:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{device_id} has no zone {body.zone!r}")
    if body.zone is not None and getattr(zones[body.zone], "type", "") == "tamper":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{body.zone} is a tamper zone: always armed")
    if services.publish is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no MQTT connection on this node")
    command = FenceCommand(id=f"c-{uuid.uuid4().hex[:12]}", command=body.command, zone=body.zone, ts=clock.now())
    services.publish(f"sharpeye/fence/{device_id}/command", encode_command(command))
    await audit.record(principal.actor, "fence.arming", device_id,
                       {"command": body.command, "zone": body.zone, "command_id": command.id})  # fmt: skip
    return {"device_id": device_id, "command": body.command, "zone": body.zone, "command_id": command.id}
