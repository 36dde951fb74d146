"""Test session services: a private redis-server and Mosquitto on free ports.

They are real servers, started once per test session under a temporary directory, never the
machine's shared instances. Tests may kill and restart them through the fixtures' objects
(``redis_server.kill()``, ``mqtt_broker.restart()``); the function-scoped fixtures bring a stopped
service back up before the next test.
"""

from __future__ import annotations

import importlib.abc
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, mosquitto_binary

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
