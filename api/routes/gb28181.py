"""GB/T 28181 control: PTZ and presets of a channel, and device commands (reboot, recording, guard); the state of
the upper platforms SharpEye serves (``GET /api/gb28181/cascades``).

A channel is named by its camera's id (a catalog channel's camera has the channel code as its id; a camera
configured as ``gb28181:<device>/<channel>`` has its own). Only users whose role holds ``ptz:control`` (PTZ,
presets) or ``devices:control`` (device commands), and whose org unit holds the camera or device, may; every
command is audited (``gb28181.ptz``, ``gb28181.preset``, ``gb28181.control``), failed ones with their reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from sharpeye.api.deps import AuditDep, ClockDep, InventoryDep, ServicesDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.ingest.gb28181.control import DEVICE_COMMANDS, ControlError, DeviceCommand, GbControl, camera_channel
from sharpeye.ingest.gb28181.ptz import ACTIONS
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.ownership import ROLE_GB28181

router = APIRouter(tags=["gb28181"])

Action = Literal[
    "left", "right", "up", "down", "upleft", "upright", "downleft", "downright", "zoom_in", "zoom_out", "stop",
    "focus_near", "focus_far", "iris_open", "iris_close",
]  # fmt: skip
assert set(Action.__args__) == set(ACTIONS)  # type: ignore[attr-defined]
CameraId = Annotated[str, Path(min_length=1, max_length=64)]


class PtzRequest(BaseModel):
    action: Action = Field(description="Direction, zoom, focus or iris to start moving; `stop` stops all.")
    speed: int = Field(default=128, ge=1, le=255, description="1-255 (zoom uses its top four bits).")


class PresetRequest(BaseModel):
    action: Literal["call", "set"] = Field(description="`call` turns the camera there; `set` stores where it is.")
    number: int = Field(ge=1, le=255, description="Preset 1-255.")


class ControlRequest(BaseModel):
    command: Literal["teleboot", "record_start", "record_stop", "guard", "unguard"] = Field(
        description="teleboot (reboot), record_start / record_stop, guard (布防) / unguard (撤防)."
    )


assert set(ControlRequest.model_fields["command"].annotation.__args__) == set(DEVICE_COMMANDS)  # type: ignore[union-attr]


def _control(services: ServicesDep) -> GbControl:
    control = services.gb_control() if services.gb_control is not None else None
    if control is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "GB/T 28181 is not running on this node")
    return control


def channel_of(inventory: DeviceInventory, principal: Principal, camera_id: str) -> str:
    """The GB/T 28181 channel code of a camera the caller may see (404 otherwise)."""
    device = inventory.get(camera_id)
    not_found_unless(device is not None and in_scope(inventory, principal, device.grid), "camera")
    channel = camera_channel(camera_id, device)
    if channel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{camera_id} is not a GB/T 28181 channel")
    return channel


def _raise(exc: ControlError) -> HTTPException:
    return HTTPException(exc.status, f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason)


@router.post("/api/gb28181/channels/{camera_id}/ptz")
async def ptz(
    services: ServicesDep,
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.ptz_control))],
    camera_id: CameraId,
    body: PtzRequest,
) -> dict[str, Any]:
    """Start moving, or stop. A move stops by itself a few seconds after the last command (the console repeats a
    held button's move), so a lost stop cannot leave the camera turning."""
    channel = channel_of(inventory, principal, camera_id)
    control = _control(services)
    details: dict[str, Any] = {"action": body.action, "speed": body.speed, "channel": channel}
    try:
        cmd = await control.ptz(channel, body.action, body.speed)
    except ControlError as exc:
        await audit.record(principal.actor, "gb28181.ptz", camera_id, {**details, "error": exc.reason})
        raise _raise(exc) from None
    await audit.record(principal.actor, "gb28181.ptz", camera_id, details)
    return {"camera_id": camera_id, "channel": channel, "action": body.action, "ptzcmd": cmd.encode()}


@router.get("/api/gb28181/channels/{camera_id}/presets")
async def presets(
    services: ServicesDep,
    inventory: InventoryDep,
    principal: Annotated[Principal, Depends(require(Permission.ptz_control))],
    camera_id: CameraId,
) -> list[dict[str, Any]]:
    """The channel's presets, asked of its device (PresetQuery)."""
    channel = channel_of(inventory, principal, camera_id)
    try:
        found = await _control(services).presets(channel)
    except ControlError as exc:
        raise _raise(exc) from None
    return [{"number": p.number, "name": p.name} for p in found]


@router.post("/api/gb28181/channels/{camera_id}/presets")
async def preset(
    services: ServicesDep,
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.ptz_control))],
    camera_id: CameraId,
    body: PresetRequest,
) -> dict[str, Any]:
    """Call a preset, or set it to where the camera points now."""
    return await _preset(services, inventory, audit, principal, camera_id, body.action, body.number)


