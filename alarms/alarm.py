"""``Alarm``: a deduplicated condition identified by its fingerprint."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from sharpeye.config.rule import Severity


class AlarmState(StrEnum):
    """Acknowledgement and clearing are independent; the state names both."""

    active_unack = "active_unack"
    active_ack = "active_ack"
    cleared_unack = "cleared_unack"
    cleared = "cleared"

    @classmethod
    def of(cls, *, active: bool, acknowledged: bool) -> AlarmState:
        if active:
            return cls.active_ack if acknowledged else cls.active_unack
        return cls.cleared if acknowledged else cls.cleared_unack

    @property
    def active(self) -> bool:
        return self in (AlarmState.active_unack, AlarmState.active_ack)

    @property
    def acknowledged(self) -> bool:
        return self in (AlarmState.active_ack, AlarmState.cleared)


def fingerprint(rule_id: str, device_id: str, channel: str | None) -> str:
    """Identity of an alarm condition: rule + device + zone/channel. At most one open alarm each."""
    return f"{rule_id}|{device_id}|{channel or '-'}"


class Alarm(BaseModel):
    """One alarm as stored and served."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Unique alarm id (a new id each time the fingerprint opens again).")
    fingerprint: str = Field(description="rule|device|channel")
    rule_id: str
    device_id: str
    channel: str | None = None
    title: str = Field(description="Operator-facing title (the rule's name).")
    severity: Severity
    category: str
    state: AlarmState
    first_seen: datetime
    last_seen: datetime
    count: int = Field(ge=1, description="Occurrences while open (repeats do not create new alarms).")
    site: str
    org_unit: str = Field(description="Org unit (grid) where the alarm is.")
    place: str = Field(default="", description="Human-readable place: device and zone names.")
    cameras: list[str] = Field(default_factory=list, description="Linked cameras for the console.")
    evidence: list[str] = Field(default_factory=list, description="Evidence references (snapshots, clips).")
    cleared_at: datetime | None = None
    acknowledged_by: str | None = None
    value: str | float | bool | None = Field(default=None, description="Value of the reading that raised it.")
    silenced: str | None = Field(default=None, description="'silence' or 'inhibited' when raised without notification.")
    flapping: bool = Field(default=False, description="Too many transitions: held active until it settles.")
    incident: str | None = Field(default=None, description="Incident this alarm was correlated into.")
    owner: str | None = Field(default=None, description="The operator working the alarm (user:<name>), if any.")
    steps: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Ticked steps of its procedure: step number -> {actor, at}."
    )
    verdict: str | None = Field(
        default=None,
        description="研判: pending, escalated (to a supervisor), review (handed on), confirmed or false_alarm; "
        "None when the rule needs no verdict.",
    )


class Incident(BaseModel):
    """Alarms in one org unit within the correlation window: one matter for the operator and the queue."""

    model_config = ConfigDict(frozen=True)

    id: str
    site: str
    org_unit: str
    severity: Severity = Field(description="The highest severity of its members.")
    first_seen: datetime
    last_seen: datetime
    alarm_ids: list[str]


class AlarmTransition(BaseModel):
    """One entry of an alarm's history: what happened, by whom, when."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    action: str = Field(description="raised, repeated, cleared, acknowledged, commented, ...")
    actor: str = Field(description="'rule:<id>', 'device:<id>', or 'user:<name>'.")
    state: AlarmState
    note: str = ""
