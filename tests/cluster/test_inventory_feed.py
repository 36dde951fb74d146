"""The inventory change feed on two hub nodes: a device added on one node is known to the other within a
moment (it reads that device's MQTT messages if it holds the reader role), both announce the same inventory
version, the lease units are recomputed at once (the reader role weighs its devices), and a removal travels the
same way."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import redis
import yaml
from sharpeye.ingest.ownership import CAMERA_ANALYSED, CAMERA_WATCHED, ROLE_MQTT

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.cluster.node import ANALYSED, Node, split_once, write_site
from tests.helpers import Publisher, wait_for

NEW = {"id": "fence-feed", "kind": "fence", "name": "变更订阅测试围界", "grid": "shanxia-g1", "heartbeat_s": 30,
       "zones": [{"id": "z1", "name": "北侧"}]}  # fmt: skip


def test_a_device_added_on_one_node_reaches_the_other(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    site = write_site(tmp_path)
    r = redis.Redis.from_url(redis_server.url)
    started: list[Node] = []
    try:
        for name in ("a", "b"):
            started.append(Node(tmp_path, name, site, redis_server.url, mqtt_broker.url, keys))
        a, b = started
        def shared() -> dict[str, set[str]] | None:
            view = a.cluster()
            return view if split_once(view, {"a", "b"}) else None

        view = wait_for(shared, timeout=20, what="the two nodes sharing the site")
        reader = a if ROLE_MQTT in view["a"] else b
        other = b if reader is a else a

        def devices(node: Node) -> set[str]:
            return {d["id"] for d in node.get("/api/devices")}

        def versions() -> dict[str, int]:
            return {n["id"]: n["inventory_version"] for n in reader.get("/api/cluster")["nodes"]}

        def role_weight() -> float:
            """The MQTT reader role's weight in the reader's announced load (its cameras may move meanwhile)."""
            nodes = {n["id"]: n for n in reader.get("/api/cluster")["nodes"]}
            mine = nodes[reader.id]
            cameras = [u for u in mine["devices"] if u != ROLE_MQTT]
            return float(mine["load"]) - sum(CAMERA_ANALYSED if c in ANALYSED else CAMERA_WATCHED for c in cameras)

        weight_before = role_weight()
        assert NEW["id"] not in devices(reader)
        other.post("/api/devices", NEW)
        # 30 s is a loose upper bound for a loaded machine, not a timing claim (speed is for benches)
        wait_for(lambda: NEW["id"] in devices(reader), timeout=30, what="the new device known to the reader node")
        version = int(r.get(keys.inventory_version) or 0)
        assert version >= 1
        wait_for(lambda: versions() == {"a": version, "b": version}, timeout=10, what="both nodes at the version")
        # the reader role weighs the MQTT devices: its weight was recomputed by the node holding it
        wait_for(lambda: abs(role_weight() - (weight_before + 0.05)) < 1e-6, timeout=10,
                 what="the reader role's weight recomputed")  # fmt: skip
        assert reader.metric("sharpeye_inventory_changes_total") == 1
        assert reader.metric("sharpeye_inventory_version") == version

        # the reader takes the new device's messages (it would dead-letter an unknown device's)
        pub = Publisher(mqtt_broker.url)
        event = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion", "zone": "z1"}
        pub.publish("sharpeye/fence/fence-feed/event", event)
        pub.close()
        def alarms() -> list[dict[str, object]]:
            return [x for x in reader.get("/api/alarms?limit=50")["items"] if x["device_id"] == NEW["id"]]

        alarm = wait_for(alarms, timeout=15, what="an alarm of the new device")
        assert alarm[0]["count"] == 1

        # a removal on the reader node reaches the other
        gone = reader.call("DELETE", f"/api/devices/{NEW['id']}")
        assert gone.status_code == 204
        wait_for(lambda: NEW["id"] not in devices(other), timeout=10, what="the removal known to the other node")
        wait_for(lambda: len(set(versions().values())) == 1 and versions()["a"] == version + 1, timeout=10,
                 what="both nodes at the removal's version")  # fmt: skip

        # the site file edited (a device added, one removed) and reloaded on one node (SIGHUP): both follow
        data = yaml.safe_load(site.read_text(encoding="utf-8"))
        data["devices"] = [d for d in data["devices"] if d["id"] != "fence-school"] + [{**NEW, "id": "fence-yaml"}]
        site.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        os.kill(other.proc.pid, signal.SIGHUP)  # the hub process only (not its receiver)
        for node in (a, b):
            wait_for(lambda n=node: "fence-yaml" in (ids := devices(n)) and "fence-school" not in ids, timeout=10,
                     what=f"the reloaded site's devices on node {node.id}")  # fmt: skip
        wait_for(lambda: set(versions().values()) == {version + 3}, timeout=10, what="both at the reload's version")
        assert other.proc.poll() is None and reader.proc.poll() is None
    finally:
        for node in started:
            node.stop()
