"""An app on the demo site with real Redis and Mosquitto, and users of each kind, for the access tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sharpeye.api.permission import Role

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.settings import Settings
from tests.conftest import HubClient, app_client, hub_settings

PASSWORD = "access-Password-1"


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Settings:
    return hub_settings(tmp_path_factory.mktemp("access"), redis_server_session.url, mqtt_broker_session.url,
                        admin_password=PASSWORD, prefix=f"a{uuid.uuid4().hex[:8]}", node_id="access")  # fmt: skip


@pytest.fixture(scope="module", name="app_client")
def access_client(settings: Settings) -> Iterator[HubClient]:
    with app_client(settings) as client:
        for role in (Role.operator, Role.integrator, Role.viewer):
            client.call(lambda role=role: client.users.add(role.value, PASSWORD, role, None))  # type: ignore[misc]
        yield client
