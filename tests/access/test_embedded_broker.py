"""The hub's embedded Mosquitto (no SHARPEYE_MQTT_URL): no anonymous clients, one account per device made from the
inventory (and remade, with a SIGHUP, when devices are added or removed), the hub's own account, and the demo's
simulated site still raising its fence alarm while each simulated device logs in with its own credentials."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.registry import installed
from sharpeye.simulators.scenario import scenario_dir
from sharpeye.simulators.site import run_site

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.node.hub import Hub
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import wait_for
from tests.mqtt_account import AccountClient

PASSWORD = "embedded-Broker-1"
NEW_FENCE = {"id": "fence-added", "kind": "fence", "name": "新装围界主机", "grid": "hedong-g2", "heartbeat_s": 30,
             "zones": [{"id": "z1", "name": "东墙"}]}  # fmt: skip


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, redis_server_session: EmbeddedRedis) -> Iterator[HubClient]:
    data = tmp_path_factory.mktemp("embedded-broker")
    settings = hub_settings(data, redis_server_session.url, None, device_secret=None,
                            admin_password=PASSWORD, node_id="embedded", prefix=f"e{uuid.uuid4().hex[:8]}")  # fmt: skip
    with app_client(settings) as c:
        token = c.post("/api/auth/token", data={"username": "admin", "password": PASSWORD}).json()["access_token"]
        c.headers["Authorization"] = f"Bearer {token}"
        c.wait_connected()
        yield c


def hub_of(client: HubClient) -> Hub:
    hub: Hub = client.hub
    return hub


def port_of(hub: Hub) -> int:
    assert isinstance(hub.embedded_broker, EmbeddedMosquitto)
    return hub.embedded_broker.port


def login(port: int, username: str | None, password: str | None) -> AccountClient:
    client = AccountClient(port, username, password)
    assert client.connected.wait(5)
    return client


def refused(client: AccountClient) -> bool:
    return bool(client.refused)


def test_the_device_secret_is_generated_once_and_private(client: HubClient) -> None:
    hub = hub_of(client)
    kept = Path(hub.settings.data_dir) / "device-secret"
    assert kept.read_text().strip() == hub.device_secret and kept.stat().st_mode & 0o077 == 0
    broker = hub.embedded_broker
    assert isinstance(broker, EmbeddedMosquitto)
    auth = broker.workdir / "auth"
    for name in ("passwd", "acl", "credentials.csv"):
        assert (auth / name).stat().st_mode & 0o077 == 0, name
    assert "allow_anonymous false" in broker.conf_path.read_text()
    assert hub.device_secret not in (auth / "passwd").read_text()


def test_anonymous_and_wrong_passwords_are_refused(client: HubClient) -> None:
    hub = hub_of(client)
    port = port_of(hub)
    anonymous = login(port, None, None)
    assert refused(anonymous)
    anonymous.close()
    wrong = login(port, "fence-reservoir", device_password(hub.device_secret, "fence-reservoir", "sip"))
    assert refused(wrong)  # the SIP label gives another password
    wrong.close()
    url = urlsplit(hub.mqtt_url)
    assert url.username == "sharpeye-hub" and url.password
    assert url.password != hub.device_secret


def test_a_device_cannot_publish_on_another_devices_topics(client: HubClient) -> None:
    hub = hub_of(client)
    port = port_of(hub)
    url = urlsplit(hub.mqtt_url)
    watcher = login(port, url.username, url.password)
    assert not refused(watcher)
    watcher.subscribe("sharpeye/#")
    own, other = "fence-reservoir", "fence-school"
    device = login(port, own, device_password(hub.device_secret, own))
    assert not refused(device)
    try:
        device.publish(f"sharpeye/fence/{other}/event", b"forged")
        device.publish(f"sharpeye/discovery/fence/{other}/config", b"forged")
        device.publish(f"sharpeye/fence/{own}/state", b"legitimate")
        wait_for(lambda: f"sharpeye/fence/{own}/state" in watcher.topics(), what="the legitimate message")
        assert [t for t in watcher.topics() if other in t] == []
    finally:
        device.close()
        watcher.close()


def test_the_simulated_site_logs_in_per_device_and_raises_the_fence_alarm(client: HubClient) -> None:
    hub = hub_of(client)
    url, secret = hub.simulator_access()
    assert secret == hub.device_secret and urlsplit(url).password is None  # devices never get the hub's login
    stop = threading.Event()
    site = load_file(demo_path(), installed())
    sim = threading.Thread(target=run_site, args=(site, url, scenario_dir() / "demo.yaml", stop, 1.0, secret))
    sim.start()
    try:

        def intrusion() -> list[dict[str, object]]:
            items: list[dict[str, object]] = client.get("/api/alarms").json()["items"]
            return [a for a in items if a["rule_id"] == "fence-intrusion" and a["device_id"] == "fence-reservoir"]

        wait_for(intrusion, timeout=30, what="the demo's fence intrusion")
        states = {d["id"]: d["state"] for d in client.get("/api/devices?kind=fence").json()}
        assert states["fence-reservoir"] == "online"
    finally:
        stop.set()
        sim.join(10)


def test_devices_added_later_get_an_account_and_lose_it_when_removed(client: HubClient) -> None:
    hub = hub_of(client)
    port = port_of(hub)
    password = device_password(hub.device_secret, NEW_FENCE["id"])  # type: ignore[arg-type]
    before = login(port, "fence-added", password)
    assert refused(before)  # unknown devices cannot log in (nor announce themselves by discovery)
    before.close()
    assert client.post("/api/devices", json=NEW_FENCE).status_code == 201

    def logs_in() -> bool:
        attempt = login(port, "fence-added", password)
        attempt.close()
        return not refused(attempt)

    wait_for(logs_in, what="the new device's account (files rewritten, Mosquitto reloaded)")
    assert client.delete("/api/devices/fence-added").status_code == 204
    wait_for(lambda: not logs_in(), what="the removed device's account gone")
