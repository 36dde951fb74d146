"""Cameras: capture and analytics statistics, and the evidence files of video alarms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sharpeye.api.deps import AuditDep, CamerasDep, InventoryDep, in_scope, not_found_unless, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.ingest.camera.evidence import EvidenceError

router = APIRouter(tags=["cameras"])


@router.get("/api/cameras")
async def cameras(
    inventory: InventoryDep,
    service: CamerasDep,
    principal: Annotated[Principal, Depends(require(Permission.devices_read))],
) -> list[dict[str, Any]]:
    """Per camera: state, fps in / decoded / analysed, decode errors, reconnects, dropped packets, health 0-100."""
    stats = {s.camera_id: s for s in service.stats()} if service is not None else {}
    out = []
    for device in inventory:
        if device.kind != "camera" or not in_scope(inventory, principal, device.grid):
            continue
        found = stats.get(device.id)
        row: dict[str, Any] = {"camera_id": device.id, "name": device.name, "grid": device.grid}
        if found is None:
            row["state"] = "not_captured"
        else:
            row.update({k: getattr(found, k) for k in found.__struct_fields__})
        out.append(row)
    return out


@router.get("/api/evidence/{ref:path}")
async def evidence(
    inventory: InventoryDep,
    service: CamerasDep,
    audit: AuditDep,
    principal: Annotated[Principal, Depends(require(Permission.alarms_read))],
    ref: str,
) -> FileResponse:
    """A snapshot (JPEG) or clip (MP4) of a video alarm. References are checked: nothing outside the store.
    Every download is audited (``evidence.download``)."""
    camera = inventory.get(ref.split("/", 1)[0])
    not_found_unless(camera is not None and in_scope(inventory, principal, camera.grid), "evidence")
    not_found_unless(service is not None, "evidence")
    assert service is not None
    try:
        path = service.evidence_path(ref)
    except EvidenceError:
        not_found_unless(False, "evidence")
        raise
    media = "image/jpeg" if path.suffix == ".jpg" else "video/mp4"
    await audit.record(principal.actor, "evidence.download", ref)
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
