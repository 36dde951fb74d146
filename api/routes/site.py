"""The site as the console draws it: org tree, departments, devices with positions and linked cameras, plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sharpeye.api.deps import InventoryDep, SiteDep, require
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.user import Principal
from sharpeye.config.loader import demo_path
from sharpeye.config.org import Department, OrgUnit
from sharpeye.config.site import GeoBounds, SiteMap

router = APIRouter(prefix="/api/site", tags=["site"])

Reader = Annotated[Principal, Depends(require(Permission.devices_read))]
# Every console role reads the site's frame (org tree, departments, time zone); its devices only with devices:read
# (a department handler's console lists its cases without them).
Console = Annotated[Principal, Depends(require(Permission.health_read))]

PLAN_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}


class PlanView(BaseModel):
    width: int
    height: int
    url: str = Field(description="Where the console fetches the drawing (with its bearer token).")
    bounds: GeoBounds | None = Field(default=None, description="Where the drawing lies on the earth (WGS-84).")


class PointView(BaseModel):
    id: str
    name: str
    x: float | None = None
    y: float | None = None
    cameras: list[str] = Field(default_factory=list)


class DeviceSpot(BaseModel):
    id: str
    kind: str
    name: str
    grid: str
    x: float | None = Field(default=None, description="Position on the plan, 0..1 of its width.")
    y: float | None = Field(default=None, description="Position on the plan, 0..1 of its height.")
    lon: float | None = Field(default=None, description="WGS-84 longitude, degrees.")
    lat: float | None = Field(default=None, description="WGS-84 latitude, degrees.")
    source: str = Field(default="config", description="Where the device comes from: config, gb28181 (a catalog "
                        "channel), api.")  # fmt: skip
    cameras: list[str] = Field(default_factory=list, description="Cameras linked to the device or its zones.")
    zones: list[PointView] = Field(default_factory=list)


class SiteView(BaseModel):
    id: str
    name: str
    timezone: str
    plan: PlanView | None
    map: SiteMap = Field(description="The geographic map's tiles and start view.")
    org: OrgUnit
    departments: list[Department]
    devices: list[DeviceSpot]


def plan_file(image: str) -> Path | None:
    """The plan drawing: absolute, relative to the working directory, or beside the packaged demo config."""
    given = Path(image)
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, demo_path().parent / given]
    for path in candidates:
        if path.suffix.lower() in PLAN_TYPES and path.is_file():
            return path
    return None


def _spot(device: Any, source: str) -> DeviceSpot:
    zones = [
        PointView(
            id=zone.id,
            name=zone.name,
            x=zone.position.x if getattr(zone, "position", None) else None,
            y=zone.position.y if getattr(zone, "position", None) else None,
            cameras=list(getattr(zone, "cameras", [])),
        )
        for zone in getattr(device, "zones", [])
    ]
    cameras = sorted({c for z in zones for c in z.cameras} | set(getattr(device, "cameras", []) or []))
    return DeviceSpot(
        id=device.id,
        kind=device.kind,
        name=device.name,
        grid=device.grid,
        x=device.position.x if device.position else None,
        y=device.position.y if device.position else None,
        lon=device.position.lon if device.position else None,
        lat=device.position.lat if device.position else None,
        source=source,
        cameras=cameras,
        zones=zones,
    )


@router.get("")
async def site(config: SiteDep, inventory: InventoryDep, principal: Console) -> SiteView:
    """Permission: health:read; the devices (and the plan) only for callers with devices:read, else empty."""
    plan = config.site.plan if allowed(principal.role, Permission.devices_read) else None
    devices: list[Any] = list(inventory) if allowed(principal.role, Permission.devices_read) else []
    return SiteView(
        id=config.site.id,
        name=config.site.name,
        timezone=config.site.timezone,
        plan=PlanView(width=plan.width, height=plan.height, url="/api/site/plan", bounds=plan.bounds) if plan else None,
        map=config.site.map,
        org=config.org,
        departments=config.departments,
        devices=sorted((_spot(d, inventory.source(d.id) or "config") for d in devices), key=lambda s: s.id),
    )


@router.get("/plan", response_class=FileResponse)
async def plan(config: SiteDep, _: Reader) -> FileResponse:
    """The site plan drawing named in the config."""
    config_plan = config.site.plan
    path = plan_file(config_plan.image) if config_plan else None
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no site plan")
    return FileResponse(path, media_type=PLAN_TYPES[path.suffix.lower()])
