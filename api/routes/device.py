"""Devices: list with health, add and remove at run time, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sharpeye.api.deps import AuditDep, DeadLettersDep, InventoryDep, StatusDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.ingest.inventory import InventoryError

router = APIRouter(tags=["devices"])


class DeviceView(BaseModel):
    id: str
    kind: str
    name: str
    grid: str
    source: str
    state: str
    last_seen: datetime | None
    messages: int
    errors: int
    last_error: str
    details: dict[str, Any]
    config: dict[str, Any]


@router.get("/api/devices")
async def list_devices(
    inventory: InventoryDep,
    node: StatusDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_read))],
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> list[DeviceView]:
    out = []
    statuses = node.device_statuses()
    for device in inventory:
        if (kind and device.kind != kind) or not in_scope(inventory, principal, device.grid):
            continue
        status_, details = statuses[device.id]
        out.append(
            DeviceView(
                id=device.id,
                kind=device.kind,
                name=device.name,
                grid=device.grid,
                source=inventory.source(device.id) or "config",
                state=status_.state,
                last_seen=datetime.fromtimestamp(status_.last_seen, UTC) if status_.last_seen else None,
                messages=status_.messages,
                errors=status_.errors,
                last_error=status_.last_error,
                details=jsonable_encoder(details),
                config=device.model_dump(mode="json"),
            )
        )
    return sorted(out, key=lambda d: d.id)


@router.post("/api/devices", status_code=status.HTTP_201_CREATED)
async def add_device(
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_write))],
    body: Annotated[dict[str, Any], Body(description="A device config, exactly as in the site YAML.")],
) -> dict[str, Any]:
    """Add or replace a run-time device (not one defined in the site YAML). Scoped users: in their unit only."""
    try:
        device = inventory.validate(body)
    except InventoryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if not in_scope(inventory, principal, device.grid):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"org unit {device.grid!r} is outside your scope")
    before = inventory.get(device.id)
    try:
        device = await inventory.upsert(body, "api")
    except InventoryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    after = device.model_dump(mode="json")
    await audit.record(principal.actor, "device.upsert", device.id,
                 {"before": before.model_dump(mode="json") if before else None, "after": after})  # fmt: skip
    return after


@router.delete("/api/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_device(
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_write))], device_id: str
) -> None:
    device = inventory.get(device_id)
    not_found_unless(device is not None and in_scope(inventory, principal, device.grid), f"device {device_id!r}")
    assert device is not None
    try:
        await inventory.remove(device_id)
    except InventoryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await audit.record(principal.actor, "device.remove", device_id,
                 {"before": device.model_dump(mode="json"), "after": None})  # fmt: skip


@router.get("/api/deadletters")
async def deadletters(
    inventory: InventoryDep,
    letters_: DeadLettersDep,
    principal: Annotated[Principal, Depends(require(Permission.deadletters_read))],
    device: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Rejected input, newest first, with reason, origin and a preview of the payload. Scoped users see their
    devices' only (input from unknown devices has no place, and is shown to unscoped users)."""
    letters = await letters_.recent(limit, device)
    if principal.org_unit is None:
        return letters

    def visible(letter: dict[str, Any]) -> bool:
        known = inventory.get(letter.get("device", ""))
        return known is not None and in_scope(inventory, principal, known.grid)

    return [letter for letter in letters if visible(letter)]
