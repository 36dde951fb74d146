"""Administration: users and the audit log."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sharpeye.api.deps import AuditDep, InventoryDep, SiteDep, UplinksDep, UsersDep, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal, WeakPassword, check_password_strength

from sharpeye.role import Role

router = APIRouter(tags=["admin"])

Admin = Annotated[Principal, Depends(require(Permission.users_admin))]


class UserView(BaseModel):
    username: str
    role: Role
    org_unit: str | None
    department: str | None = None
    disabled: bool
    must_change_password: bool


class NewUser(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    password: str = Field(max_length=200)
    role: Role
    org_unit: str | None = Field(default=None, description="Scope: this org unit and below (None: everything).")
    department: str | None = Field(default=None, description="Department of a department handler.")


@router.get("/api/users")
async def list_users(users: UsersDep, _: Admin) -> list[UserView]:
    return [UserView(**u.model_dump(exclude={"password_hash"})) for u in await users.list()]


@router.post("/api/users", status_code=status.HTTP_201_CREATED)
async def add_user(
    request: Request,
    inventory: InventoryDep,
    site: SiteDep,
    audit: AuditDep,
    users: UsersDep,
    principal: Admin,
    body: NewUser,
) -> UserView:
    if body.org_unit is not None and inventory.unit(body.org_unit) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no org unit {body.org_unit!r}")
    if body.department is not None and body.department not in {d.id for d in site.departments}:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no department {body.department!r}")
    try:
        check_password_strength(body.password, body.username)
        user = await users.add(body.username, body.password, body.role, body.org_unit, must_change_password=True,
                               department=body.department)  # fmt: skip
    except WeakPassword as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    view = UserView(**user.model_dump(exclude={"password_hash"}))
    await audit.record(principal.actor, "user.add", user.username, {"after": view.model_dump()},
                       origin=request.client.host if request.client else "")  # fmt: skip
    return view


@router.post("/api/users/{username}/disable")
async def disable_user(
    audit: AuditDep, users: UsersDep, uplinks: UplinksDep, principal: Admin, username: str
) -> UserView:
    if username == principal.username:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot disable yourself")
    try:
        user = await users.set_disabled(username, True)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}") from None
    revoked = await users.revoke_all(username)
    pushes = await uplinks.push.drop_user(username) if uplinks.push is not None else 0  # no more Web Push
    change = {"before": {"disabled": False}, "after": {"disabled": True}, "revoked_tokens": revoked,
              "push_subscriptions_removed": pushes}  # fmt: skip
    await audit.record(principal.actor, "user.disable", username, change)
    return UserView(**user.model_dump(exclude={"password_hash"}))


@router.get("/api/audit", response_model=None)
async def audit_log(
    audit: AuditDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> list[dict[str, Any]] | Response:
    """The audit log, newest first; ``format=csv`` exports it."""
    rows = [
        e for e in await audit.entries(limit * 5 if actor or action else limit)
        if (actor is None or e["actor"] == actor) and (action is None or e["action"].startswith(action))
    ][:limit]  # fmt: skip
    if format == "json":
        return rows
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", "at", "actor", "action", "target", "origin", "details"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "details": str(row["details"])})
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="sharpeye-audit.csv"'})  # fmt: skip
