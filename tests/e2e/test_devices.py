"""Device registry through the hub: MQTT discovery, the API, heartbeat-based health, dead letters and
per-device rate limits, against the real broker and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sharpeye.ingest.pipeline import RateLimiter

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

NEW_FENCE = {"name": "新装围界主机", "grid": "hedong-g2", "heartbeat_s": 1, "offline_after": 2,
             "zones": [{"id": "z1", "name": "东墙"}]}  # fmt: skip


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="pw", prefix=keys.prefix)
    with app_client(settings) as c:
        token = c.post("/api/auth/token", data={"username": "admin", "password": "pw"}).json()["access_token"]
        c.headers["Authorization"] = f"Bearer {token}"
        c.wait_connected()
        yield c


def devices(client: HubClient) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in client.get("/api/devices").json()}


def event(seq: int, zone: str = "z1", value: str = "alarm") -> dict[str, object]:
    return {"seq": seq, "ts": datetime.now(UTC).isoformat(), "event": value, "cause": "intrusion", "zone": zone}


def test_mqtt_discovery_adds_updates_and_removes(client: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    pub = Publisher(mqtt_broker.url)
    topic = "sharpeye/discovery/fence/fence-new/config"
    try:
        pub.publish(topic, {**NEW_FENCE}, retain=True)
        wait_for(lambda: "fence-new" in devices(client), what="discovered device")
        assert devices(client)["fence-new"]["source"] == "discovery"
        pub.publish("sharpeye/fence/fence-new/event", event(1))
        alarm = wait_for(lambda: client.get("/api/alarms?device=fence-new").json()["items"], what="its alarm")[0]
        assert alarm["org_unit"] == "hedong-g2" and alarm["place"] == "新装围界主机 / 东墙"
        pub.publish(topic, {**NEW_FENCE, "name": "改名的主机"}, retain=True)
        wait_for(lambda: devices(client).get("fence-new", {}).get("name") == "改名的主机", what="update")
        pub.publish(topic, {**NEW_FENCE, "grid": "nowhere"}, retain=True)  # invalid: rejected, old config kept
        letters = wait_for(lambda: [d for d in client.get("/api/deadletters").json() if d["reason"] == "bad_config"],
                           what="bad discovery dead-lettered")  # fmt: skip
        assert "nowhere" in letters[0]["detail"]
        assert devices(client)["fence-new"]["grid"] == "hedong-g2"
        pub.publish(topic, b"", retain=True)
        wait_for(lambda: "fence-new" not in devices(client), what="removal")
    finally:
        pub.publish(topic, b"", retain=True)
        pub.close()


def test_devices_through_the_api_are_validated_by_the_same_models(client: HubClient) -> None:
    bad = client.post("/api/devices", json={"id": "x1", "kind": "fence", "name": "x", "grid": "hedong-g1",
                                            "zones": [], "colour": "red"})  # fmt: skip
    assert bad.status_code == 422
    assert "zones" in bad.json()["detail"] and "colour" in bad.json()["detail"]
    assert (
        client.post("/api/devices", json={"id": "x1", "kind": "sprinkler", "name": "x", "grid": "g"}).status_code == 422
    )
    ok = client.post("/api/devices", json={"id": "api-fence", "kind": "fence", **NEW_FENCE})
    assert ok.status_code == 201
    assert devices(client)["api-fence"]["source"] == "api"
    assert client.delete("/api/devices/fence-school").status_code == 409  # defined in the site YAML
    assert client.delete("/api/devices/api-fence").status_code == 204
    assert "api-fence" not in devices(client)


def test_missing_heartbeats_raise_device_offline_and_it_clears_on_return(
    client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    assert client.post("/api/devices", json={"id": "hb-fence", "kind": "fence", **NEW_FENCE}).status_code == 201
    pub = Publisher(mqtt_broker.url)
    try:
        beat = {"seq": 1, "ts": datetime.now(UTC).isoformat()}
        pub.publish("sharpeye/fence/hb-fence/heartbeat", beat)
        wait_for(lambda: devices(client)["hb-fence"]["state"] == "online", what="online")

        def offline_alarm() -> dict[str, Any] | None:
            items = client.get("/api/alarms?device=hb-fence").json()["items"]
            return next((a for a in items if a["rule_id"] == "device-offline"), None)

        alarm = wait_for(offline_alarm, timeout=10, what="device-offline alarm after 2 missed beats")
        assert alarm["state"] == "active_unack" and devices(client)["hb-fence"]["state"] == "offline"
        pub.publish("sharpeye/fence/hb-fence/heartbeat", {**beat, "seq": 2})
        wait_for(lambda: client.get(f"/api/alarms/{alarm['id']}").json()["alarm"]["state"] == "cleared_unack",
                 what="cleared when the device is back")  # fmt: skip
    finally:
        pub.close()
        client.delete("/api/devices/hb-fence")


def test_a_flooding_device_is_limited_without_starving_others(
    client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    hub = client.hub
    hub.pipeline.limiter = RateLimiter(rate=20, burst=20)
    pub = Publisher(mqtt_broker.url)
    try:
        for _ in range(300):  # 300 messages at once from one controller
            pub.client.publish("sharpeye/fence/fence-reservoir/event", b'{"garbage": true}', qos=1)
        pub.publish("sharpeye/fence/fence-school/event", event(1, "z2"))
        alarm = wait_for(lambda: client.get("/api/alarms?device=fence-school").json()["items"], what="other device")
        assert alarm[0]["channel"] == "z2"
        letters = client.get("/api/deadletters?device=fence-reservoir&limit=1000").json()
        reasons = {d["reason"] for d in letters}
        assert "rate_limited" in reasons
        assert len(letters) < 100  # the flood is sampled, not stored whole
        metrics = client.get("/metrics").text
        assert 'sharpeye_rate_limited_total{kind="fence"}' in metrics
    finally:
        pub.close()
