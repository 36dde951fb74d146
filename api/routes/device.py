"""Devices: list with health, add and remove at run time, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from pydantic import BaseModel

from api.deps import HubDep, require
from api.permission import Permission
from api.user import Principal
from ingest.deadletter import recent
from ingest.inventory import InventoryError

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
    config: dict[str, Any]


@router.get("/api/devices")
async def list_devices(
    hub: HubDep,
    _: Annotated[Principal, Depends(require(Permission.devices_read))],
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> list[DeviceView]:
    out = []
    for device in hub.inventory:
        if kind and device.kind != kind:
            continue
        status_ = hub.health.snapshot(device.id)
        out.append(
            DeviceView(
                id=device.id,
                kind=device.kind,
                name=device.name,
                grid=device.grid,
                source=hub.inventory.source(device.id) or "config",
                state=status_.state,
                last_seen=datetime.fromtimestamp(status_.last_seen, UTC) if status_.last_seen else None,
                messages=status_.messages,
                errors=status_.errors,
                last_error=status_.last_error,
                config=device.model_dump(mode="json"),
            )
        )
    return sorted(out, key=lambda d: d.id)


@router.post("/api/devices", status_code=status.HTTP_201_CREATED)
async def add_device(
    hub: HubDep,
    _: Annotated[Principal, Depends(require(Permission.devices_write))],
    body: Annotated[dict[str, Any], Body(description="A device config, exactly as in the site YAML.")],
) -> dict[str, Any]:
    try:
        device = await hub.inventory.upsert(body, "api")
    except InventoryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    return device.model_dump(mode="json")


@router.delete("/api/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_device(
    hub: HubDep, _: Annotated[Principal, Depends(require(Permission.devices_write))], device_id: str
) -> None:
    if hub.inventory.get(device_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    try:
        await hub.inventory.remove(device_id)
    except InventoryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/api/deadletters")
async def deadletters(
    hub: HubDep,
    _: Annotated[Principal, Depends(require(Permission.deadletters_read))],
    device: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Rejected input, newest first, with reason, origin and a preview of the payload."""
    return await recent(hub.redis, hub.keys, limit, device)
