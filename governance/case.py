"""``Case`` (事件/案件): a unit of governance work, from alarms or from people's reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from config.rule import Severity


class Stage(StrEnum):
    """Stages of DOMAIN.md; the console shows the Chinese names."""

    reported = "reported"  # 上报
    accepted = "accepted"  # 受理/立案
    dispatched = "dispatched"  # 分拨/派遣
    handling = "handling"  # 处置
    feedback = "feedback"  # 反馈
    verifying = "verifying"  # 核查
    closed = "closed"  # 结案
    cancelled = "cancelled"  # 注销
    parked = "parked"  # 挂账

    @property
    def label_zh(self) -> str:
        return _ZH[self]


_ZH = {
    Stage.reported: "上报",
    Stage.accepted: "立案",
    Stage.dispatched: "派遣",
    Stage.handling: "处置",
    Stage.feedback: "反馈",
    Stage.verifying: "核查",
    Stage.closed: "结案",
    Stage.cancelled: "注销",
    Stage.parked: "挂账",
}


class Light(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class Source(StrEnum):
    alarm = "alarm"
    grid_worker = "grid_worker"
    resident = "resident"
    hotline = "hotline"


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


class CaseEvent(BaseModel):
    """One entry of a case's history and audit trail."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    action: str
    actor: str
    from_stage: Stage | None
    to_stage: Stage
    note: str = ""
