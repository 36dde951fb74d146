"""Web Push: the hub's VAPID public key, and each operator's browser subscriptions (``governance.push``).

Browsers subscribe through the console's service worker (``/static/sw.js``), phones through the field app's
(``/field/sw.js``); a ``webpush`` uplink then sends alarms and case events to the subscriptions of the users it names,
and with ``task:assignees`` new tasks to the people whose task the case is."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Response, status
from pydantic import BaseModel, Field
from sharpeye.api.deps import AuditDep, SiteDep, UplinksDep, require
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.routes.field import task_departments
from sharpeye.api.user import Principal, UserStore
from sharpeye.config.site import SiteConfig
from sharpeye.governance.push import (
    ASSIGNEES,
    PushError,
    PushService,
    PushSubscriptionIn,
    Readers,
    origin,
    subscription_id,
)
from sharpeye.governance.uplink import UplinkService

router = APIRouter(tags=["push"])

# Notifications carry case (and alarm) summaries: those who read cases subscribe, and the field app's people, who
# hear of their own tasks (every role but the integrator's).
Reader = Annotated[Principal, Depends(require(Permission.push_subscribe))]


class PushKey(BaseModel):
    public_key: str = Field(description="The hub's VAPID public key (base64url, uncompressed P-256 point): the "
                            "applicationServerKey of PushManager.subscribe.")  # fmt: skip
    enabled: bool = Field(description="Whether a webpush uplink sends to this user (else subscribing does nothing).")


class PushSubscribed(BaseModel):
    id: str
    endpoint: str
    created_at: datetime


class Unsubscribe(BaseModel):
    endpoint: str = Field(min_length=10, max_length=1000)


def push_readers(users: UserStore) -> Readers:
    """Who may still be pushed to: enabled users whose role may subscribe (``push:subscribe``: what subscribing
    needs), with their role (``PushService.readers``)."""

    async def readers(names: Collection[str]) -> dict[str, str]:
        return {u.username: str(u.role) for u in await users.get_many(names)
                if not u.disabled and allowed(u.role, Permission.push_subscribe)}  # fmt: skip

    return readers


def _push(uplinks: UplinkService) -> PushService:
    if uplinks.push is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "web push is not running on this node")
    return uplinks.push


def _reaches(uplinks: UplinkService, site: SiteConfig, principal: Principal) -> bool:
    wanted = {principal.username, f"role:{principal.role}"}
    if task_departments(site, principal):
        wanted.add(ASSIGNEES)
    return any(u.format == "webpush" and wanted & set(u.to) for u in uplinks.uplinks.values())


@router.get("/api/push/key")
async def push_key(uplinks: UplinksDep, site: SiteDep, principal: Reader) -> PushKey:
    return PushKey(public_key=await _push(uplinks).public_key(), enabled=_reaches(uplinks, site, principal))


@router.get("/api/push/subscriptions")
async def my_subscriptions(uplinks: UplinksDep, principal: Reader) -> list[PushSubscribed]:
    """The caller's subscribed browsers."""
    subs = await _push(uplinks).of_user(principal.username)
    return [PushSubscribed(id=s.id, endpoint=s.endpoint, created_at=s.created_at) for s in subs]


@router.post("/api/push/subscriptions", status_code=status.HTTP_201_CREATED)
async def subscribe(
    uplinks: UplinksDep,
    audit: AuditDep,
    site: SiteDep,
    principal: Reader,
    body: PushSubscriptionIn,
    user_agent: Annotated[str, Header()] = "",
) -> PushSubscribed:
    """Keep this browser's subscription (PushSubscription.toJSON()) for the caller."""
    try:
        sub = await _push(uplinks).subscribe(principal.username, str(principal.role), body, user_agent,
                                             departments=task_departments(site, principal),
                                             org_unit=principal.org_unit)  # fmt: skip
    except PushError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    await audit.record(principal.actor, "push.subscribe", sub.id, {"push_service": origin(body.endpoint)})
    return PushSubscribed(id=sub.id, endpoint=sub.endpoint, created_at=sub.created_at)


@router.delete("/api/push/subscriptions", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def unsubscribe(uplinks: UplinksDep, audit: AuditDep, principal: Reader, body: Unsubscribe) -> Response:
    """Forget the caller's subscription of this endpoint (404 if the caller has none there)."""
    if not await _push(uplinks).unsubscribe(principal.username, body.endpoint):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no subscription of yours at this endpoint")
    await audit.record(principal.actor, "push.unsubscribe", subscription_id(body.endpoint))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
