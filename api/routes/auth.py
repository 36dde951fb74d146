"""Login: the OAuth2 password form returns a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from api.deps import PUBLIC, HubDep, UsersDep, signed_in
from api.user import Principal, Throttled, WeakPassword
from sharpeye.audit import record

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    role: str
    must_change_password: bool = False


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


def _origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/token", dependencies=[PUBLIC])
async def token(
    request: Request, hub: HubDep, users: UsersDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """The OAuth2 password form. Five failures for one name from one address lock it out for 15 minutes."""
    try:
        user = await users.login(form.username, form.password, _origin(request))
    except Throttled as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": str(exc.retry_after_s)}
        ) from None
    await record(hub.redis, hub.keys, f"user:{form.username}", "auth.login" if user else "auth.login_failed",
                 form.username, origin=_origin(request))  # fmt: skip
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password", {"WWW-Authenticate": "Bearer"})
    return Token(
        access_token=await users.issue_token(user), role=user.role, must_change_password=user.must_change_password
    )


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    request: Request,
    hub: HubDep,
    users: UsersDep,
    principal: Annotated[Principal, Depends(signed_in)],
    body: PasswordChange,
) -> None:
    """Change your own password (any signed-in user; required first when the password was generated)."""
    if await users.authenticate(principal.username, body.current_password) is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    try:
        await users.set_password(principal.username, body.new_password)
    except WeakPassword as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    await record(hub.redis, hub.keys, principal.actor, "auth.password_changed", principal.username,
                 origin=_origin(request))  # fmt: skip


@router.get("/me")
async def me(principal: Annotated[Principal, Depends(signed_in)]) -> Principal:
    """The caller's identity (any authenticated user)."""
    return principal
