"""Cases: list and detail with history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from api.deps import HubDep, require
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
    _: Reader,
    stage: Annotated[list[Stage] | None, Query(description="Only these stages.")] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CasePage:
    items, total = await hub.cases.list(
        CaseFilter(stages=stage or (), department=department, category=category, limit=limit, offset=offset)
    )
    return CasePage(items=items, total=total)


@router.get("/{case_id}")
async def get_case(hub: HubDep, _: Reader, case_id: str) -> CaseDetail:
    case = await hub.cases.get(case_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id!r}")
    return CaseDetail(case=case, history=await hub.cases.history(case_id))
