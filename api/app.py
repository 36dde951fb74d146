"""The FastAPI application factory. The lifespan enters the services the node provides (the node starts its hub
there) and the live-view service; the API never sees the hub itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sharpeye.api import body
from sharpeye.api.body import rejected_counter
from sharpeye.api.deps import CSRF_HEADER, PUBLIC
from sharpeye.api.list_cache import CachedLists, ListCache
from sharpeye.api.live.camera import device_resolver, service_resolver
from sharpeye.api.live.service import LiveService
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.routes import admin, alarm, auth, camera, case, cluster, device, health, live, report, uplink, whep
from sharpeye.api.routes import alarm_handling as alarm_handling_route
from sharpeye.api.routes import arming as arming_route
from sharpeye.api.routes import assets as assets_route
from sharpeye.api.routes import evidence_bundle as evidence_bundle_route
from sharpeye.api.routes import field as field_route
from sharpeye.api.routes import gb28181 as gb28181_route
from sharpeye.api.routes import gb_record as gb_record_route
from sharpeye.api.routes import kind as kind_route
from sharpeye.api.routes import monthly_report as monthly_report_route
from sharpeye.api.routes import push as push_route
from sharpeye.api.routes import recording as recording_route
from sharpeye.api.routes import resident as resident_route
from sharpeye.api.routes import site as site_route
from sharpeye.api.routes import verification as verification_route
from sharpeye.api.services import Services, ServicesFactory
from sharpeye.api.setting import ApiSettings
from sharpeye.api.user import UserStore
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

_SECURITY_RAW = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP answer (those the answer does not set itself), the field
    app's permissions, the console's map tile origins in its CSP. Plain ASGI, not ``@app.middleware("http")``: that
    runs each request in a task of its own and streams the answer through a memory channel, which was a quarter of
    the hub's CPU per API call in bench/alarm_handling.py."""

    def __init__(self, app: ASGIApp, tile_origins: Callable[[], list[str]]) -> None:
        self.app = app
        self.tile_origins = tile_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                have = {name for name, _ in headers.raw}
                headers.raw.extend((name, value) for name, value in _SECURITY_RAW if name not in have)
                if path.startswith("/field/"):  # the field app takes photos and positions
                    headers["Permissions-Policy"] = FIELD_PERMISSIONS_POLICY
                elif path == "/" and (origins := self.tile_origins()):  # the map loads tiles from the site's server
                    policy = SECURITY_HEADERS["Content-Security-Policy"]
                    headers["Content-Security-Policy"] = policy.replace(
                        "img-src 'self' data: blob:", "img-src 'self' data: blob: " + " ".join(origins), 1
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestTiming:
    """ASGI middleware: each HTTP request's time until its answer starts, by method, route and status
    (``sharpeye_http_request_seconds``)."""

    def __init__(self, app: ASGIApp, services: Callable[[], Services | None]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start" and (running := self.services()) is not None:
                path = getattr(scope.get("route"), "path", "unmatched")
                running.metrics.requests.labels(scope["method"], path, str(message["status"])).observe(
                    time.perf_counter() - started
                )
            await send(message)

        await self.app(scope, receive, timed)


REDIS_RETRY_AFTER_S = 5  # the embedded Redis is back within about a second; an external one is the operator's


def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After, not 500, while the hub's Redis is down, restarting or still loading its data: the
    request was fine and will work again once Redis answers (health says the same meanwhile)."""
    if isinstance(exc, BusyLoadingError):
        why = "the hub's Redis is loading its data after a restart"
    elif isinstance(exc, RedisTimeoutError):
        why = "the hub's Redis did not answer in time"
    else:
        why = "the hub's Redis is unreachable (down or restarting)"
    log.warning("%s %s answered 503: %s (%s)", request.method, request.url.path, why, exc)
    return JSONResponse(
        {"detail": f"service unavailable: {why}; try again in a few seconds", "reason": "redis_unavailable"},
        status_code=503,
        headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
    )


FIELD_PERMISSIONS_POLICY = "camera=(self), microphone=(self), geolocation=(self)"  # photos, voice notes, GPS

ReadyCallback = Callable[[Services, str | None], Awaitable[None] | None]


def create_app(
    settings: Settings,
    services: ServicesFactory,
    *,
    on_ready: ReadyCallback | None = None,
    api_settings: ApiSettings | None = None,
) -> FastAPI:
    """Build the app over ``services`` (entered by the lifespan: the node starts its hub there).
    ``on_ready(services, generated_admin_password)`` runs once everything is up."""
    limits = api_settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services() as running:
            live: LiveService | None = None
            lists = ListCache(settings.list_cache_s, settings.list_cache_settle_s, running.metrics.list_cache)
            following = (asyncio.create_task(lists.follow(running.alarm_feed.redis, running.alarm_feed.keys.alarm_live),
                                             name="list cache") if settings.list_cache_s > 0 else None)  # fmt: skip
            app.state.list_cache = lists
            try:
                password = settings.admin_password.get_secret_value() if settings.admin_password else None
                generated = await running.users.ensure_admin(password)
                app.state.services = running
                app.state.rejected = rejected_counter(running.metrics)
                live_settings = LiveSettings()
                resolver = device_resolver(running.inventory.get, live_settings, gb_subscribe=running.gb_subscribe,
                                           gb_key_frame=running.gb_key_frame)  # fmt: skip
                if running.cameras is not None:  # viewers share the packets the camera service already reads
                    resolver = service_resolver(running.cameras.subscribe, resolver, live_settings)
                live = app.state.live = LiveService(resolver, live_settings)
                await live.start()
                if on_ready is not None:
                    result = on_ready(running, generated)
                    if result is not None:
                        await result
                yield
            finally:
                if following is not None:
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await following
                if live is not None:
                    await live.stop()

    app = FastAPI(
        title="SharpEye",
        version="0.1.0",
        description="Integration hub for Sharp Eyes (雪亮工程) devices and governance command centres (综治中心).",
        lifespan=lifespan,
    )

    # Installed first, so innermost: its early 413 still passes the security headers and the timing below.
    body.install(app, limits.max_body_bytes, lambda: getattr(app.state, "rejected", None))

    def list_cache() -> tuple[ListCache, UserStore] | None:
        cache: ListCache | None = getattr(app.state, "list_cache", None)
        running: Services | None = getattr(app.state, "services", None)
        return (cache, running.users) if cache is not None and running is not None else None

    # Inside the security headers and CORS (an answer is kept without them: CORS's depend on the request).
    app.add_middleware(CachedLists, running=list_cache)

    def tile_origins() -> list[str]:
        running: Services | None = getattr(app.state, "services", None)
        tiles = running.site.site.map.tiles if running is not None else None
        return list(tiles.origins()) if tiles is not None else []

    app.add_middleware(SecurityHeaders, tile_origins=tile_origins)

    if settings.cors_origins:  # closed unless origins are listed explicitly
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # The console's cookie session sends its CSRF token in a header; cookies need allow_credentials.
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
            allow_credentials=True,
        )

    app.add_middleware(RequestTiming, services=lambda: getattr(app.state, "services", None))

    app.add_exception_handler(RedisConnectionError, redis_unavailable)  # BusyLoadingError is one
    app.add_exception_handler(RedisTimeoutError, redis_unavailable)

    # A request is matched against the routes in this order, one by one: the monitoring room's busiest calls
    # (alarm lists, 研判 waiting list and verdicts) first. No two routers share a path.
    routers = (auth, health, alarm, verification_route, alarm_handling_route, case, report, uplink, device, camera,
               live, admin, site_route, whep, cluster)  # fmt: skip
    for router in (module.router for module in routers):
        app.include_router(router)
    app.include_router(recording_route.router)  # own recordings of cameras: ranges, playback, download
    app.include_router(gb_record_route.router)  # recordings held by GB/T 28181 devices
    app.include_router(kind_route.router)  # labels of kinds and case stages, for the console
    app.include_router(evidence_bundle_route.router)  # signed evidence bundles and the hub's key
    app.include_router(push_route.router)  # Web Push: the VAPID key and operators' browser subscriptions
    app.include_router(gb28181_route.router)  # GB/T 28181 PTZ, presets and device control
    app.include_router(arming_route.router)  # fence arm/disarm commands
    app.include_router(field_route.router)  # the field app: reports, tasks, patrols
    app.include_router(resident_route.router)  # the residents' public report page
    app.include_router(monthly_report_route.router)  # 月报: a period's statistics as XLSX or PDF
    app.include_router(assets_route.router)  # third-party console libraries from the data dir (sharpeye assets)

    @app.get("/", include_in_schema=False, dependencies=[PUBLIC])
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/field", include_in_schema=False, dependencies=[PUBLIC])
    async def field_root() -> RedirectResponse:
        return RedirectResponse("/field/")

    @app.get("/report", include_in_schema=False, dependencies=[PUBLIC])
    async def resident_page() -> RedirectResponse:  # the residents' page: a short address for posters and QR codes
        return RedirectResponse("/field/resident.html")

    # The field app at its own path, so its service worker's scope is /field/ (the console's is /).
    app.mount("/field", StaticFiles(directory=STATIC / "field", html=True), name="field")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
