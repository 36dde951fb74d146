"""Evidence bundles: an alarm's or a case's files with a manifest signed by the hub (``governance.evidence_bundle``),
and the hub's public key to check them against. Every export is audited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sharpeye.api.deps import (
    AlarmsDep,
    AuditDep,
    CasesDep,
    ClockDep,
    InventoryDep,
    PhotosDep,
    ServicesDep,
    case_visible,
    in_scope,
    not_found_unless,
    require,
)
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.governance.evidence_bundle import Item, bundle_bytes, fingerprint, hub_key, public_pem
from sharpeye.governance.photo import EXTENSIONS

router = APIRouter(tags=["evidence"])

AlarmReader = Annotated[Principal, Depends(require(Permission.alarms_read))]
CaseReader = Annotated[Principal, Depends(require(Permission.cases_read))]
Anyone = Annotated[Principal, Depends(require(Permission.self_service))]
ZIP = "application/zip"


class EvidenceKey(BaseModel):
    public_key_pem: str = Field(description="The hub's Ed25519 public key (PEM) that signs evidence bundles.")
    fingerprint: str = Field(description="SHA-256 of the raw key: compare it with the one in a bundle.")


def _evidence_items(data_dir: Path, refs: list[str], folder: str = "") -> list[Item]:
    """Video evidence references as bundle items; a reference that leaves the evidence store is left out."""
    root = (data_dir / "evidence").resolve()
    items = []
    for ref in refs:
        if ref.startswith(("http:", "https:", "/")):
            continue
        path = (root / ref).resolve()
        if path.is_relative_to(root):
            items.append(Item(f"{folder}{ref}", path))
    return items


def _zip(name: str, body: bytes) -> Response:
    return Response(body, media_type=ZIP, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                   "Cache-Control": "no-store"})  # fmt: skip


@router.get("/api/evidence-key")
async def evidence_key(services: ServicesDep, _: Anyone) -> EvidenceKey:
    key = (await asyncio.to_thread(hub_key, services.settings.data_dir)).public_key()
    return EvidenceKey(public_key_pem=public_pem(key).decode(), fingerprint=fingerprint(key))


@router.get("/api/alarms/{alarm_id}/evidence-bundle", response_class=Response,
            responses={200: {"content": {ZIP: {}}, "description": "The signed bundle (ZIP)."}})  # fmt: skip
async def alarm_bundle(
    services: ServicesDep,
    alarms: AlarmsDep,
    inventory: InventoryDep,
    audit: AuditDep,
    clock: ClockDep,
    principal: AlarmReader,
    alarm_id: str,
) -> Response:
    """The alarm's snapshots and clips with a signed SHA-256 manifest; check it with `sharpeye evidence verify`."""
    alarm = await alarms.get(alarm_id)
    not_found_unless(alarm is not None and in_scope(inventory, principal, alarm.org_unit), f"alarm {alarm_id!r}")
    assert alarm is not None
    subject = {"type": "alarm", "id": alarm.id, "title": alarm.title, "place": alarm.place,
               "first_seen": alarm.first_seen.isoformat(), "device": alarm.device_id}  # fmt: skip
    data_dir = services.settings.data_dir
    items = _evidence_items(data_dir, alarm.evidence)
    key = await asyncio.to_thread(hub_key, data_dir)
    body = await asyncio.to_thread(bundle_bytes, subject, items, key, clock.now(), services.site.site.id)
    await audit.record(principal.actor, "evidence.export", alarm_id,
                       {"type": "alarm", "files": len(items), "bytes": len(body)})  # fmt: skip
    return _zip(f"evidence-{alarm.id}.zip", body)


@router.get("/api/cases/{case_id}/evidence-bundle", response_class=Response,
            responses={200: {"content": {ZIP: {}}, "description": "The signed bundle (ZIP)."}})  # fmt: skip
async def case_bundle(
    services: ServicesDep,
    cases: CasesDep,
    alarms: AlarmsDep,
    photos: PhotosDep,
    inventory: InventoryDep,
    audit: AuditDep,
    clock: ClockDep,
    principal: CaseReader,
    case_id: str,
) -> Response:
    """The case's photos and the evidence of its alarms, with a signed SHA-256 manifest."""
    case = await cases.get(case_id)
    not_found_unless(case is not None and case_visible(inventory, principal, case), f"case {case_id!r}")
    assert case is not None
    data_dir = services.settings.data_dir
    items = [Item(f"photos/{p.id}.{EXTENSIONS[p.media_type]}", photos.path(p)) for p in await photos.list(case_id)]
    for alarm_id in case.alarm_ids:
        alarm = await alarms.get(alarm_id)
        if alarm is not None:
            items += _evidence_items(data_dir, alarm.evidence, f"alarms/{alarm_id}/")
    subject = {"type": "case", "id": case.id, "title": case.title, "category": case.category,
               "created_at": case.created_at.isoformat(), "alarms": list(case.alarm_ids)}  # fmt: skip
    key = await asyncio.to_thread(hub_key, data_dir)
    body = await asyncio.to_thread(bundle_bytes, subject, items, key, clock.now(), services.site.site.id)
    await audit.record(principal.actor, "evidence.export", case_id,
                       {"type": "case", "files": len(items), "bytes": len(body)})  # fmt: skip
    return _zip(f"evidence-{case.id}.zip", body)
