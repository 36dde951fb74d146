"""The console's third-party libraries, installed into the data dir by ``sharpeye assets install``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sharpeye.api import assets
from sharpeye.api.deps import PUBLIC, ServicesDep

router = APIRouter(tags=["assets"])


class AssetView(BaseModel):
    name: str
    version: str = Field(description="The pinned version.")
    installed: bool
    purpose: str


class AssetsView(BaseModel):
    packages: list[AssetView]
    hint: str = Field(description="How to install a missing package.")


@router.get("/api/assets", dependencies=[PUBLIC])
async def list_assets(services: ServicesDep) -> AssetsView:
    """Which pinned libraries the hub can serve (open: the console asks before sign-in completes)."""
    there = assets.installed(services.settings.data_dir)
    return AssetsView(
        packages=[
            AssetView(name=p.name, version=p.version, installed=p.name in there, purpose=p.purpose)
            for p in assets.PACKAGES.values()
        ],
        hint=assets.INSTALL_HINT,
    )


@router.get("/assets/{package}/{path:path}", dependencies=[PUBLIC])
async def asset_file(package: str, path: str, services: ServicesDep) -> FileResponse:
    """A file of an installed library (open, like the console's own static files)."""
    found = assets.served_file(services.settings.data_dir, package, path)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{package}/{path} is not installed; {assets.INSTALL_HINT}")
    return FileResponse(found, headers={"Cache-Control": "no-cache"})
