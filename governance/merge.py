"""Merge proposals (并单): a new report of the same matter as an open case is proposed for folding into it.

Same matter = same category, reported within ``MergePolicy.window_hours`` of each other, and nearby: within
``radius_m`` when both have a position, else in the same org unit (a grid is a few hundred metres across).
Proposals are ranked nearest first, then closest in time. Nothing is merged until an operator confirms
(``CaseService.merge``), which moves the report's alarms and incidents into the target case.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field
from sharpeye.config.governance import MergePolicy
from sharpeye.governance.case import Case, Stage
from sharpeye.governance.cluster import distance_m


class MergeProposal(BaseModel):
    target: str = Field(description="The open case the report would fold into.")
    title: str = Field(description="The target's title.")
    stage: str = Field(description="The target's stage.")
    distance_m: float | None = Field(description="Metres apart; null when matched by org unit (no positions).")
    gap_hours: float = Field(description="Hours between the two reports.")


def mergeable(case: Case) -> bool:
    """Only a case not yet dispatched can be folded into another (the flow's merge rule)."""
    return case.stage in (Stage.reported, Stage.accepted)


def live(case: Case) -> bool:
    """A case another may fold into: not closed, cancelled, merged or parked."""
    return not case.stage.terminal and case.stage is not Stage.parked


def propose(case: Case, candidates: Iterable[Case], policy: MergePolicy) -> list[MergeProposal]:
    """Open cases of the same matter as ``case``, best first."""
    found: list[MergeProposal] = []
    window_s = policy.window_hours * 3600
    for other in candidates:
        if other.id == case.id or other.category != case.category or not live(other):
            continue
        gap_s = abs((other.created_at - case.created_at).total_seconds())
        if gap_s > window_s:
            continue
        metres: float | None = None
        if case.location is not None and other.location is not None:
            metres = distance_m(case.location, other.location)
            if metres > policy.radius_m:
                continue
        elif other.org_unit != case.org_unit:
            continue
        found.append(MergeProposal(target=other.id, title=other.title, stage=other.stage.value,
                                   distance_m=None if metres is None else round(metres, 1),
                                   gap_hours=round(gap_s / 3600, 2)))  # fmt: skip
    found.sort(key=lambda p: (p.distance_m if p.distance_m is not None else policy.radius_m, p.gap_hours))
    return found
