"""Base model and shared field types of the site configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Identifier = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="Stable id: letters, digits, '_', '.', '-' (max 64), never shown as a name.",
    ),
]


class StrictModel(BaseModel):
    """Every config model forbids unknown keys, so a typo is an error, not a silent default."""

    # Inputs are left out of error texts: a misplaced secret must not end up in a log or a terminal.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True)


class Position(StrictModel):
    """Where something sits: on the site plan, as fractions of the plan's width and height (x, y), and/or on the
    earth, as WGS-84 longitude and latitude (lon, lat; the geographic map). Each pair is given whole or not at all,
    and at least one pair is given."""

    x: float | None = Field(default=None, ge=0, le=1, description="Horizontal position, 0 = left edge, 1 = right edge.")
    y: float | None = Field(default=None, ge=0, le=1, description="Vertical position, 0 = top edge, 1 = bottom edge.")
    lon: float | None = Field(
        default=None, ge=-180, le=180, allow_inf_nan=False, description="WGS-84 longitude, degrees (east positive)."
    )
    lat: float | None = Field(
        default=None, ge=-90, le=90, allow_inf_nan=False, description="WGS-84 latitude, degrees (north positive)."
    )

    @model_validator(mode="after")
    def _pairs(self) -> Position:
        if (self.x is None) != (self.y is None):
            raise ValueError("give both x and y (the place on the site plan) or neither")
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat (WGS-84 degrees) or neither")
        if self.x is None and self.lon is None:
            raise ValueError("a position needs x and y (site plan) or lon and lat (WGS-84), or both")
        return self
