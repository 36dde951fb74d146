"""The web app of a node: the hub builds and runs everything, the API gets the services its routes use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from sharpeye.api.app import create_app
from sharpeye.api.services import AlarmFeed, AuditLog, DeadLetters, Hotline, Services, ServicesFactory
from sharpeye.api.setting import ApiSettings
from sharpeye.api.user import UserStore
from sharpeye.clock import Clock
from sharpeye.config.site import SiteConfig
from sharpeye.governance.field import FieldStore
from sharpeye.governance.photo import PhotoStore
from sharpeye.governance.resident import ResidentStore
from sharpeye.ingest.gb28181.subscription import PositionStore
from sharpeye.ingest.registry import Registry
from sharpeye.node.hub import Hub
from sharpeye.settings import Settings

HubReady = Callable[[Hub, str | None], Awaitable[None] | None]


def proxy_options(api_settings: ApiSettings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-For/-Proto: believed only from the configured proxies. uvicorn's own
    default believes any local peer (127.0.0.1), so a local client could pick the address that login throttling
    and the audit see; without configured proxies the headers are ignored."""
    if not api_settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(api_settings.trusted_proxies)}


def services_of(hub: Hub) -> Services:
    """What the API's routes use, from a started hub."""
    return Services(
        settings=hub.settings,
        site=hub.site,
        clock=hub.clock,
        metrics=hub.metrics,
        status=hub,
        users=UserStore(hub.redis, hub.keys, hub.settings.token_ttl_s),
        audit=AuditLog(hub.redis, hub.keys),
        inventory=hub.inventory,
        deadletters=DeadLetters(hub.redis, hub.keys),
        alarms=hub.alarm_store,
        engine=hub.engine,
        alarm_feed=AlarmFeed(hub.redis, hub.keys),
        cases=hub.cases,
        photos=PhotoStore(hub.db, hub.settings.data_dir / "photos", hub.site.governance.reports),
        hotline=Hotline(hub.cases, hub.redis, hub.keys),
        uplinks=hub.uplinks,
        cameras=hub.cameras,
        verification=hub.verification,
        field=FieldStore(hub.redis, hub.keys, hub.clock),
        residents=ResidentStore(hub.redis, hub.keys, hub.site.governance.residents, hub.site.governance.uplinks),
        gb_subscribe=hub.gb_puller.subscribe if hub.gb_puller is not None else None,
        gb_key_frame=hub.gb_puller.request_key_frame if hub.gb_puller is not None else None,
        gb_platform=lambda: hub.gb_platform,
        ownership=hub.ownership,
        gb_control=lambda: hub.gb_control,
        gb_tracks=PositionStore(hub.redis, hub.keys),
        gb_cascades=lambda: hub.gb_cascades,
        publish=lambda topic, payload: hub.transport.publish(topic, payload),
        hierarchy=hub.hierarchy,
    )


def hub_services(hub: Hub) -> ServicesFactory:
    """The app's services factory over ``hub``: entering starts the hub, leaving stops it (also after a failed
    start, so embedded servers started on the way are stopped)."""

    @asynccontextmanager
    async def run() -> AsyncIterator[Services]:
        try:
            await hub.start()
            yield services_of(hub)
        finally:
            await hub.stop()

    return run


def build_app(
    settings: Settings,
    site: SiteConfig,
    *,
    registry: Registry | None = None,
    clock: Clock | None = None,
    on_ready: HubReady | None = None,
    api_settings: ApiSettings | None = None,
) -> FastAPI:
    """The node's app: a hub over ``settings`` and ``site``, served by the API. ``on_ready(hub,
    generated_admin_password)`` runs once the hub and the app are up."""
    hub = Hub(settings, site, registry=registry, clock=clock)
    return app_for(hub, on_ready=on_ready, api_settings=api_settings)


def app_for(hub: Hub, *, on_ready: HubReady | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    """The API over ``hub`` (not started yet: the app's lifespan starts and stops it)."""

    def ready(_: Services, generated: str | None) -> Awaitable[None] | None:
        return on_ready(hub, generated) if on_ready is not None else None

    return create_app(hub.settings, hub_services(hub), on_ready=ready, api_settings=api_settings)
