"""Dependencies shared by routers, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.user import Principal, UserStore

from sharpeye.audit import REQUEST_ORIGIN
from sharpeye.node.hub import Hub

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_users(request: Request) -> UserStore:
    users: UserStore = request.app.state.users
    return users


HubDep = Annotated[Hub, Depends(get_hub)]
UsersDep = Annotated[UserStore, Depends(get_users)]


SESSION_COOKIE = "sharpeye_session"
CSRF_COOKIE = "sharpeye_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def current_principal(
    request: Request, users: UsersDep, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    """The caller, from a bearer token (machine clients, API tokens) or the console's session cookie. A request
    made with the cookie that changes anything must carry the session's CSRF token in ``X-CSRF-Token``."""
    REQUEST_ORIGIN.set(request.client.host if request.client else "unknown")
    if token:
        record = await users.lookup(token)
        if record is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid or expired token", {"WWW-Authenticate": "Bearer"}
            )
        return record.principal()
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated", {"WWW-Authenticate": "Bearer"})
    record = await users.lookup(cookie)
    if record is None or record.kind != "session":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "session expired", {"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS and not users.csrf_matches(record, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER} header")
    return record.principal()


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold ``permission``. Every route uses exactly one of these."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.must_change_password:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "change your password first: POST /api/auth/password")
        if not allowed(principal.role, permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} lacks {permission}")
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return check


async def signed_in(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Dependency for one's own account (whoami, password change): any signed-in user, even one who must
    still change a generated password."""
    return principal


signed_in.permission = Permission.self_service  # type: ignore[attr-defined]


def public() -> None:
    """Dependency marking a route as deliberately open (probes, the console's static files, login)."""


PUBLIC = Depends(public)


def in_scope(hub: Hub, principal: Principal, org_unit: str) -> bool:
    """A user scoped to an org unit sees that unit and everything below it; unscoped users see all."""
    return principal.org_unit is None or principal.org_unit in hub.inventory.ancestors(org_unit)


def not_found_unless(visible: bool, what: str) -> None:
    """Out-of-scope objects answer 404, exactly as missing ones (their existence is not revealed)."""
    if not visible:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")
