"""Cases: list and detail with history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.deps import HubDep, in_scope, not_found_unless, require
from api.permission import Permission
from api.user import Principal
from governance.case import Case, CaseEvent, Stage
from governance.service import CaseFilter

router = APIRouter(prefix="/api/cases", tags=["cases"])

Reader = Annotated[Principal, Depends(require(Permission.cases_read))]


class CasePage(BaseModel):
    items: list[Case]
    total: int


class CaseDetail(BaseModel):
    case: Case
    history: list[CaseEvent]


@router.get("")
async def list_cases(
    hub: HubDep,
    principal: Reader,
    stage: Annotated[list[Stage] | None, Query(description="Only these stages.")] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CasePage:
    scope = sorted(hub.inventory.units_below(principal.org_unit)) if principal.org_unit else ()
    items, total = await hub.cases.list(
        CaseFilter(stages=stage or (), department=department, category=category, org_units=scope, limit=limit,
                   offset=offset)
    )  # fmt: skip
    return CasePage(items=items, total=total)


@router.get("/{case_id}")
async def get_case(hub: HubDep, principal: Reader, case_id: str) -> CaseDetail:
    case = await hub.cases.get(case_id)
    not_found_unless(case is not None and in_scope(hub, principal, case.org_unit), f"case {case_id!r}")
    assert case is not None
    return CaseDetail(case=case, history=await hub.cases.history(case_id))
