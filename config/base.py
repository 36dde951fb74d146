"""Base model and shared field types of the site configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

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
    """Where something sits on the site plan, as fractions of the plan's width and height."""

    x: float = Field(ge=0, le=1, description="Horizontal position, 0 = left edge, 1 = right edge.")
    y: float = Field(ge=0, le=1, description="Vertical position, 0 = top edge, 1 = bottom edge.")
