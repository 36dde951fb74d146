"""Governance settings: intake policy, dispatch table and SLA table."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.config.org import Level
from sharpeye.config.rule import Severity
from sharpeye.config.secret import LongSecret


class IntakeRule(StrictModel):
    """Which alarms become cases. The first matching entry decides."""

    category: str = Field(description="Alarm category, or '*' for any.")
    min_severity: Severity = Field(default=Severity.warning, description="Alarms at least this severe become cases.")
    open_case: bool = Field(default=True, description="False: alarms of this category stay alarms only.")


class DispatchRule(StrictModel):
    """Where cases of a category go: the lowest level that may handle them, raised by severity."""

    category: str = Field(description="Case category, or '*' for any.")
    level: Level = Field(description="Lowest level that handles this category.")
    severity_levels: dict[Severity, Level] = Field(
        default_factory=dict,
        description="Minimum level per severity, e.g. {critical: town}: severe cases go higher.",
    )
    department: Identifier | None = Field(
        default=None, description="Fixed department id; unset: a department at the level that handles it."
    )


class SlaRule(StrictModel):
    """Time limit of a category, counted from dispatch."""

    category: str = Field(description="Case category, or '*' for the default.")
    limit: float = Field(gt=0, description="Time limit in 'unit'.")
    unit: Literal["working_hours", "working_days", "hours"] = Field(
        default="working_hours", description="Unit of the limit, on the Chinese working calendar."
    )
    yellow_share: float = Field(
        default=0.8, gt=0, lt=1, description="Light turns yellow when this share of the limit is used."
    )


class EscalationStep(StrictModel):
    """One supervision (督办) step, fired once per case when its time comes.

    The step fires when the case has used ``share`` of its limit plus ``after_hours`` more, both counted
    on the case's own clock (working time for working-hour and working-day limits).
    """

    id: Identifier = Field(description="Stable step id, recorded with every firing.")
    share: float = Field(ge=0, le=10, description="Share of the limit used, e.g. 0.8; 1.0 = at the deadline.")
    after_hours: float = Field(default=0, ge=0, description="Further time after that share, in (working) hours.")
    notify: Literal["handler", "centre", "level_above"] = Field(
        description="Who is told: the handling department, the centre's operators, or the level above."
    )


def _default_escalation() -> list[EscalationStep]:
    return [
        EscalationStep(id="remind-handler", share=0.8, notify="handler"),
        EscalationStep(id="remind-centre", share=1.0, notify="centre"),
        EscalationStep(id="escalate", share=1.0, after_hours=4, notify="level_above"),
    ]


class ReportLimits(StrictModel):
    """Limits on photos uploaded with people's reports (JPEG and PNG only, checked by their bytes)."""

    photo_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0, description="Largest photo accepted, bytes.")
    photos_per_request: int = Field(default=6, gt=0, le=50, description="Most photos in one upload.")
    request_max_bytes: int = Field(
        default=24 * 1024 * 1024, gt=0, description="Largest upload request (all photos and fields), bytes."
    )


class MergePolicy(StrictModel):
    """When a new report is proposed for merging (并单) into an open case of the same category."""

    radius_m: float = Field(default=200.0, gt=0, le=10_000, description="At most this far apart, metres.")
    window_hours: float = Field(default=72.0, gt=0, le=24 * 90, description="Reported at most this far apart.")


UplinkEvent = Literal["case", "alarm"]


def _all_events() -> list[UplinkEvent]:
    return ["case", "alarm"]


class Uplink(StrictModel):
    """An external system that receives case and alarm events as signed webhooks."""

    id: Identifier = Field(description="Stable uplink id (keys its retry queue and dead letters).")
    url: str = Field(pattern=r"^https?://", max_length=500, description="Receiver URL (http or https).")
    secret: LongSecret = Field(
        description="HMAC-SHA256 key shared with the receiver (16+ characters), as ${NAME} (read from environment "
        "variable NAME)."
    )
    events: list[UplinkEvent] = Field(
        default_factory=_all_events, min_length=1, description="Which event kinds to forward."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="One delivery attempt's time limit.")
    max_attempts: int = Field(
        default=20, ge=1, le=100, description="Attempts before dead-lettering (20 with the default backoff: about 2 h)."
    )
    backoff_s: float = Field(default=2.0, gt=0, le=3600, description="Delay before the second attempt.")
    backoff_max_s: float = Field(default=600.0, gt=0, le=86_400, description="Longest delay between attempts.")


class Governance(StrictModel):
    """Intake, dispatch and time limits."""

    intake: list[IntakeRule] = Field(default_factory=list, description="Alarm → case policy, in order.")
    dispatch: list[DispatchRule] = Field(default_factory=list, description="Dispatch table, in order.")
    sla: list[SlaRule] = Field(default_factory=list, description="Time limits per category.")
    working_hours: tuple[int, int] = Field(
        default=(9, 17), description="Working day as (start hour, end hour), local time."
    )
    escalation: list[EscalationStep] = Field(
        default_factory=_default_escalation,
        description="Supervision steps (督办), in firing order: remind the handler, the centre, then escalate.",
    )

    reports: ReportLimits = Field(default_factory=ReportLimits, description="Photo upload limits.")
    merge: MergePolicy = Field(default_factory=MergePolicy, description="Merge proposals (并单).")
    uplinks: list[Uplink] = Field(default_factory=list, description="Webhook receivers of case and alarm events.")

    @field_validator("uplinks")
    @classmethod
    def _unique_uplinks(cls, uplinks: list[Uplink]) -> list[Uplink]:
        ids = [u.id for u in uplinks]
        for i in ids:
            if ids.count(i) > 1:
                raise ValueError(f"uplink id {i!r} is used twice")
        return uplinks

    @field_validator("escalation")
    @classmethod
    def _unique_steps(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"escalation step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps
