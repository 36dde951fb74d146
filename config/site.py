"""The root of the site configuration."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union, cast

from pydantic import Field, create_model, field_validator, model_validator
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.config.device import DeviceConfig
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.governance import Governance
from sharpeye.config.org import Department, OrgUnit
from sharpeye.config.rule import Rule


class GeoBounds(StrictModel):
    """A box on the earth, WGS-84 degrees."""

    south: float = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude of the lower edge.")
    west: float = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude of the left edge.")
    north: float = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude of the upper edge.")
    east: float = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude of the right edge.")

    @model_validator(mode="after")
    def _ordered(self) -> GeoBounds:
        if self.south >= self.north:
            raise ValueError(f"south ({self.south}) must be below north ({self.north})")
        if self.west >= self.east:
            raise ValueError(f"west ({self.west}) must be left of east ({self.east})")
        return self


class SitePlan(StrictModel):
    """A drawing of the site on which devices are placed."""

    image: str = Field(description="Path of an SVG or raster image, relative to the config file.")
    width: int = Field(default=1000, gt=0, description="Width of the drawing in pixels.")
    height: int = Field(default=700, gt=0, description="Height of the drawing in pixels.")
    bounds: GeoBounds | None = Field(
        default=None,
        description="Where the drawing lies on the earth (WGS-84): the geographic map lays it over the tiles as an "
        "offline layer, and places devices that have only x/y by it. Unset: the map shows the drawing on its own.",
    )


class MapTiles(StrictModel):
    """The base map's tile source: an internal tile server, 天地图 with its key, or another XYZ source."""

    url: str = Field(
        min_length=1,
        max_length=1000,
        description="XYZ tile URL template with {z}, {x} and {y} (and {s} when subdomains are set), http(s):// or a "
        "path on this hub, e.g. https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=KEY.",
    )
    subdomains: str = Field(default="", max_length=32, description="Values {s} takes in turn, e.g. 01234567.")
    attribution: str = Field(default="", max_length=300, description="Credit shown in the map's corner (审图号 etc.).")
    min_zoom: int = Field(default=1, ge=0, le=22, description="Lowest zoom the source serves.")
    max_zoom: int = Field(default=18, ge=1, le=22, description="Highest zoom the source serves.")
    gcj02: bool = Field(
        default=False,
        description="True when the tiles are drawn in GCJ-02 (AutoNavi/Gaode, Tencent): positions, kept in WGS-84, are "
        "shifted for display. False for WGS-84/CGCS2000 sources (天地图, OpenStreetMap, most internal servers).",
    )

    @field_validator("url")
    @classmethod
    def _template(cls, url: str) -> str:
        if not url.startswith(("https://", "http://", "/")):
            raise ValueError(f"tile URL must start with https://, http:// or / (a path on this hub), got {url[:40]!r}")
        absent = [p for p in ("{z}", "{x}", "{y}") if p not in url]
        if absent:
            raise ValueError(f"tile URL template lacks {', '.join(absent)}")
        if any(c in url for c in " \"';<>\\"):
            raise ValueError("tile URL has a space, quote, ';', '<', '>' or backslash")
        return url

    def origins(self) -> list[str]:
        """The origins tiles come from (each subdomain's), for the console's Content-Security-Policy; none for a
        path on the hub."""
        if self.url.startswith("/"):
            return []
        scheme, _, rest = self.url.partition("://")
        host = rest.split("/", 1)[0].split("?", 1)[0]
        hosts = [host.replace("{s}", s) for s in self.subdomains] if "{s}" in host else [host]
        return sorted({f"{scheme}://{h}" for h in hosts})

    @model_validator(mode="after")
    def _consistent(self) -> MapTiles:
        if "{s}" in self.url and not self.subdomains:
            raise ValueError("the tile URL has {s}: set subdomains (e.g. '01234567' for 天地图's t0-t7)")
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"min_zoom ({self.min_zoom}) is above max_zoom ({self.max_zoom})")
        return self


class GeoCenter(StrictModel):
    """A point the map opens on, WGS-84 degrees."""

    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude.")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude.")


class SiteMap(StrictModel):
    """The console's geographic map (地图: 一张图)."""

    tiles: MapTiles | None = Field(
        default=None,
        description="Base map tiles. Unset: no base map (the site plan, when its bounds are set, and the "
        "layers on a blank background).",
    )
    center: GeoCenter | None = Field(
        default=None, description="Where the map opens. Unset: the plan's bounds, else the placed devices."
    )
    zoom: int = Field(default=15, ge=0, le=22, description="Zoom the map opens at, with center.")


class Site(StrictModel):
    """The place this hub watches."""

    id: Identifier = Field(description="Stable site id.")
    name: str = Field(min_length=1, description="Display name.")
    timezone: str = Field(default="Asia/Shanghai", description="Time zone shown to operators.")
    plan: SitePlan | None = Field(default=None, description="Site plan for the console's map.")
    map: SiteMap = Field(default_factory=SiteMap, description="The console's geographic map: tiles and start view.")


class AlarmSettings(StrictModel):
    """Site-wide alarm engine settings."""

    correlation_window_s: float = Field(
        default=120, ge=0, le=3600, description="Alarms in one org unit within this window form one incident."
    )


class SiteConfig(StrictModel):
    """Everything an operator edits: org tree, departments, devices, rules and governance."""

    site: Site = Field(description="The site itself.")
    org: OrgUnit = Field(description="Root of the org tree (the unit this hub serves, with all below).")
    departments: list[Department] = Field(default_factory=list, description="Departments that handle cases.")
    devices: list[DeviceConfig] = Field(default_factory=list, description="Device instances, by kind.")
    rules: list[Rule] = Field(default_factory=list, description="Alarm rules.")
    alarms: AlarmSettings = Field(default_factory=AlarmSettings, description="Alarm engine settings.")
    governance: Governance = Field(default_factory=Governance, description="Intake, dispatch and SLA.")
    gb28181: GbSettings | None = Field(
        default=None, description="SharpEye as a GB/T 28181 platform for devices (and lower platform upward)."
    )


@cache
def site_model(device_models: tuple[type[DeviceConfig], ...]) -> type[SiteConfig]:
    """``SiteConfig`` whose ``devices`` is the discriminated union of the given kinds' models."""
    if not device_models:
        return SiteConfig
    if len(device_models) == 1:
        device_type: Any = device_models[0]
    else:
        device_type = Annotated[Union[device_models], Field(discriminator="kind")]  # noqa: UP007
    model = create_model(
        "SiteConfig",
        __base__=SiteConfig,
        __module__=__name__,
        devices=(
            list[device_type],
            Field(default_factory=list, description="Device instances, by kind."),
        ),
    )
    return cast(type[SiteConfig], model)
