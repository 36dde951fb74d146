"""Test session services: a private redis-server and Mosquitto on free ports.

They are real servers, started once per test session under a temporary directory, never the
machine's shared instances. Tests may kill and restart them through the fixtures' objects
(``redis_server.kill()``, ``mqtt_broker.restart()``); the function-scoped fixtures bring a stopped
service back up before the next test.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr
from sharpeye.api.live.service import LiveService
from sharpeye.api.services import Services
from sharpeye.api.setting import ApiSettings
from sharpeye.api.user import UserStore
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, mosquitto_binary
from sharpeye.node.hub import Hub
from sharpeye.node.web import HubReady, app_for
from sharpeye.settings import Settings
from tests.helpers import wait_for

T = TypeVar("T")

STAGES = ("config", "ingest", "alarms", "governance", "api", "simulators")


class _BareStageBlocker(importlib.abc.MetaPathFinder):
    """The repository root is on sys.path for ``tests.*``; a bare ``import ingest`` must still fail, as it does in
    the installed wheel, where only ``sharpeye`` is a top-level name."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: object = None) -> ModuleSpec | None:
        if fullname.split(".")[0] in STAGES:
            raise ImportError(f"import sharpeye.{fullname}, not {fullname}: only 'sharpeye' is installed")
        return None


