"""X-Forwarded-For is believed only from configured proxies: the login lockout keys on the real peer, so a client
cannot dodge it by rotating the header; behind a configured proxy, the forwarded client is the one locked out.
The hub is served by uvicorn with the options ``sharpeye run`` uses (a TestClient has no proxy handling)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import uvicorn
from sharpeye.api.permission import Role
from sharpeye.api.setting import ApiSettings

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from sharpeye.node.hub import Hub
from sharpeye.node.web import proxy_options
from tests.conftest import hub_app, hub_settings
from tests.helpers import wait_for

PASSWORD = "Forwarded-Pass-1"


@contextmanager
def served(data: Path, redis_url: str, mqtt_url: str, api_settings: ApiSettings) -> Iterator[tuple[str, Hub]]:
    settings = hub_settings(data, redis_url, mqtt_url, admin_password=PASSWORD, prefix=f"x{uuid.uuid4().hex[:8]}")
    app, hub = hub_app(settings, api_settings=api_settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **proxy_options(api_settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=30, what="the hub serving")
    assert thread.is_alive(), "the hub did not start"
    try:
        yield f"http://127.0.0.1:{port}", hub
    finally:
        server.should_exit = True
        thread.join(20)


def add_viewer(url: str) -> None:
    token = requests.post(f"{url}/api/auth/token", data={"username": "admin", "password": PASSWORD}, timeout=10)
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    body = {"username": "lee", "password": "Lee-Viewer-Pass-9", "role": Role.viewer.value}
    assert requests.post(f"{url}/api/users", json=body, headers=headers, timeout=10).status_code == 201


def fail_login(url: str, forwarded_for: str) -> requests.Response:
    return requests.post(f"{url}/api/auth/token", data={"username": "lee", "password": "wrong"},
                         headers={"X-Forwarded-For": forwarded_for}, timeout=10)  # fmt: skip


def test_rotating_x_forwarded_for_does_not_dodge_the_lockout(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto
) -> None:
    with served(tmp_path, redis_server.url, mqtt_broker.url, ApiSettings()) as (url, _):
        add_viewer(url)
        answers = [fail_login(url, f"203.0.113.{n}").status_code for n in range(1, 7)]
        assert answers == [401] * 5 + [429], answers  # one peer, 127.0.0.1, whatever the header says


def test_a_configured_proxy_is_believed(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto
) -> None:
    with served(tmp_path, redis_server.url, mqtt_broker.url, ApiSettings(trusted_proxies=["127.0.0.1"])) as (url, _):
        add_viewer(url)
        answers = [fail_login(url, "198.51.100.7").status_code for _ in range(6)]
        assert answers == [401] * 5 + [429], answers  # the forwarded client is locked out ...
        assert fail_login(url, "198.51.100.8").status_code == 401  # ... not everyone behind the proxy
