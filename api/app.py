"""The FastAPI application factory. The lifespan owns the hub and everything it runs."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sharpeye.api.deps import CSRF_HEADER, PUBLIC
from sharpeye.api.live.camera import device_resolver, service_resolver
from sharpeye.api.live.service import LiveService
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.routes import admin, alarm, auth, camera, case, cluster, device, health, live, report, uplink, whep
from sharpeye.api.routes import site as site_route
from sharpeye.api.user import UserStore
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import Registry

from sharpeye.clock import Clock
from sharpeye.node.hub import Hub
from sharpeye.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}

ReadyCallback = Callable[[Hub, str | None], Awaitable[None] | None]


def create_app(
    settings: Settings,
    site: SiteConfig,
    *,
    registry: Registry | None = None,
    clock: Clock | None = None,
    on_ready: ReadyCallback | None = None,
) -> FastAPI:
    """Build the app. ``on_ready(hub, generated_admin_password)`` runs once the hub is up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = Hub(settings, site, registry=registry, clock=clock)
        try:
            await hub.start()
            users = UserStore(hub.redis, hub.keys, settings.token_ttl_s)
            password = settings.admin_password.get_secret_value() if settings.admin_password else None
            generated = await users.ensure_admin(password)
            app.state.hub = hub
            app.state.users = users
            live_settings = LiveSettings()
            resolver = device_resolver(hub.inventory.get, live_settings)
            if hub.cameras is not None:  # viewers share the packets the camera service already reads
                resolver = service_resolver(hub.cameras.subscribe, resolver)
            app.state.live = LiveService(resolver, live_settings)
            await app.state.live.start()
            if on_ready is not None:
                result = on_ready(hub, generated)
                if result is not None:
                    await result
            yield
        finally:
            live = getattr(app.state, "live", None)
            if live is not None:
                await live.stop()
            await hub.stop()

    app = FastAPI(
        title="SharpEye",
        version="0.1.0",
        description="Integration hub for Sharp Eyes (雪亮工程) devices and governance command centres (综治中心).",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    if settings.cors_origins:  # closed unless origins are listed explicitly
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # The console's cookie session sends its CSRF token in a header; cookies need allow_credentials.
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
            allow_credentials=True,
        )

    @app.middleware("http")
    async def timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        hub: Hub | None = getattr(request.app.state, "hub", None)
        if hub is not None:
            hub.metrics.requests.labels(request.method, path, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    routers = (auth, health, alarm, case, report, uplink, device, camera, live, admin, site_route, whep, cluster)
    for router in (module.router for module in routers):
        app.include_router(router)

    @app.get("/", include_in_schema=False, dependencies=[PUBLIC])
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
