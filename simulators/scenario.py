"""Scenario files: timed steps that script a drill (alarms, restores, fires, faults) on simulated devices.

A scenario is YAML validated by ``Scenario``::

    name: demo
    steps:
      - {at: 3, device: fence-reservoir, action: alarm, args: {zone: z1, cause: intrusion}}
      - {at: 63, device: fence-reservoir, action: restore, args: {zone: z1, cause: intrusion}}
      - {at: 20, device: "*", action: drop_heartbeats, args: {for_s: 120}}

``device`` is a device id, ``kind:<kind>`` for every device of a kind, or ``*`` for every device. The
actions of each kind's simulator are listed in docs/devices/<kind>.md; the fault actions in
``simulators.fault.FAULTS`` work on every kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from sharpeye.config.base import StrictModel
from sharpeye.config.loader import ConfigError, ConfigIssue, parse_yaml


class Step(StrictModel):
    """One timed action."""

    at: float = Field(ge=0, description="Seconds of simulated time after the start.")
    device: str = Field(min_length=1, description="Device id, 'kind:<kind>' or '*'.")
    action: str = Field(min_length=1, description="Simulator action or fault (see docs/devices/).")
    args: dict[str, Any] = Field(default_factory=dict, description="Arguments of the action.")
    optional: bool = Field(
        default=False,
        description="Skip the step (with a warning) when no device matches, instead of refusing the scenario; "
        "for drills shared by sites that may lack a device.",
    )


class Scenario(StrictModel):
    """A scripted drill."""

    name: str = Field(min_length=1, description="Scenario name.")
    description: str = Field(default="", description="What the drill shows and what the hub should do.")
    steps: list[Step] = Field(default_factory=list, description="Timed steps; run in order of 'at'.")


def load_scenario(path: Path) -> Scenario:
    """Load and validate a scenario file; ``ConfigError`` with line numbers on mistakes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [ConfigIssue((), "file not found")]) from None
    data, lines = parse_yaml(text, str(path))
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            line = None
            probe = loc
            while probe and line is None:
                line = lines.get(probe)
                probe = probe[:-1]
            issues.append(ConfigIssue(loc, err["msg"], line))
        raise ConfigError(str(path), issues) from None


def scenario_dir() -> Path:
    """The bundled scenarios (``demo.yaml``...)."""
    return Path(__file__).with_name("scenarios")
