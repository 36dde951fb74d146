"""Dependencies shared by routers, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.api.list_cache import PRINCIPAL_SCOPE_KEY
from sharpeye.api.list_cache import SESSION_COOKIE as SESSION_COOKIE
from sharpeye.api.live.service import LiveService
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.services import AuditLog, CameraFeeds, DeadLetters, Hotline, NodeStatus, Services
from sharpeye.api.user import Principal, UserStore
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case
from sharpeye.governance.field import FieldStore
from sharpeye.governance.hierarchy import HierarchyService
from sharpeye.governance.photo import PhotoStore
from sharpeye.governance.resident import ResidentStore
from sharpeye.governance.service import CaseScope, CaseService
from sharpeye.governance.uplink import UplinkService
from sharpeye.governance.verification import VerificationService
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.ownership import Ownership

from sharpeye.audit import REQUEST_ORIGIN
from sharpeye.clock import Clock
from sharpeye.metrics import Metrics
from sharpeye.role import Role

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)

# The getters below are ``async def`` although they only read an attribute: FastAPI runs a plain ``def`` dependency
# in its thread pool, a thread hop per dependency per request (bench/alarm_handling.py: a tenth of the API's time).


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_users(services: ServicesDep) -> UserStore:
    return services.users


async def get_audit(services: ServicesDep) -> AuditLog:
    return services.audit


async def get_inventory(services: ServicesDep) -> DeviceInventory:
    return services.inventory


async def get_alarms(services: ServicesDep) -> AlarmStore:
    return services.alarms


async def get_engine(services: ServicesDep) -> AlarmEngine:
    return services.engine


async def get_cases(services: ServicesDep) -> CaseService:
    return services.cases


async def get_photos(services: ServicesDep) -> PhotoStore:
    return services.photos


async def get_hotline(services: ServicesDep) -> Hotline:
    return services.hotline


async def get_uplinks(services: ServicesDep) -> UplinkService:
    return services.uplinks


async def get_deadletters(services: ServicesDep) -> DeadLetters:
    return services.deadletters


async def get_status(services: ServicesDep) -> NodeStatus:
    return services.status


async def get_cameras(services: ServicesDep) -> CameraFeeds | None:
    return services.cameras


async def get_field(services: ServicesDep) -> FieldStore:
    return services.field


async def get_residents(services: ServicesDep) -> ResidentStore:
    return services.residents


async def get_metrics(services: ServicesDep) -> Metrics:
    return services.metrics


async def get_site(services: ServicesDep) -> SiteConfig:
    return services.site


async def get_clock(services: ServicesDep) -> Clock:
    return services.clock


async def get_verification(services: ServicesDep) -> VerificationService:
    return services.verification


async def get_ownership(services: ServicesDep) -> Ownership:
    if services.ownership is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this node takes part in no cluster")
    return services.ownership


def get_hierarchy(services: ServicesDep) -> HierarchyService:
    if services.hierarchy is None or not services.hierarchy.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this hub has no hubs above or below it (governance.hierarchy)")
    return services.hierarchy


async def get_live(request: Request) -> LiveService:
    live: LiveService | None = getattr(request.app.state, "live", None)
    if live is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "live view is not running")
    return live


UsersDep = Annotated[UserStore, Depends(get_users)]
AuditDep = Annotated[AuditLog, Depends(get_audit)]
InventoryDep = Annotated[DeviceInventory, Depends(get_inventory)]
AlarmsDep = Annotated[AlarmStore, Depends(get_alarms)]
EngineDep = Annotated[AlarmEngine, Depends(get_engine)]
CasesDep = Annotated[CaseService, Depends(get_cases)]
PhotosDep = Annotated[PhotoStore, Depends(get_photos)]
HotlineDep = Annotated[Hotline, Depends(get_hotline)]
UplinksDep = Annotated[UplinkService, Depends(get_uplinks)]
DeadLettersDep = Annotated[DeadLetters, Depends(get_deadletters)]
StatusDep = Annotated[NodeStatus, Depends(get_status)]
CamerasDep = Annotated[CameraFeeds | None, Depends(get_cameras)]
SiteDep = Annotated[SiteConfig, Depends(get_site)]
FieldDep = Annotated[FieldStore, Depends(get_field)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ResidentsDep = Annotated[ResidentStore, Depends(get_residents)]
ClockDep = Annotated[Clock, Depends(get_clock)]
LiveDep = Annotated[LiveService, Depends(get_live)]
VerificationDep = Annotated[VerificationService, Depends(get_verification)]
OwnershipDep = Annotated[Ownership, Depends(get_ownership)]
HierarchyDep = Annotated[HierarchyService, Depends(get_hierarchy)]


CSRF_COOKIE = "sharpeye_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def current_principal(
    request: Request, users: UsersDep, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    """The caller, from a bearer token (machine clients, API tokens) or the console's session cookie. A request
    made with the cookie that changes anything must carry the session's CSRF token in ``X-CSRF-Token``."""
    REQUEST_ORIGIN.set(request.client.host if request.client else "unknown")
    handed = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(handed, Principal):  # found by the list cache's middleware for this request (a GET)
        return handed
    principal = await _principal(request, users, token)
    request.scope[PRINCIPAL_SCOPE_KEY] = principal  # whose write it is, for the list cache (read-your-writes)
    return principal


async def _principal(request: Request, users: UserStore, token: str | None) -> Principal:
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


def in_scope(inventory: DeviceInventory, principal: Principal, org_unit: str) -> bool:
    """A user scoped to an org unit sees that unit and everything below it; unscoped users see all."""
    return principal.org_unit is None or principal.org_unit in inventory.ancestors(org_unit)


def case_scope(inventory: DeviceInventory, principal: Principal) -> CaseScope:
    """The cases a caller may see: their org unit and below; a department handler only their department's (and
    none without a department)."""
    units = tuple(sorted(inventory.units_below(principal.org_unit))) if principal.org_unit else ()
    if principal.role is Role.department_handler:
        return CaseScope(units, principal.department, nothing=principal.department is None)
    return CaseScope(units)


def case_visible(inventory: DeviceInventory, principal: Principal, case: Case) -> bool:
    """Whether the caller may see ``case`` (the scope of ``case_scope``, for one case)."""
    if not in_scope(inventory, principal, case.org_unit):
        return False
    return principal.role is not Role.department_handler or (
        principal.department is not None
        and (case.department == principal.department or case.assisting(principal.department))
    )


def not_found_unless(visible: bool, what: str) -> None:
    """Out-of-scope objects answer 404, exactly as missing ones (their existence is not revealed)."""
    if not visible:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")
