"""GB/T 28181 control through the hub's API: PTZ moves the simulated camera's head, presets are set, listed, called
and deleted, device commands reach the device; only roles holding the permission, only in their unit; every
command audited; a silent device is a clear 504; the hub's subscriptions bring a MobilePosition track; /metrics
counts it all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.role import Role
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import wait_for

PLATFORM_ID = "34020000002000000001"
NVR = code("34020000", 118, 41)
SECRET = "control-device-secret-0123456789"
PASSWORD = "control-Password-1"


def site_yaml() -> str:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    data["gb28181"] = {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "query_timeout_s": 2}
    data["devices"] = [
        d for d in data["devices"] if d["kind"] != "gb28181" and not str(d.get("url")).startswith("gb28181:")
    ]
    data["devices"].append({"id": NVR, "kind": "gb28181", "name": "河东录像机", "grid": "hedong-g2", "heartbeat_s": 2})
    return yaml.safe_dump(data, allow_unicode=True)


def _token(client: HubClient, user: str) -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_ptz_presets_and_device_commands_through_the_api(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PASSWORD,
                            device_secret=SECRET, prefix=keys.prefix)  # fmt: skip
    site = load_text(site_yaml(), installed())
    with app_client(settings, site) as client:
        portal = client.portal
        assert portal is not None
        for name, role, scope in [("op-hedong", Role.operator, "hedong"), ("op-shanxia", Role.operator, "shanxia"),
                                  ("viewer", Role.viewer, None), ("sup", Role.supervisor, None)]:  # fmt: skip
            client.call(lambda n=name, r=role, s=scope: client.users.add(n, PASSWORD, r, s))  # type: ignore[misc]
        admin, operator = _token(client, "admin"), _token(client, "op-hedong")
        # a vehicle NVR (its cameras on a patrol car): it reports its position
        sim = SimDevice(id=NVR, password=device_password(SECRET, NVR, "sip"), kind="nvr", channel_count=3,
                        keepalive_s=1, mobile=True)  # fmt: skip
        fleet = DeviceFleet([sim], platform_id=PLATFORM_ID, platform_port=client.hub.gb_platform_port, t1=0.1)
        portal.call(fleet.start)
        try:
            channel = sim.channels[1][0]
            wait_for(lambda: client.get("/api/devices?kind=camera", headers=admin).status_code == 200
                     and any(c["id"] == channel for c in client.get("/api/devices?kind=camera", headers=admin).json()),
                     timeout=20, what="the NVR's channels as cameras")  # fmt: skip
            head = sim.control.head(channel)
            url = f"/api/gb28181/channels/{channel}"

            moved = client.post(f"{url}/ptz", json={"action": "right", "speed": 255}, headers=operator)
            assert moved.status_code == 200, moved.text
            assert moved.json()["ptzcmd"].startswith("A50F0101FF")
            wait_for(lambda: head.position()["pan"] > 10, timeout=5, what="the head turning")
            assert client.post(f"{url}/ptz", json={"action": "stop"}, headers=operator).status_code == 200
            assert not head.moving
            assert client.post(f"{url}/presets", json={"action": "set", "number": 7}, headers=operator).json() == {
                "camera_id": channel, "action": "set", "number": 7}  # fmt: skip
            guard = head.position()["pan"]
            client.post(f"{url}/ptz", json={"action": "left", "speed": 255}, headers=operator)
            wait_for(lambda: abs(head.position()["pan"] - guard) > 10, timeout=5, what="turning away")
            client.post(f"{url}/ptz", json={"action": "stop"}, headers=operator)
            assert client.get(f"{url}/presets", headers=operator).json() == [{"number": 7, "name": "预置位7"}]
            called = client.post(f"{url}/presets", json={"action": "call", "number": 7}, headers=operator)
            assert called.status_code == 200
            assert head.position()["pan"] == guard
            assert client.delete(f"{url}/presets/7", headers=operator).status_code == 200
            assert client.get(f"{url}/presets", headers=operator).json() == []

            # bad input: named, nothing sent
            sent = len(head.commands)
            bad = client.post(f"{url}/ptz", json={"action": "spin", "speed": 10}, headers=operator)
            assert bad.status_code == 422
            assert client.post(f"{url}/ptz", json={"action": "left", "speed": 0}, headers=operator).status_code == 422
            assert client.post(f"{url}/presets", json={"action": "call", "number": 256},
                               headers=operator).status_code == 422  # fmt: skip
            assert len(head.commands) == sent

            # role and unit
            viewer = _token(client, "viewer")
            assert client.post(f"{url}/ptz", json={"action": "left"}, headers=viewer).status_code == 403
            assert client.post(f"{url}/ptz", json={"action": "left"},
                               headers=_token(client, "op-shanxia")).status_code == 404  # fmt: skip
            assert len(head.commands) == sent
            reboot = {"command": "teleboot"}
            dev_url = f"/api/gb28181/devices/{NVR}/control"
            assert client.post(dev_url, json=reboot, headers=operator).status_code == 403
            supervisor = _token(client, "sup")
            assert client.post(dev_url, json={"command": "guard"}, headers=supervisor).json()["result"] == "OK"
            assert sim.control.guard
            rec = client.post(f"/api/gb28181/devices/{channel}/control", json={"command": "record_start"},
                              headers=supervisor)  # fmt: skip
            assert rec.status_code == 200 and sim.control.recording == {channel}
            assert client.post(dev_url, json=reboot, headers=supervisor).json()["result"] == "sent"
            assert sim.control.reboots == 1

            # time: a drifted clock shows; registering again takes the hub's time from the 200 OK's Date
            sim.clock_offset_s = 3600.0
            drift = client.get(f"/api/gb28181/devices/{NVR}/time", headers=operator).json()
            assert 3598 <= drift["offset_s"] <= 3602, drift
            assert portal.call(fleet.register, sim) == 200
            assert abs(client.get(f"/api/gb28181/devices/{NVR}/time", headers=operator).json()["offset_s"]) <= 2
            assert client.get(f"/api/gb28181/devices/{channel}/time", headers=operator).status_code == 404

            # a device that never answers: a clear 504 within the timeout, and nothing stuck
            sim.answer_control = False
            silent = client.post(f"{url}/ptz", json={"action": "up"}, headers=operator)
            assert silent.status_code == 504 and silent.json()["detail"].startswith("timeout")
            assert client.get(f"{url}/presets", headers=operator).status_code == 504
            sim.answer_control = True
            assert client.post(f"{url}/ptz", json={"action": "stop"}, headers=operator).status_code == 200

            audit = client.get("/api/audit?action=gb28181.ptz", headers=admin).json()
            assert audit[0]["actor"] == "user:op-hedong" and audit[0]["target"] == channel
            assert any(e["details"].get("error") == "timeout" for e in audit)
            assert client.get("/api/audit?action=gb28181.preset", headers=admin).json()
            controls = client.get("/api/audit?action=gb28181.control", headers=admin).json()
            assert {e["details"]["command"] for e in controls} == {"guard", "record_start", "teleboot"}
            # subscribed by the hub: MobilePosition NOTIFYs become a track, queryable by time, in scope only
            track_url = f"/api/gb28181/devices/{NVR}/track"
            points = wait_for(lambda: client.get(track_url, headers=operator).json(), timeout=30,
                              what="a track from MobilePosition NOTIFYs")  # fmt: skip
            assert (points[0]["longitude"], points[0]["latitude"]) == sim.route.sent[0]
            assert client.get(track_url, headers=_token(client, "op-shanxia")).status_code == 404
            assert client.get(f"{track_url}?start=2026-01-01T00:00:00Z&end=2025-01-01T00:00:00Z",
                              headers=operator).status_code == 422  # fmt: skip
            assert set(sim.subscriptions) == {"Catalog", "Alarm", "MobilePosition"}
            metrics = client.get("/metrics").text
            assert 'sharpeye_gb_subscription_total{event="subscribe.MobilePosition.ok"}' in metrics
            assert "# TYPE sharpeye_gb_upward_control_total counter" in metrics  # no cascade here: no samples
            assert 'sharpeye_gb_control_total{event="ptz.move"}' in metrics
            assert 'sharpeye_gb_control_total{event="error.timeout"}' in metrics
        finally:
            portal.call(fleet.stop)
