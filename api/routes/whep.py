"""Live video over WebRTC with WHEP signalling (draft-ietf-wish-whep): POST an SDP offer, get the answer.

``POST /api/cameras/{id}/whep`` with ``Content-Type: application/sdp`` answers 201 with the SDP answer (all ICE
candidates included: no trickle) and a ``Location`` header naming the session; ``DELETE`` that URL to leave.
The live-view service lives in ``app.state.live``; this router's lifespan starts one over the hub's device
inventory when the app did not provide its own.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sharpeye.api.deps import AuditDep, InventoryDep, LiveDep, in_scope, require
from sharpeye.api.live.service import MAX_OFFER_BYTES, BadOffer, UnknownCamera, ViewerLimit
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal

log = logging.getLogger(__name__)

SDP = "application/sdp"


router = APIRouter(prefix="/api/cameras", tags=["live"])

Viewer = Annotated[Principal, Depends(require(Permission.alarms_read))]


class FeedView(BaseModel):
    camera: str
    viewers: int = Field(description="Viewers connected now.")
    running: bool = Field(description="Whether the camera is being read for live view.")
    source: str = Field(description="What is read (no credentials).")
    packets: int = Field(description="Packets read since the feed was created.")
    key_frames: int
    failures: int = Field(description="Times the source failed and was reopened.")
    last_error: str


class LiveView(BaseModel):
    feeds: list[FeedView]
    dropped: dict[str, int] = Field(description="Viewers closed by the hub, by reason (slow, failed, ...).")


@router.get("/live")
async def live_status(live: LiveDep, _: Annotated[Principal, Depends(require(Permission.devices_read))]) -> LiveView:
    """Live-view feeds with their viewers, and viewers the hub closed."""
    feeds = [
        FeedView(
            camera=feed.camera_id,
            viewers=live.viewers(feed.camera_id),
            running=feed.running,
            source=feed.source.name if feed.source is not None else "",
            packets=feed.packets,
            key_frames=feed.key_frames,
            failures=feed.failures,
            last_error=feed.last_error,
        )
        for feed in live.feeds.values()
    ]
    return LiveView(feeds=sorted(feeds, key=lambda f: f.camera), dropped=dict(live.dropped))


@router.post(
    "/{camera_id}/whep",
    status_code=status.HTTP_201_CREATED,
    response_class=Response,
    responses={201: {"content": {SDP: {}}, "description": "SDP answer; Location names the session."}},
)
async def offer(
    request: Request, inventory: InventoryDep, audit: AuditDep, live: LiveDep, principal: Viewer, camera_id: str
) -> Response:
    """Open a viewer of ``camera_id``: the body is the browser's SDP offer (recvonly video, H.264 offered).
    Users scoped to an org unit see only its cameras; every view is audited."""
    camera = inventory.get(camera_id)
    if camera is not None and not in_scope(inventory, principal, camera.grid):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    if request.headers.get("content-type", "").split(";")[0].strip() != SDP:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"send the offer as {SDP}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_OFFER_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "offer too large")
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "offer too large")
    try:
        session, answer = await live.open(camera_id, body.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the offer is not UTF-8 text") from None
    except UnknownCamera:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None
    except ViewerLimit as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"too many viewers: {exc}") from None
    except BadOffer as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unusable offer: {exc}") from None
    location = f"/api/cameras/{camera_id}/whep/{session.id}"
    await audit.record(principal.actor, "live.open", camera_id, {"session": session.id})
    return Response(answer, status.HTTP_201_CREATED, {"Location": location}, media_type=SDP)


@router.delete("/{camera_id}/whep/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def leave(audit: AuditDep, live: LiveDep, principal: Viewer, camera_id: str, session_id: str) -> Response:
    """Close a viewer's connection."""
    session = live.sessions.get(session_id)
    if session is None or session.camera_id != camera_id or not await live.close(session_id, "left"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    await audit.record(principal.actor, "live.close", camera_id, {"session": session_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{camera_id}/whep/{session_id}", include_in_schema=False)
async def trickle(_: Viewer, camera_id: str, session_id: str) -> Response:
    """Trickle ICE is not supported: the answer carries every candidate."""
    return Response(status_code=status.HTTP_405_METHOD_NOT_ALLOWED, headers={"Allow": "POST, DELETE"})