@router.delete("/api/gb28181/channels/{camera_id}/presets/{number}")
async def delete_preset(
    services: ServicesDep,
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.ptz_control))],
    camera_id: CameraId,
    number: Annotated[int, Path(ge=1, le=255)],
) -> dict[str, Any]:
    return await _preset(services, inventory, audit, principal, camera_id, "delete", number)


async def _preset(
    services: ServicesDep,
    inventory: DeviceInventory,
    audit: AuditDep,
    principal: Principal,
    camera_id: str,
    op: Literal["call", "set", "delete"],
    number: int,
) -> dict[str, Any]:
    channel = channel_of(inventory, principal, camera_id)
    control = _control(services)
    details: dict[str, Any] = {"action": op, "number": number, "channel": channel}
    try:
        await control.preset(channel, op, number)
    except ControlError as exc:
        await audit.record(principal.actor, "gb28181.preset", camera_id, {**details, "error": exc.reason})
        raise _raise(exc) from None
    await audit.record(principal.actor, "gb28181.preset", camera_id, details)
    return {"camera_id": camera_id, "action": op, "number": number}


@router.post("/api/gb28181/devices/{device_id}/control")
async def device_control(
    services: ServicesDep,
    inventory: InventoryDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_control))],
    device_id: CameraId,
    body: ControlRequest,
) -> dict[str, Any]:
    """Reboot a GB/T 28181 device, start or stop recording, guard (布防) or unguard (撤防) it. ``device_id`` is a
    gb28181 device, or a channel's camera (recording and guard then apply to that channel)."""
    device = inventory.get(device_id)
    not_found_unless(device is not None and in_scope(inventory, principal, device.grid), "device")
    assert device is not None
    target = device_id if device.kind == "gb28181" else channel_of(inventory, principal, device_id)
    control = _control(services)
    command: DeviceCommand = body.command
    details: dict[str, Any] = {"command": command, "target": target}
    try:
        result = await control.device_command(target, command)
    except ControlError as exc:
        await audit.record(principal.actor, "gb28181.control", device_id, {**details, "error": exc.reason})
        raise _raise(exc) from None
    await audit.record(principal.actor, "gb28181.control", device_id, {**details, "result": result})
    return {"device_id": device_id, "command": command, "result": result}


@router.get("/api/gb28181/devices/{device_id}/track")
async def track(
    services: ServicesDep,
    inventory: InventoryDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_read))],
    device_id: CameraId,
    start: Annotated[datetime | None, Query(description="From (ISO 8601 with offset); default an hour ago.")] = None,
    end: Annotated[datetime | None, Query(description="Until; default now.")] = None,
) -> list[dict[str, Any]]:
    """The positions a mobile device (patrol car, body camera) reported (MobilePosition) between ``start`` and
    ``end``, oldest first (at most 5000; a window of at most 7 days)."""
    device = inventory.get(device_id)
    not_found_unless(device is not None and in_scope(inventory, principal, device.grid), "device")
    end = end or clock.now()
    start = start or end - timedelta(hours=1)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start and end need a UTC offset")
    if not timedelta(0) <= end - start <= timedelta(days=7):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must follow start, by at most 7 days")
    if services.gb_tracks is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no track store")
    return await services.gb_tracks.track(device_id, start, end)


@router.get("/api/gb28181/devices/{device_id}/time")
async def device_time(
    services: ServicesDep,
    inventory: InventoryDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_read))],
    device_id: CameraId,
) -> dict[str, Any]:
    """The device's clock against the hub's (DeviceStatus ``DeviceTime``): ``offset_s`` > 0 when it runs ahead.
    Devices take the hub's time from the ``Date`` of every answer to their REGISTER (校时)."""
    device = inventory.get(device_id)
    not_found_unless(device is not None and in_scope(inventory, principal, device.grid), "device")
    assert device is not None
    if device.kind != "gb28181":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{device_id} is not a GB/T 28181 device")
    try:
        when = await _control(services).device_time(device_id)
    except ControlError as exc:
        raise _raise(exc) from None
    now = clock.now()
    return {"device_id": device_id, "device_time": when, "hub_time": now,
            "offset_s": round((when - now).total_seconds(), 1)}  # fmt: skip


