"""Alarm rules: which readings, what condition, how severe, how it clears, what it links."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field
from sharpeye.config.base import Identifier, StrictModel


class Severity(StrEnum):
    """Four levels, mapped to GB/T 28181 alarm priorities 1 (highest) to 4."""

    critical = "critical"
    major = "major"
    minor = "minor"
    warning = "warning"

    @property
    def priority(self) -> int:
        """GB/T 28181 alarm priority: 1 = 一级警情 … 4 = 四级警情."""
        return _PRIORITY[self]

    @property
    def rank(self) -> int:
        """Larger is more severe (for comparisons)."""
        return 5 - _PRIORITY[self]


_PRIORITY = {Severity.critical: 1, Severity.major: 2, Severity.minor: 3, Severity.warning: 4}


class Match(StrictModel):
    """Which readings a rule looks at. Empty lists match everything."""

    kind: str = Field(description="Reading kind, e.g. 'fence.zone' or 'thermal.roi'.")
    devices: list[Identifier] = Field(default_factory=list, description="Only these device ids.")
    channels: list[str] = Field(default_factory=list, description="Only these channels (zones, regions).")
    grids: list[Identifier] = Field(
        default_factory=list, description="Only devices placed in these org units or below them."
    )


class StateCondition(StrictModel):
    """Active while the reading's value is one of ``active``; cleared by one of ``clear``."""

    type: Literal["state"] = Field(description="Condition type.")
    active: list[str] = Field(min_length=1, description="Values that make the condition active.")
    clear: list[str] = Field(default_factory=list, description="Values that end it (explicit restore).")


class ThresholdCondition(StrictModel):
    """Active when a numeric value crosses ``above``/``below``; clears past the hysteresis band."""

    type: Literal["threshold"] = Field(description="Condition type.")
    above: float | None = Field(default=None, description="Active when value > above.")
    below: float | None = Field(default=None, description="Active when value < below.")
    hysteresis: float = Field(default=0, ge=0, description="Band the value must move back by to clear.")


class CountCondition(StrictModel):
    """Active when ``count`` readings with a value in ``active`` arrive within ``window_s``."""

    type: Literal["count"] = Field(description="Condition type.")
    active: list[str] = Field(min_length=1, description="Values that count.")
    count: int = Field(ge=2, le=10_000, description="How many within the window raise the alarm.")
    window_s: float = Field(gt=0, le=86_400, description="Sliding window, seconds.")


class AbsenceCondition(StrictModel):
    """Active when no matching reading arrives for ``absent_s``; cleared by the next one."""

    type: Literal["absence"] = Field(description="Condition type.")
    absent_s: float = Field(gt=0, le=7 * 86_400, description="Silence that raises the alarm, seconds.")


Condition = Annotated[
    StateCondition | ThresholdCondition | CountCondition | AbsenceCondition, Field(discriminator="type")
]


class ClearPolicy(StrictModel):
    """How an alarm of this rule clears."""

    mode: Literal["restore", "quiet"] = Field(
        default="restore",
        description="'restore': by the condition's clear values; 'quiet': after quiet_s without a repeat.",
    )
    quiet_s: float = Field(default=60, gt=0, description="Quiet period for mode 'quiet', seconds.")


class Flapping(StrictModel):
    """Too many raise/clear transitions in a window make one flapping alarm instead of a storm."""

    transitions: int = Field(default=6, ge=2, description="Transitions within window_s that mean flapping.")
    window_s: float = Field(default=300, gt=0, description="Window, seconds; flapping ends after a quiet window.")


class PresetLinkage(StrictModel):
    """Turn a PTZ camera (a GB/T 28181 channel) to a preset when an alarm of the rule is raised, and back to its
    guard position when no alarm has turned it for ``return_after_s``."""

    camera: Identifier = Field(
        description="The PTZ camera: a camera configured as gb28181:<device>/<channel>, or a catalog channel's code."
    )
    preset: int = Field(ge=1, le=255, description="The preset to call when an alarm is raised.")
    zones: list[Identifier] = Field(
        default_factory=list, description="Only for alarms of these zones (or channels); empty: every alarm."
    )
    guard_preset: int | None = Field(
        default=None, ge=1, le=255, description="The guard position (看守位) to return to; None: stay."
    )
    return_after_s: float = Field(
        default=300, gt=0, le=86_400, description="Quiet time: return to the guard preset this long after the last "
        "alarm that turned the camera.",
    )  # fmt: skip


class Linkage(StrictModel):
    """What an alarm of this rule brings up for the operator."""

    cameras: list[Identifier] = Field(
        default_factory=list, description="Extra cameras to show, beside those linked to the zone."
    )
    zone_cameras: bool = Field(default=True, description="Show the cameras linked to the alarm's zone.")
    record: bool = Field(default=True, description="Record evidence from the linked cameras.")
    ptz: list[PresetLinkage] = Field(
        default_factory=list, description="PTZ cameras turned to a preset when an alarm is raised (联动预置位)."
    )


class Verification(StrictModel):
    """研判 before dispatch: an alarm of this rule becomes a case only after an operator confirms it (确认); a false
    alarm (误报) stops at the operator. Without this, alarms go to the intake policy at once (a fence cut at night)."""

    within_s: float = Field(default=300, gt=0, le=86_400, description="The operator's time limit for a verdict.")
    supervisor_within_s: float = Field(
        default=600, gt=0, le=86_400, description="After the limit, or handed on (转人工复核): a supervisor's limit."
    )
    on_timeout: Literal["open_case", "keep_waiting"] = Field(
        default="open_case",
        description="When the supervisor's limit passes too: open the case anyway, or keep waiting for a verdict.",
    )


class Rule(StrictModel):
    """One alarm rule."""

    id: Identifier = Field(description="Stable rule id; part of every alarm fingerprint.")
    name: str = Field(min_length=1, description="Alarm title shown to operators.")
    match: Match = Field(description="Which readings this rule evaluates.")
    condition: Condition = Field(description="When the alarm is active.")
    severity: Severity = Field(description="Severity of alarms raised by this rule.")
    category: str = Field(min_length=1, description="Category used by the intake policy and dispatch table.")
    clear: ClearPolicy = Field(default_factory=ClearPolicy, description="How the alarm clears.")
    hold_s: float = Field(
        default=0, ge=0, le=86_400, description="The condition must hold this long before the alarm is raised."
    )
    flapping: Flapping = Field(default_factory=Flapping, description="Flapping detection.")
    inhibits: list[Identifier] = Field(
        default_factory=list,
        description="Rules whose alarms on the same device are inhibited while this rule's alarm is active "
        "(e.g. a controller's power loss inhibits its communication alarms).",
    )
    correlate: bool = Field(
        default=True, description="Join alarms in the same org unit within the correlation window into an incident."
    )
    linkage: Linkage = Field(default_factory=Linkage, description="Linked cameras and evidence.")
    verification: Verification | None = Field(
        default=None, description="研判: wait for an operator's verdict before the alarm can become a case."
    )
