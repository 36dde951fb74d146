"""Sign-in and credentials: bearer tokens (the OAuth2 password form), console cookie sessions with a CSRF token,
logout, password change, and named API tokens for integrators' scripts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sharpeye.api.deps import CSRF_COOKIE, PUBLIC, SESSION_COOKIE, AuditDep, UsersDep, oauth2, require, signed_in
from sharpeye.api.permission import ROLE_PERMISSIONS, Permission
from sharpeye.api.services import AuditLog
from sharpeye.api.user import Principal, Throttled, TokenInfo, User, UserStore, WeakPassword

router = APIRouter(tags=["auth"])

Self = Annotated[Principal, Depends(require(Permission.self_service))]
MAX_API_TOKEN_DAYS = 366


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    role: str
    must_change_password: bool = False


class SessionStarted(BaseModel):
    username: str
    role: str
    must_change_password: bool = False
    csrf_token: str = Field(description="Send it in the X-CSRF-Token header with every POST/PUT/PATCH/DELETE.")


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


class NewApiToken(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w .\-]+$", description="What the token is for.")
    expires_in_days: int = Field(default=90, ge=1, le=MAX_API_TOKEN_DAYS, description="Lifetime in days.")


class ApiTokenIssued(BaseModel):
    token: str = Field(description="The bearer token; shown only in this answer.")
    info: TokenInfo


def _origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _login(request: Request, audit: AuditLog, users: UserStore, form: OAuth2PasswordRequestForm) -> User:
    try:
        user = await users.login(form.username, form.password, _origin(request))
    except Throttled as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": str(exc.retry_after_s)}
        ) from None
    await audit.record(f"user:{form.username}", "auth.login" if user else "auth.login_failed",
                       form.username, origin=_origin(request))  # fmt: skip
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password", {"WWW-Authenticate": "Bearer"})
    return user


@router.post("/api/auth/token", dependencies=[PUBLIC])
async def token(
    request: Request, audit: AuditDep, users: UsersDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """The OAuth2 password form. Five failures for one name from one address lock it out for 15 minutes."""
    user = await _login(request, audit, users, form)
    return Token(
        access_token=await users.issue_token(user), role=user.role, must_change_password=user.must_change_password
    )


@router.post("/api/auth/session", dependencies=[PUBLIC])
async def session(
    request: Request,
    response: Response,
    audit: AuditDep,
    users: UsersDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> SessionStarted:
    """Console sign-in: sets an HttpOnly, SameSite=Strict session cookie (Secure over TLS) and a readable CSRF
    cookie whose value must come back in the X-CSRF-Token header of every unsafe request. Same throttling."""
    user = await _login(request, audit, users, form)
    session_token, csrf = await users.issue_session(user)
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, session_token, max_age=users.token_ttl_s, path="/", secure=secure,
                        httponly=True, samesite="strict")  # fmt: skip
    response.set_cookie(CSRF_COOKIE, csrf, max_age=users.token_ttl_s, path="/", secure=secure, httponly=False,
                        samesite="strict")  # fmt: skip
    return SessionStarted(
        username=user.username, role=user.role, must_change_password=user.must_change_password, csrf_token=csrf
    )


@router.post("/api/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request,
    response: Response,
    audit: AuditDep,
    users: UsersDep,
    principal: Annotated[Principal, Depends(signed_in)],
    bearer: Annotated[str | None, Depends(oauth2)],
) -> None:
    """Revoke the credential of this request: the bearer token, or the console session (and clear its cookies)."""
    credential = bearer or request.cookies.get(SESSION_COOKIE)
    if credential:
        await users.revoke(credential)
    if not bearer:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    await audit.record(principal.actor, "auth.logout", principal.username, origin=_origin(request))


@router.post("/api/auth/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    request: Request,
    audit: AuditDep,
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
    await audit.record(principal.actor, "auth.password_changed", principal.username,
                       origin=_origin(request))  # fmt: skip


class Me(Principal):
    permissions: list[Permission] = Field(description="What the caller's role may do (the console shows only that).")


@router.get("/api/auth/me")
async def me(principal: Annotated[Principal, Depends(signed_in)]) -> Me:
    """The caller's identity and permissions (any authenticated user)."""
    return Me(**principal.model_dump(), permissions=sorted(ROLE_PERMISSIONS[principal.role]))


@router.post("/api/tokens", status_code=status.HTTP_201_CREATED)
async def create_api_token(
    request: Request, audit: AuditDep, users: UsersDep, principal: Self, body: NewApiToken
) -> ApiTokenIssued:
    """A named API token for a script, acting as you (your role and scope), until it expires or is revoked."""
    user = await users.get(principal.username)
    if user is None:  # deleted meanwhile
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no such user")
    issued, info = await users.issue_api_token(user, body.name, body.expires_in_days * 86400)
    await audit.record(principal.actor, "token.create", info.id,
                       {"after": info.model_dump(mode="json")}, origin=_origin(request))  # fmt: skip
    return ApiTokenIssued(token=issued, info=info)


@router.get("/api/tokens")
async def list_api_tokens(users: UsersDep, principal: Self) -> list[TokenInfo]:
    """Your live sessions and API tokens (never the tokens themselves)."""
    return await users.tokens(principal.username)


@router.delete("/api/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_token(request: Request, audit: AuditDep, users: UsersDep, principal: Self, token_id: str) -> None:
    """Revoke one of your tokens or sessions by id."""
    if not await users.revoke_id(principal.username, token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id!r}")
    await audit.record(principal.actor, "token.revoke", token_id, origin=_origin(request))
