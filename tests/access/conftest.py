"""An app on the demo site with real Redis and Mosquitto, and users of each kind, for the access tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sharpeye.api.app import create_app
from sharpeye.api.permission import Role
from sharpeye.api.user import UserStore
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.settings import Settings

PASSWORD = "access-Password-1"


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Settings:
    return Settings(cameras=False, data_dir=tmp_path_factory.mktemp("access"), redis_url=redis_server_session.url,
                    mqtt_url=mqtt_broker_session.url, admin_password=PASSWORD,  # type: ignore[arg-type]
                    redis_prefix=f"a{uuid.uuid4().hex[:8]}", node_id="access")  # fmt: skip


@pytest.fixture(scope="module")
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, load_file(demo_path(), installed()))) as client:
        users: UserStore = client.app.state.users  # type: ignore[attr-defined]
        assert client.portal is not None
        for role in (Role.operator, Role.integrator, Role.viewer):
            client.portal.call(users.add, role.value, PASSWORD, role, None)
        yield client
