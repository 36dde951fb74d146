"""Own recordings of cameras: the segments of a time range, playback from a moment, one MP4 of a range.

- ``GET /api/cameras/{id}/recordings?start&end``: segments overlapping the range (times ISO 8601 or seconds since
  the epoch), with the recorder's state;
- ``GET /api/cameras/{id}/recordings/play?t``: the segments to play from moment ``t`` on and the offset into the
  first (the console plays them one after another in a ``<video>``: MP4 H.264 plays in Chromium without plugins);
- ``GET /api/cameras/{id}/recordings/file/{day}/{name}``: one segment (MP4, byte ranges served for seeking);
- ``GET /api/cameras/{id}/recordings/download?start&end``: the range as one MP4, remuxed (never re-encoded),
  audited as ``recording.download``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import FileResponse
from sharpeye.api.deps import AuditDep, CamerasDep, InventoryDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.services import CameraFeeds
from sharpeye.api.user import Principal
from sharpeye.ingest.recording.segment import RecordingError
from sharpeye.ingest.recording.store import Segment, export_range
from starlette.background import BackgroundTask

router = APIRouter(tags=["recordings"])

Viewer = Annotated[Principal, Depends(require(Permission.alarms_read))]
MAX_LIST_S = 31 * 86400
MAX_DOWNLOAD_S = 6 * 3600


def _camera(inventory: Any, service: CameraFeeds | None, principal: Principal, camera_id: str) -> CameraFeeds:
    device = inventory.get(camera_id)
    not_found_unless(
        device is not None and device.kind == "camera" and in_scope(inventory, principal, device.grid), "camera"
    )
    not_found_unless(service is not None, "recordings (the hub captures no cameras)")
    assert service is not None
    return service


def _range(start: datetime, end: datetime, limit: float) -> tuple[float, float]:
    a, b = _epoch(start), _epoch(end)
    if b <= a:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"end {end.isoformat()} is not after start")
    if b - a > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"the range is {b - a:.0f} s; at most {limit:.0f} s at once"
        )
    return a, b


def _epoch(t: datetime) -> float:
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segment(camera_id: str, seg: Segment) -> dict[str, Any]:
    return {
        "start": _iso(seg.start),
        "end": _iso(seg.end),
        "start_ms": round(seg.start * 1000),
        "end_ms": round(seg.end * 1000),
        "bytes": seg.bytes,
        "url": f"/api/cameras/{camera_id}/recordings/file/{seg.name}",
    }


def _recorder(service: CameraFeeds, camera_id: str) -> dict[str, Any] | None:
    for st in service.recorder_stats():
        if st.camera_id == camera_id:
            return {k: getattr(st, k) for k in st.__dataclass_fields__ if k != "camera_id"}
    return None


@router.get("/api/cameras/{camera_id}/recordings")
async def recordings(
    inventory: InventoryDep,
    cameras: CamerasDep,
    principal: Viewer,
    camera_id: str,
    start: Annotated[datetime, Query(description="Range start, ISO 8601 (UTC if no zone) or epoch seconds.")],
    end: Annotated[datetime, Query(description="Range end, after start; at most 31 days later.")],
) -> dict[str, Any]:
    """Segments of the camera's own recording overlapping the range, in time order."""
    a, b = _range(start, end, MAX_LIST_S)
    body: dict[str, Any] = {"camera_id": camera_id, "start": _iso(a), "end": _iso(b), "segments": [], "recorder": None}
    if cameras is None:  # a hub that captures no cameras has no recordings (a camera it does not know is still 404)
        device = inventory.get(camera_id)
        not_found_unless(
            device is not None and device.kind == "camera" and in_scope(inventory, principal, device.grid), "camera"
        )
        return body
    service = _camera(inventory, cameras, principal, camera_id)
    body["segments"] = [_segment(camera_id, s) for s in service.recordings.segments(camera_id, a, b)]
    body["recorder"] = _recorder(service, camera_id)
    return body


@router.get("/api/cameras/{camera_id}/recordings/play")
async def play(
    inventory: InventoryDep,
    cameras: CamerasDep,
    principal: Viewer,
    camera_id: str,
    t: Annotated[datetime, Query(description="The moment to play from, ISO 8601 or epoch seconds.")],
) -> dict[str, Any]:
    """The segments to play from ``t`` on (up to 20) and ``offset_s`` into the first; when ``t`` falls in a gap,
    playback starts at the next recorded moment (``offset_s`` 0). 404 when nothing is recorded from ``t`` on."""
    service = _camera(inventory, cameras, principal, camera_id)
    at = _epoch(t)
    segs = service.recordings.from_moment(camera_id, at)
    if not segs:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no recording of camera {camera_id} at or after {_iso(at)}")
    return {
        "camera_id": camera_id,
        "t": _iso(at),
        "offset_s": round(max(0.0, at - segs[0].start), 3),
        "segments": [_segment(camera_id, s) for s in segs],
    }


@router.get("/api/cameras/{camera_id}/recordings/file/{day}/{name}")
async def segment_file(
    inventory: InventoryDep, cameras: CamerasDep, principal: Viewer, camera_id: str, day: str, name: str
) -> FileResponse:
    """One segment as MP4 (only indexed segments are served: nothing else of the disk can be named)."""
    service = _camera(inventory, cameras, principal, camera_id)
    try:
        path = service.recordings.path(camera_id, f"{day}/{name}")
    except (KeyError, ValueError):
        not_found_unless(False, "segment")
        raise
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/cameras/{camera_id}/recordings/download")
async def download(
    inventory: InventoryDep,
    cameras: CamerasDep,
    audit: AuditDep,
    principal: Viewer,
    camera_id: str,
    start: Annotated[datetime, Query(description="Range start, ISO 8601 or epoch seconds.")],
    end: Annotated[datetime, Query(description="Range end; at most 6 hours after start.")],
) -> FileResponse:
    """The range as one MP4 remuxed from the segments (from the key frame at or before ``start``)."""
    service = _camera(inventory, cameras, principal, camera_id)
    a, b = _range(start, end, MAX_DOWNLOAD_S)
    try:
        path, first, last = await asyncio.to_thread(export_range, service.recordings, camera_id, a, b)
    except RecordingError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    await audit.record(principal.actor, "recording.download", camera_id, {"start": _iso(a), "end": _iso(b)})
    stamp = datetime.fromtimestamp(first, UTC).strftime("%Y%m%dT%H%M%SZ")
    return FileResponse(
        path,
        media_type="video/mp4",
        filename=f"{camera_id}-{stamp}-{round(last - first)}s.mp4",
        headers={"X-Recording-Start": _iso(first), "X-Recording-End": _iso(last)},
        background=BackgroundTask(Path.unlink, path, True),
    )
