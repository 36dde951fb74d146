"""``Case`` (事件/案件): a unit of governance work, from alarms or from people's reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from sharpeye.config.rule import Severity
from sharpeye.ingest.driver import Labels


class Stage(StrEnum):
    """Stages of DOMAIN.md; the console shows their ``STAGE_LABELS``."""

    reported = "reported"  # 上报
    accepted = "accepted"  # 受理/立案
    dispatched = "dispatched"  # 分拨/派遣
    handling = "handling"  # 处置
    feedback = "feedback"  # 反馈
    verifying = "verifying"  # 核查
    closed = "closed"  # 结案
    cancelled = "cancelled"  # 注销
    parked = "parked"  # 挂账
    merged = "merged"  # 并单: folded into another case

    @property
    def terminal(self) -> bool:
        """No action leaves this stage (parked cases may still be reopened)."""
        return self in _TERMINAL

    @property
    def open(self) -> bool:
        """Dispatched and not yet closed: the SLA clock runs (or is paused) and the light means something."""
        return self in _CLOCKED

    @property
    def label_zh(self) -> str:
        return STAGE_LABELS[self]["zh"]


STAGE_LABELS: dict[Stage, Labels] = {
    Stage.reported: {"zh": "上报", "en": "reported"},
    Stage.accepted: {"zh": "立案", "en": "accepted"},
    Stage.dispatched: {"zh": "派遣", "en": "dispatched"},
    Stage.handling: {"zh": "处置", "en": "handling"},
    Stage.feedback: {"zh": "反馈", "en": "feedback"},
    Stage.verifying: {"zh": "核查", "en": "verifying"},
    Stage.closed: {"zh": "结案", "en": "closed"},
    Stage.cancelled: {"zh": "注销", "en": "cancelled"},
    Stage.parked: {"zh": "挂账", "en": "parked"},
    Stage.merged: {"zh": "已并单", "en": "merged"},
}
"""The one source of the stages' display names (the API serves them to the console)."""
_TERMINAL = frozenset({Stage.closed, Stage.cancelled, Stage.merged})
_CLOCKED = frozenset({Stage.dispatched, Stage.handling, Stage.feedback, Stage.verifying})


class Light(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class Source(StrEnum):
    alarm = "alarm"
    grid_worker = "grid_worker"
    resident = "resident"
    hotline = "hotline"


class Satisfaction(StrEnum):
    """A reporter's rating of a closed case (回访/评价). 满意率 counts satisfied and basically satisfied."""

    satisfied = "satisfied"  # 满意
    basic = "basic"  # 基本满意
    unsatisfied = "unsatisfied"  # 不满意

    @property
    def counts_as_satisfied(self) -> bool:
        return self is not Satisfaction.unsatisfied


class ClockUnit(StrEnum):
    """How a time limit is counted (see config.governance.SlaRule.unit)."""

    working_hours = "working_hours"
    working_days = "working_days"
    hours = "hours"


class SlaState(BaseModel):
    """The SLA clock of a dispatched case, frozen at dispatch from the category's rule.

    Times are measured in the unit's own measure: working seconds on the working calendar for
    ``working_hours``/``working_days``, plain seconds for ``hours``.
    """

    model_config = ConfigDict(frozen=True)

    unit: ClockUnit = Field(description="Measure of the limit.")
    limit_s: float = Field(ge=0, description="Limit including approved extensions, in measured seconds.")
    yellow_share: float = Field(description="Share of the limit after which the light is yellow.")
    paused_s: float = Field(default=0, ge=0, description="Measured seconds spent paused (extension pending).")
    paused_at: datetime | None = Field(default=None, description="Start of the current pause, if paused.")
    requested_s: float = Field(default=0, ge=0, description="Extension asked for by the pending request.")


class GeoPoint(BaseModel):
    """WGS-84 position of the matter, when the source knows it (patrol terminal, device placement)."""

    model_config = ConfigDict(frozen=True)

    lat: float = Field(ge=-90, le=90, description="Latitude, degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees.")


class Assist(BaseModel):
    """A co-handling department (协办) of a case and its own feedback; the lead department is ``Case.department``."""

    model_config = ConfigDict(frozen=True)

    department: str
    assigned_at: datetime
    done_at: datetime | None = Field(default=None, description="When this department fed back (协办反馈).")
    note: str = Field(default="", description="Its feedback.")
    actor: str | None = Field(default=None, description="Who fed back.")


class Case(BaseModel):
    """A case as stored and served."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Case number, e.g. 'QS-20260105-0001'.")
    title: str
    category: str
    severity: Severity
    source: Source
    stage: Stage
    org_unit: str = Field(description="Where the matter is (an org unit id, normally a grid).")
    department: str | None = Field(default=None, description="Department it is dispatched to.")
    level: str | None = Field(default=None, description="Level of that department (village, town, ...).")
    created_at: datetime
    updated_at: datetime
    dispatched_at: datetime | None = None
    due_at: datetime | None = None
    closed_at: datetime | None = None
    light: Light | None = None
    alarm_ids: list[str] = Field(default_factory=list, description="Alarms behind this case.")
    description: str = ""
    location: GeoPoint | None = Field(default=None, description="Where the matter is, if known.")
    accepted_at: datetime | None = Field(default=None, description="立案 time.")
    handled_at: datetime | None = Field(
        default=None, description="When the department last reported its result (反馈); cleared on rework."
    )
    sla: SlaState | None = Field(default=None, description="SLA clock; set at dispatch.")
    extension_pending: bool = Field(default=False, description="An extension request awaits approval.")
    returns: int = Field(default=0, ge=0, description="Times returned by a department (回退).")
    extensions: int = Field(default=0, ge=0, description="Approved extensions (延期).")
    reworks: int = Field(default=0, ge=0, description="Failed checks sent back (返工).")
    reassignments: int = Field(default=0, ge=0, description="Times dispatched again to another department (改派).")
    merged_into: str | None = Field(default=None, description="Case this one was merged into (并单).")
    claimed_by: str | None = Field(default=None, description="Handler who claimed it (签收).")
    satisfaction: Satisfaction | None = Field(
        default=None, description="The reporter's rating after closing (回访/评价); counted in 满意率."
    )
    rated_at: datetime | None = Field(default=None, description="When the reporter rated the case.")
    assists: list[Assist] = Field(
        default_factory=list,
        description="Co-handling departments (协办), each with its own feedback; the case "
        "closes when the lead department's feedback is verified.",
    )

    def assisting(self, department: str | None) -> bool:
        """Whether ``department`` co-handles this case (协办)."""
        return department is not None and any(a.department == department for a in self.assists)


class CaseEvent(BaseModel):
    """One entry of a case's history and audit trail."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    action: str
    actor: str
    from_stage: Stage | None
    to_stage: Stage
    note: str = ""
    case_id: str = Field(default="", description="The case this event belongs to.")
    role: str = Field(default="", description="Role the actor acted in.")
    data: dict[str, str] = Field(default_factory=dict, description="Details: department, reason, override, ...")
