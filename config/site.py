"""The root of the site configuration."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union, cast

from pydantic import Field, create_model
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.config.device import DeviceConfig
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.governance import Governance
from sharpeye.config.org import Department, OrgUnit
from sharpeye.config.rule import Rule


class SitePlan(StrictModel):
    """A drawing of the site on which devices are placed."""

    image: str = Field(description="Path of an SVG or raster image, relative to the config file.")
    width: int = Field(default=1000, gt=0, description="Width of the drawing in pixels.")
    height: int = Field(default=700, gt=0, description="Height of the drawing in pixels.")


class Site(StrictModel):
    """The place this hub watches."""

    id: Identifier = Field(description="Stable site id.")
    name: str = Field(min_length=1, description="Display name.")
    timezone: str = Field(default="Asia/Shanghai", description="Time zone shown to operators.")
    plan: SitePlan | None = Field(default=None, description="Site plan for the console's map.")


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
