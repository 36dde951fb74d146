"""Recordings held by GB/T 28181 devices, for cameras that are GB channels (``url: gb28181:<device>/<channel>``).

- ``GET /api/cameras/{id}/device-records?start&end``: the device's RecordInfo answer, pages merged (``complete``
  false and ``error`` when pages were missing or SumNum wrong; 504 when the device does not answer);
- ``GET /api/cameras/{id}/device-clip?start&end[&speed][&download]``: that range fetched with a Download INVITE and
  remuxed (never re-encoded) into one MP4, played inline by the console or downloaded (``download=true``,
  audited as ``gb28181.download``); at most one hour.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import FileResponse
from sharpeye.api.deps import AuditDep, InventoryDep, ServicesDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.ingest.gb28181.platform import GbPlatform, MediaError
from sharpeye.ingest.gb28181.playback import PlaybackError, download
from sharpeye.ingest.gb28181.record import RecordQueryError, query_records
from starlette.background import BackgroundTask

router = APIRouter(tags=["recordings"])

Viewer = Annotated[Principal, Depends(require(Permission.alarms_read))]
MAX_CLIP_S = 3600


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _channel(inventory: Any, services: Any, principal: Principal, camera_id: str) -> tuple[GbPlatform, str]:
    device = inventory.get(camera_id)
    not_found_unless(
        device is not None and device.kind == "camera" and in_scope(inventory, principal, device.grid), "camera"
    )
    url = str(getattr(device, "url", ""))
    if not url.startswith("gb28181:"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"camera {camera_id} is not a GB/T 28181 channel")
    platform = services.gb_platform() if services.gb_platform is not None else None
    if platform is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "GB/T 28181 signalling does not run on this node")
    return platform, url.split("?")[0].rpartition("/")[2]


@router.get("/api/cameras/{camera_id}/device-records")
async def device_records(
    inventory: InventoryDep,
    services: ServicesDep,
    principal: Viewer,
    camera_id: str,
    start: Annotated[datetime, Query(description="Range start, ISO 8601 (UTC if no zone) or epoch seconds.")],
    end: Annotated[datetime, Query(description="Range end; at most 31 days after start.")],
) -> dict[str, Any]:
    """The recordings the channel's device (IPC, NVR, lower platform) holds in the range."""
    platform, channel = _channel(inventory, services, principal, camera_id)
    try:
        result = await query_records(platform, channel, _aware(start), _aware(end))
    except RecordQueryError as exc:
        text = str(exc)
        code = status.HTTP_504_GATEWAY_TIMEOUT if "answer" in text or "not registered" in text else 422
        if "no registered device" in text:
            code = status.HTTP_404_NOT_FOUND
        raise HTTPException(code, text) from None
    return {
        "camera_id": camera_id,
        "device_id": result.device_id,
        "channel_id": channel,
        "start": _iso(result.start),
        "end": _iso(result.end),
        "complete": result.complete,
        "sum_num": result.sum_num,
        "error": result.error,
        "bad_items": result.bad_items,
        "records": [
            {
                "start": _iso(r.start),
                "end": _iso(r.end),
                "start_ms": round(r.start.timestamp() * 1000),
                "end_ms": round(r.end.timestamp() * 1000),
                "name": r.name,
                "file_path": r.file_path,
                "type": r.type,
            }
            for r in result.records
        ],
    }


@router.get("/api/cameras/{camera_id}/device-clip")
async def device_clip(
    inventory: InventoryDep,
    services: ServicesDep,
    audit: AuditDep,
    principal: Viewer,
    camera_id: str,
    start: Annotated[datetime, Query(description="Range start, ISO 8601 or epoch seconds.")],
    end: Annotated[datetime, Query(description="Range end; at most one hour after start.")],
    speed: Annotated[int, Query(ge=1, le=16, description="Download speed asked of the device.")] = 8,
    download_file: Annotated[bool, Query(alias="download", description="As an attachment (audited).")] = False,
) -> FileResponse:
    """The range fetched from the device (Download INVITE) as one MP4, remuxed."""
    platform, channel = _channel(inventory, services, principal, camera_id)
    a, b = _aware(start), _aware(end)
    if not 0 < (b - a).total_seconds() <= MAX_CLIP_S:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must be after start, at most one hour later")
    directory = Path(services.settings.data_dir) / "recordings" / ".exports"
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"gb-{channel}-{uuid.uuid4().hex}.mp4"
    try:
        result = await download(platform, channel, a, b, out, speed=speed)
    except PlaybackError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT if "range" in str(exc) else 502, str(exc)) from None
    except MediaError as exc:
        code = status.HTTP_404_NOT_FOUND if exc.reason == "unknown_channel" else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, f"the device refused or did not answer: {exc}") from None
    headers = {"X-Complete": "true" if result.complete else "false", "X-Seconds": f"{result.seconds:.1f}"}
    if download_file:
        await audit.record(principal.actor, "gb28181.download", camera_id, {"start": _iso(a), "end": _iso(b)})
    return FileResponse(
        out,
        media_type="video/mp4",
        filename=f"{camera_id}-{a.astimezone(UTC):%Y%m%dT%H%M%SZ}.mp4" if download_file else None,
        headers=headers,
        background=BackgroundTask(Path.unlink, out, True),
    )
