"""The case's durable record: how a ``Case`` maps onto its row (columns, indicator columns, the ``extra`` JSON)
and back, and the errors of reading and writing it."""

from __future__ import annotations

from typing import Any

from sharpeye.governance.case import Case, CaseEvent, Source, Stage
from sharpeye.governance.store import CaseRow

# Case fields kept in the row's ``extra`` JSON (no column of their own).
_EXTRA = (
    "accepted_at",
    "handled_at",
    "sla",
    "light",
    "extension_pending",
    "returns",
    "extensions",
    "reworks",
    "reassignments",
    "merged_into",
    "claimed_by",
    "location",
    "satisfaction",
    "rated_at",
    "assists",
)


class CaseNotFound(LookupError):
    pass


class CaseConflict(RuntimeError):
    """The case changed between reading and writing (someone else acted first): read it again."""


def to_case(row: CaseRow) -> Case:
    extra = {k: v for k, v in (row.extra or {}).items() if k in _EXTRA}
    base = Case(
        id=row.id,
        title=row.title,
        category=row.category,
        severity=row.severity,
        source=Source(row.source),
        stage=Stage(row.stage),
        org_unit=row.org_unit,
        department=row.department,
        level=row.level,
        created_at=row.created_at,
        updated_at=row.updated_at,
        dispatched_at=row.dispatched_at,
        due_at=row.due_at,
        closed_at=row.closed_at,
        alarm_ids=list(row.alarm_ids or []),
        description=row.description,
    )
    if not extra:
        return base
    return Case.model_validate({**base.model_dump(), **extra})


def write_row(row: CaseRow, case: Case) -> None:
    """Copy a case onto its row (columns and ``extra``)."""
    row.stage = case.stage.value
    row.department = case.department
    row.level = case.level
    row.updated_at = case.updated_at
    row.dispatched_at = case.dispatched_at
    row.due_at = case.due_at
    row.closed_at = case.closed_at
    row.extra = extra_of(case)
    for name, value in indicator_columns(case).items():
        setattr(row, name, value)


def indicator_columns(case: Case) -> dict[str, Any]:
    """The fields of ``extra`` that also have columns, for the indicators to select and sum in SQL."""
    rating = case.satisfaction.value if case.satisfaction else None
    return {"accepted_at": case.accepted_at, "returns": case.returns, "extensions": case.extensions,
            "reworks": case.reworks, "satisfaction": rating}  # fmt: skip


def extra_of(case: Case) -> dict[str, Any]:
    return case.model_dump(mode="json", include=set(_EXTRA))


def new_row(case: Case) -> CaseRow:
    row = CaseRow(
        id=case.id,
        title=case.title,
        category=case.category,
        severity=str(case.severity),
        source=case.source.value,
        org_unit=case.org_unit,
        created_at=case.created_at,
        description=case.description,
        alarm_ids=list(case.alarm_ids),
    )
    write_row(row, case)
    return row


def event_note(event: CaseEvent) -> str:
    """The history line: the reason, then the details (department, override and who, due time)."""
    details = ", ".join(f"{k}={v}" for k, v in event.data.items() if k != "reason")
    if details:
        return f"{event.note} [{details}]" if event.note else f"[{details}]"
    return event.note