class CascadeSubscriptionView(BaseModel):
    event: Literal["Catalog", "Alarm", "MobilePosition"] = Field(description="What the upper platform subscribed to.")
    target: str = Field(description="The DeviceID subscribed: SharpEye's own SIP id (everything) or one channel.")
    since: datetime | None = Field(description="When the subscription was made (UTC).")
    expires_in_s: int = Field(description="Seconds left until it expires unless refreshed.")
    sent: int = Field(description="NOTIFYs the upper platform answered in this subscription.")
    failures: int = Field(description="NOTIFYs left unanswered or refused in a row.")


class CascadeView(BaseModel):
    id: str = Field(description="The upper platform's name in metrics and health (its `id`, else its SIP id).")
    upper_id: str = Field(description="Its SIP id.")
    address: str = Field(description="Where SharpEye registers: transport, host and port.")
    registered: bool = Field(description="Whether SharpEye is registered to it now.")
    registered_since: datetime | None = Field(description="Since when (UTC); null while not registered.")
    last_keepalive: datetime | None = Field(description="The last keepalive it answered (UTC).")
    subscriptions: dict[str, int] = Field(description="Its live subscriptions by event (Catalog, Alarm, ...).")
    subscription_list: list[CascadeSubscriptionView] = Field(description="Each live subscription.")
    channels: int = Field(description="Channels it sees (its `channels` filter applied).")
    streams: int = Field(description="Channels it watches now (live, playback or download).")
    alarms_forwarded: int = Field(description="Alarms it took: MESSAGEs answered 200 and NOTIFYs of its subscriptions.")
    errors: int = Field(description="Failed registrations, unanswered keepalives, alarms given up, failed NOTIFYs.")
    last_error: str = Field(description="What last went wrong on the link, empty when nothing has.")
    last_error_at: datetime | None = Field(description="When (UTC).")


class CascadesView(BaseModel):
    running: bool = Field(description="Whether this node runs the GB/T 28181 signalling (and so the cascades).")
    node: str = Field(description="The node that runs it, when known; empty otherwise.")
    platforms: list[CascadeView] = Field(description="Each configured upper platform; live state only when running.")


@router.get("/api/gb28181/cascades")
async def cascades(
    services: ServicesDep,
    _: Annotated[Principal, Depends(require(Permission.devices_read))],
) -> CascadesView:
    """The upper platforms SharpEye serves as a lower platform (级联): registration, keepalives, the platform's
    subscriptions, channels shared, alarms forwarded and errors. Live state comes from the node that runs the GB/T
    28181 signalling; another node lists the configured platforms and names that node."""
    running = list(services.gb_cascades()) if services.gb_cascades is not None else []
    gb = services.site.gb28181
    if running:
        loop_now = asyncio.get_running_loop().time()
        views = []
        for c in running:
            up = c.upper
            subs = sorted(c.subscriptions.values(), key=lambda s: (s.event, s.target))
            views.append(CascadeView(
                id=c.id, upper_id=up.upper_id, address=f"{up.transport}:{up.upper_host}:{up.upper_port}",
                registered=c.registered.is_set(), registered_since=c.registered_since,
                last_keepalive=c.last_keepalive,
                subscriptions=dict(collections.Counter(s.event for s in subs)),
                subscription_list=[CascadeSubscriptionView(
                    event=s.event, target=s.target, since=s.since,
                    expires_in_s=max(0, int(s.expires_at - loop_now)), sent=s.sent, failures=s.failures,
                ) for s in subs],
                channels=c.channel_count(), streams=len(c.streams), alarms_forwarded=c.alarms_forwarded,
                errors=c.errors, last_error=c.last_error, last_error_at=c.last_error_at,
            ))  # fmt: skip
        return CascadesView(running=True, node=services.ownership.node_id if services.ownership else "",
                            platforms=views)  # fmt: skip
    holder = ""
    if services.ownership is not None:
        with contextlib.suppress(Exception):
            holder = next((n.id for n in await services.ownership.nodes() if ROLE_GB28181 in n.devices), "")
    uppers = gb.uppers if gb is not None else []
    return CascadesView(running=False, node=holder, platforms=[
        CascadeView(id=u.name, upper_id=u.upper_id, address=f"{u.transport}:{u.upper_host}:{u.upper_port}",
                    registered=False, registered_since=None, last_keepalive=None, subscriptions={},
                    subscription_list=[], channels=0, streams=0, alarms_forwarded=0, errors=0, last_error="",
                    last_error_at=None)
        for u in uppers
    ])  # fmt: skip
