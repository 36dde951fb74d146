"""Login: the OAuth2 password form returns a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import PUBLIC, UsersDep, current_principal
from api.user import Principal

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    role: str
    must_change_password: bool = False


@router.post("/token", dependencies=[PUBLIC])
async def token(users: UsersDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = await users.authenticate(form.username, form.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password", {"WWW-Authenticate": "Bearer"})
    return Token(
        access_token=await users.issue_token(user), role=user.role, must_change_password=user.must_change_password
    )


@router.get("/me")
async def me(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller's identity (any authenticated user)."""
    return principal
