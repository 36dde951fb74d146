"""GB/T 28181 through the whole hub: simulated devices register to the hub's platform, their alarms become
alarms in the API, and the hub, registered upward as a lower platform, forwards them to the upper platform; a
patrol car's positions, tracked by the hub, go to the upper platform that subscribes to its channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.conftest import app_client, hub_settings
from tests.helpers import env_secret, wait_for

PLATFORM_ID = "34020000002000000001"
UPPER_ID = "34010000002000000001"
DEVICES = [code("34020000", 132, n) for n in range(1, 21)]
SECRET = "e2e-device-secret-0123456789"


def site_yaml(upper_port: int) -> str:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    data["gb28181"] = {
        "sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1,
        "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper_port, "local_port": 0,
                    "password": env_secret("upper-pw"), "retry_s": 0.2, "keepalive_interval_s": 5},
    }  # fmt: skip
    # the demo's own NVR (and its camera) are left out: this test counts its 20 devices
    data["devices"] = [
        d for d in data["devices"] if d["kind"] != "gb28181" and not str(d.get("url")).startswith("gb28181:")
    ]
    data["devices"] += [
        {"id": dev, "kind": "gb28181", "name": f"雪亮摄像机{i}", "grid": "hedong-g2",
         "heartbeat_s": 2, "offline_after": 3}
        for i, dev in enumerate(DEVICES)
    ]  # fmt: skip
    data["rules"].append(
        {"id": "gb-video-alarm", "name": "视频报警", "match": {"kind": "gb28181.alarm"},
         "condition": {"type": "state", "active": ["alarm"]}, "severity": "major", "category": "perimeter_intrusion",
         "clear": {"mode": "quiet", "quiet_s": 300}}
    )  # fmt: skip
    return yaml.safe_dump(data, allow_unicode=True)


def test_devices_register_alarm_and_the_alarm_goes_upward(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="pw",
                            device_secret=SECRET, prefix=keys.prefix)  # fmt: skip
    upper_port = free_port()
    site = load_text(site_yaml(upper_port), installed())
    with app_client(settings, site) as client:
        token = client.post("/api/auth/token", data={"username": "admin", "password": "pw"}).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        hub = client.hub
        portal = client.portal
        assert portal is not None
        upper = UpperPlatformSimulator(UPPER_ID, "upper-pw", port=upper_port, t1=0.1)
        portal.call(upper.start)
        # No passwords of their own in the site: each device's is derived from the hub's device secret.
        sims = [SimDevice(id=dev, password=device_password(SECRET, dev, "sip"), keepalive_s=1) for dev in DEVICES]
        sims[0].mobile = True  # a patrol car: its MobilePosition reports become a track, which goes upward
        fleet = DeviceFleet(sims, platform_id=PLATFORM_ID, platform_port=hub.gb_platform_port, t1=0.1)
        portal.call(fleet.start)
        try:

            def all_online() -> bool:
                devices = client.get("/api/devices?kind=gb28181").json()
                return len(devices) == 20 and all(d["state"] == "online" for d in devices)

            wait_for(all_online, timeout=20, what="20 GB/T 28181 devices online")

            def channel_cameras() -> list[dict[str, Any]]:
                cams = client.get("/api/devices?kind=camera").json()
                return [c for c in cams if c["source"] == "gb28181"]

            cams = wait_for(lambda: len(channel_cameras()) == 20 and channel_cameras(), timeout=20,
                            what="each device's channel as a camera")  # fmt: skip
            assert {c["grid"] for c in cams} == {"hedong-g2"}
            assert all(c["config"]["url"].startswith("gb28181:") for c in cams)
            portal.call(fleet.alarm, sims[3].id)

            def gb_alarm() -> dict[str, Any] | None:
                items = client.get("/api/alarms").json()["items"]
                return next((a for a in items if a["rule_id"] == "gb-video-alarm"), None)

            alarm = wait_for(gb_alarm, timeout=10, what="the device's alarm in the API")
            assert alarm["device_id"] == DEVICES[3] and alarm["org_unit"] == "hedong-g2"
            lower = wait_for(lambda: upper.lowers.get(PLATFORM_ID), timeout=10, what="hub registered upward")
            wait_for(lambda: lower.alarms, timeout=10, what="the alarm forwarded to the upper platform")

            # the upper platform subscribes to the car's channel's position: the hub's track of the car goes up
            car_channel = sims[0].channels[0][0]
            wait_for(lambda: sims[0].route.sent, timeout=20, what="the car reporting its position to the hub")
            sub = portal.call(lambda: upper.open_subscription(PLATFORM_ID, "MobilePosition", target=car_channel,
                                                              fields=[("Interval", 1)]))  # fmt: skip
            assert sub.status == 200
            reports = wait_for(lambda: [n.body for n in upper.notified("MobilePosition", sub.call_id) if n.body],
                               timeout=20, what="the car's position NOTIFY upward")  # fmt: skip
            assert reports[0].device_id == car_channel
            got = (reports[0].float_field("longitude"), reports[0].float_field("latitude"))
            assert any(abs(got[0] - lon) < 1e-5 and abs(got[1] - lat) < 1e-5 for lon, lat in sims[0].route.sent)
            metrics = client.get("/metrics").text
            assert f'sharpeye_gb_cascade_subscriptions{{event="MobilePosition",platform="{UPPER_ID}"}} 1.0' in metrics
            assert f'sharpeye_gb_cascade_notify_failures_total{{event="MobilePosition",platform="{UPPER_ID}"}} 0.0' in (
                metrics
            )
            cascades = client.get("/api/gb28181/cascades").json()
            (city,) = cascades["platforms"]
            assert cascades["running"] and city["registered"] and city["subscriptions"] == {"MobilePosition": 1}
            assert city["alarms_forwarded"] >= 1 and city["channels"] == 20
        finally:
            portal.call(fleet.stop)
            portal.call(upper.stop)
