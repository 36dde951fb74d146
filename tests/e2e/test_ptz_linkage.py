"""PTZ linkage (联动预置位): a fence zone's intrusion turns the demo's GB/T 28181 camera to the zone's preset, and the
camera returns to its guard preset after the quiet time; an alarm of another zone leaves it where it is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.gb28181.ptz import decode
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import app_client, hub_settings
from tests.helpers import Publisher, wait_for

SECRET = "linkage-device-secret-0123456789"
CAMERA = "cam-village-gb"
CHANNEL = "34020000001310000102"
QUIET_S = 3.0


def site_yaml() -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    data["gb28181"]["sip_t1_s"] = 0.1
    rule = next(r for r in data["rules"] if r["id"] == "fence-intrusion")
    rule.setdefault("linkage", {})["ptz"] = [
        {"camera": CAMERA, "preset": 2, "zones": ["z2", "z3"], "guard_preset": 1, "return_after_s": QUIET_S}
    ]
    nvr = next(d for d in data["devices"] if d["kind"] == "gb28181")
    return yaml.safe_dump(data, allow_unicode=True), nvr


def test_fence_zone_turns_the_camera_to_its_preset_and_back(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    text, nvr_config = site_yaml()
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="Linkage-Pass-1",
                            device_secret=SECRET, prefix=keys.prefix)  # fmt: skip
    with app_client(settings, load_text(text, installed()), sign_in="Linkage-Pass-1") as client:
        portal = client.portal
        assert portal is not None
        hub = client.hub
        channels = [(c["id"], c["name"]) for c in nvr_config["channels"]]
        nvr = SimDevice(id=nvr_config["id"], password=device_password(SECRET, nvr_config["id"], "sip"), kind="nvr",
                        channel_count=len(channels), channels=channels, keepalive_s=2)  # fmt: skip
        head = nvr.control.head(CHANNEL)
        head.presets = {1: ("看守位", 0.0, 0.0, 1.0), 2: ("学校北侧围墙", 120.0, -10.0, 4.0)}
        fleet = DeviceFleet([nvr], platform_id="34020000002000000001",
                            platform_port=hub.gb_platform_port, t1=0.1)  # fmt: skip
        portal.call(fleet.start)
        try:
            platform = hub.gb_platform
            assert platform is not None
            wait_for(lambda: len(platform.channels()) == len(channels), timeout=20, what="the NVR registered")
            wait_for(lambda: hub.ptz_linker is not None, timeout=10, what="the PTZ linkage running")
            linker = hub.ptz_linker
            assert linker is not None
            pub = Publisher(mqtt_broker.url)
            now = datetime.now(UTC).isoformat()
            pub.publish("sharpeye/fence/fence-school/event",
                        {"seq": 1, "ts": now, "event": "alarm", "cause": "intrusion", "zone": "z1"})  # fmt: skip
            wait_for(lambda: linker.stats["other_zone"] >= 1, timeout=15, what="z1's alarm seen by the linkage")
            assert head.position()["pan"] == 0.0 and head.commands == []  # another zone: not turned

            pub.publish("sharpeye/fence/fence-school/event",
                        {"seq": 2, "ts": now, "event": "alarm", "cause": "intrusion", "zone": "z2"})  # fmt: skip
            wait_for(lambda: head.position()["pan"] == 120.0, timeout=15, what="the camera at z2's preset")
            assert head.position()["zoom"] == 4.0
            # the head turns when the NVR gets the command; the linkage counts it (and starts the quiet time) once the
            # NVR's answer is back, a moment later
            wait_for(lambda: linker.stats["preset"] == 1, timeout=10, what="the linkage counting the preset call")
            assert linker.pending_returns == [CAMERA]
            head.pan = 30.0  # an operator turned it meanwhile; z3's alarm turns it back and restarts the quiet time
            pub.publish("sharpeye/fence/fence-school/event",
                        {"seq": 3, "ts": now, "event": "alarm", "cause": "intrusion", "zone": "z3"})  # fmt: skip
            pub.close()
            wait_for(lambda: linker.stats["preset"] == 2, timeout=15, what="z3's alarm calling the preset")
            wait_for(lambda: head.position()["pan"] == 0.0, timeout=10, what="back at the guard preset")
            assert [decode(c).preset for c in head.commands] == [2, 2, 1]
            assert head.received[2] - head.received[1] >= QUIET_S * 0.95  # quiet time counted from the last alarm
            assert linker.stats["guard"] == 1 and linker.pending_returns == []
            alarm = client.get("/api/alarms?device=fence-school").json()["items"]
            assert {a["channel"] for a in alarm} == {"z1", "z2", "z3"}
        finally:
            portal.call(fleet.stop)