sys.meta_path.insert(0, _BareStageBlocker())


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_server_session(services_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(workdir=services_dir / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mqtt_broker_session(services_dir: Path) -> Iterator[EmbeddedMosquitto]:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: the test command installs it (see README); it must not be skipped")
    broker = EmbeddedMosquitto(workdir=services_dir / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def redis_server(redis_server_session: EmbeddedRedis) -> EmbeddedRedis:
    if not redis_server_session.running:
        redis_server_session.start()
    return redis_server_session


@pytest.fixture
def mqtt_broker(mqtt_broker_session: EmbeddedMosquitto) -> EmbeddedMosquitto:
    if not mqtt_broker_session.running:
        mqtt_broker_session.start()
    return mqtt_broker_session


@pytest.fixture
def keys() -> Keys:
    """A key prefix of this test's own, so tests never see each other's data."""
    return Keys(prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


# --- the app over a real hub --------------------------------------------------------------------------------


_HUB_SESSIONS: set[tuple[str, str]] = set()  # (broker URL, client id) of the test hubs made by hub_settings


def forget_mqtt_session(url: str, client_id: str) -> None:
    """End a stopped hub's persistent session on the broker (a clean connect under its client id), so the broker
    stops queueing every later test's device messages for it."""
    parts = urlsplit(url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=paho.MQTTv311)  # fmt: skip
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=5)
        client.loop(timeout=1.0)  # CONNACK: the broker has dropped the old session
        client.disconnect()
    except OSError:
        pass  # the broker is down (a test stopped it): the next test's fixture starts it with the sessions kept


@pytest.fixture(scope="module", autouse=True)
def _forget_hub_sessions() -> Iterator[None]:
    """After each test module (its hubs are stopped by then), the MQTT sessions its hubs held are ended."""
    yield
    sessions = list(_HUB_SESSIONS)
    _HUB_SESSIONS.clear()
    for url, client_id in sessions:
        if url.startswith("mqtt://"):
            forget_mqtt_session(url, client_id)


def own_mqtt_session(mqtt_url: str, prefix: str) -> str:
    """A client id of its own for a test hub on the session's broker (a hub process: SHARPEYE_MQTT_CLIENT_ID), ended
    after the test module like those of hub_settings. With the site's default one, a hub of the demo site would take
    over the session an earlier test's hub left on the broker, with every device message published since queued."""
    client_id = f"sharpeye-hub-{prefix}"
    _HUB_SESSIONS.add((mqtt_url, client_id))
    return client_id


def hub_settings(
    data_dir: Path,
    redis_url: str | None,
    mqtt_url: str | None,
    *,
    admin_password: str | None = None,
    prefix: str | None = None,
    node_id: str | None = None,
    cameras: bool = False,
    **extra: Any,
) -> Settings:
    """Settings of a test hub: its own data dir, the test session's Redis and broker (None: embedded), its own
    key prefix (a fresh one unless given), no cameras unless asked."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    if mqtt_url is not None and "mqtt_client_id" not in extra:
        # A session of this hub's own (its nodes share it, as a site's nodes do): with the site's default one, every
        # test hub of the demo site would take over the session the previous ones left on the session's broker,
        # with whatever other tests' devices published meanwhile still queued in it.
        extra["mqtt_client_id"] = own_mqtt_session(mqtt_url, prefix)
    return Settings(
        data_dir=data_dir,
        redis_url=redis_url,
        mqtt_url=mqtt_url,
        admin_password=SecretStr(admin_password) if admin_password is not None else None,
        redis_prefix=prefix,
        node_id=node_id or prefix,
        cameras=cameras,
        **extra,
    )


def hub_app(
    settings: Settings,
    site: SiteConfig | None = None,
    *,
    on_ready: HubReady | None = None,
    api_settings: ApiSettings | None = None,
) -> tuple[FastAPI, Hub]:
    """The node's app over a hub of ``settings`` on ``site`` (the demo site unless given), and that hub."""
    hub = Hub(settings, site or load_file(demo_path(), installed()))
    return app_for(hub, on_ready=on_ready, api_settings=api_settings), hub


class HubClient(TestClient):
    """A test client of the node's app, with the hub and the services the app runs on."""

    def __init__(self, app: FastAPI, hub: Hub) -> None:
        super().__init__(app)
        self.fastapi = app
        self.hub = hub
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> HubClient:
        super().__enter__()
        assert self.portal is not None
        self._loop = self.portal.call(asyncio.get_running_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the app and its hub; if that takes over a minute, the tasks still on the app's event loop are printed
        (to the test's captured stderr) while it goes on, so a hang shows what it waits on."""
        watchdog = threading.Timer(60, self._print_tasks)
        watchdog.daemon = True
        watchdog.start()
        try:
            super().__exit__(*exc)
        finally:
            watchdog.cancel()

    def _print_tasks(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while read from this thread
            return
        sys.stderr.write(f"the app has not stopped after 60 s; {len(tasks)} task(s) on its loop:\n")
        for task in tasks:
            task.print_stack(file=sys.stderr)

    @property
    def services(self) -> Services:
        services: Services = self.fastapi.state.services
        return services

    @property
    def users(self) -> UserStore:
        return self.services.users

    @property
    def live(self) -> LiveService:
        live: LiveService = self.fastapi.state.live
        return live

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on the app's event loop (e.g. ``client.call(lambda: client.users.add(...))``)."""
        assert self.portal is not None, "enter the client first"
        return self.portal.call(fn)

    def sign_in(self, username: str, password: str) -> None:
        """Send a bearer token of ``username`` with every later request."""
        response = self.post("/api/auth/token", data={"username": username, "password": password})
        assert response.status_code == 200, response.text
        self.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def wait_connected(self) -> None:
        """Until the hub is connected to its MQTT broker."""
        wait_for(lambda: self.hub.transport.connected.is_set(), what="the hub on its MQTT broker")


@contextmanager
def app_client(
    settings: Settings,
    site: SiteConfig | None = None,
    *,
    sign_in: str | None = None,
    connected: bool = False,
    api_settings: ApiSettings | None = None,
) -> Iterator[HubClient]:
    """The app over a started hub (stopped on leaving). ``sign_in``: sign in as admin with this password;
    ``connected``: wait until the hub is on its broker."""
    app, hub = hub_app(settings, site, api_settings=api_settings)
    with HubClient(app, hub) as client:
        if sign_in is not None:
            client.sign_in("admin", sign_in)
        if connected:
            client.wait_connected()
        yield client
