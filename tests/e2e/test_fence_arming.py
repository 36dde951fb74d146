"""Fence arm/disarm from the API: the hub publishes the command, the simulated controller obeys and confirms the
zone with the command's id; only roles holding ``devices:control`` in their unit; audited; bad requests named."""

from __future__ import annotations

import json
from pathlib import Path

from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.fence.command import decode_command
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.role import Role
from tests.conftest import app_client, hub_settings
from tests.simulators.test_run_site import SiteThread, Subscriber

PASSWORD = "Arming-Pass-1"


def test_disarm_and_arm_a_fence_zone_through_the_api(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PASSWORD, prefix=keys.prefix)
    site = load_file(demo_path(), installed())
    watcher = Subscriber(mqtt_broker.url, client_id="arming-watch")
    watcher.start()
    with app_client(settings, site, sign_in=PASSWORD) as client, SiteThread(site, mqtt_broker.url, None, 1.0):
        for name, role, scope in [("sup-shanxia", Role.supervisor, "shanxia"), ("op", Role.operator, None)]:
            client.call(lambda n=name, r=role, s=scope: client.users.add(n, PASSWORD, r, s))  # type: ignore[misc]
        watcher.wait_for(lambda m: any(t.endswith("fence-school/heartbeat") for _, t, _ in m), timeout=15)
        url = "/api/devices/fence-school/arming"
        sent = client.post(url, json={"command": "disarm", "zone": "z1"})
        assert sent.status_code == 202, sent.text
        command_id = sent.json()["command_id"]

        def confirmed(messages: list[tuple[float, str, bytes]], command: str) -> bool:
            return any(t == "sharpeye/fence/fence-school/arming" and json.loads(d).get("command_id") == command
                       for _, t, d in messages)  # fmt: skip

        watcher.wait_for(lambda m: confirmed(m, command_id), timeout=10)
        published = [d for _, t, d in watcher.snapshot() if t == "sharpeye/fence/fence-school/command"]
        command = decode_command(published[-1])
        assert (command.id, command.command, command.zone) == (command_id, "disarm", "z1")
        armings = [json.loads(d) for _, t, d in watcher.snapshot() if t.endswith("fence-school/arming")]
        confirmation = next(a for a in armings if a.get("command_id") == command_id)
        assert confirmation["zone"] == "z1" and confirmation["armed"] is False
        again = client.post(url, json={"command": "arm", "zone": "z1"}).json()["command_id"]
        watcher.wait_for(lambda m: confirmed(m, again), timeout=10)

        assert client.post(url, json={"command": "arm", "zone": "nope"}).status_code == 422
        assert client.post(url, json={"command": "disarm", "zone": "tamper"}).status_code == 422
        assert client.post(url, json={"command": "explode"}).status_code == 422
        assert client.post("/api/devices/cam-school-gate/arming", json={"command": "arm"}).status_code == 422

        def as_user(name: str) -> dict[str, str]:
            token = client.post("/api/auth/token", data={"username": name, "password": PASSWORD}).json()
            return {"Authorization": f"Bearer {token['access_token']}"}

        assert client.post(url, json={"command": "arm"}, headers=as_user("op")).status_code == 403
        assert client.post(url, json={"command": "arm"}, headers=as_user("sup-shanxia")).status_code == 404
        audit = client.get("/api/audit?action=fence.arming").json()
        assert [e["details"]["command_id"] for e in audit[:2]] == [again, command_id]
    watcher.stop()
