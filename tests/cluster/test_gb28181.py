"""GB/T 28181 on two nodes: the node holding the signalling role binds the site's SIP address and the devices
register to it; the registrations are kept in Redis, so the other node shows them too; kill -9 that node and the
other takes the role, binds the same address, restores the registrations, and the devices come back online to
it without being refused (their keepalives find their registrations; none is answered 403 "Not Registered")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.ownership import ROLE_GB28181
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.cluster.node import Node, write_site

PLATFORM_ID = "34020000002000000001"
DEVICES = [code("34020000", 132, n) for n in range(1, 6)]
SECRET = "cluster-device-secret-0123456789"


def write_gb_site(tmp: Path, port: int) -> Path:
    path = write_site(tmp)
    site = yaml.safe_load(path.read_text(encoding="utf-8"))
    site["gb28181"] = {"sip_id": PLATFORM_ID, "port": port, "sip_t1_s": 0.1}
    site["devices"] += [{"id": dev, "kind": "gb28181", "name": f"摄像机{i}", "grid": "hedong-g2", "heartbeat_s": 1,
                         "offline_after": 3} for i, dev in enumerate(DEVICES)]  # fmt: skip
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


async def until(check: Callable[[], Any], limit_s: float, what: str) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {limit_s}s waiting for {what}"
        await asyncio.sleep(0.1)


def online(node: Node) -> bool:
    devices = [d for d in node.get("/api/devices?kind=gb28181") if d["id"] in DEVICES]  # not the demo's NVR
    return len(devices) == len(DEVICES) and all(d["state"] == "online" for d in devices)


def registered_at(node: Node, holder: str) -> dict[str, str] | None:
    """Each device's registration time as ``node`` shows it, if every device is registered at ``holder``."""
    details = {d["id"]: d["details"] for d in node.get("/api/devices?kind=gb28181") if d["id"] in DEVICES}
    if len(details) < len(DEVICES) or any(d.get("signalling_node") != holder for d in details.values()):
        return None
    return {k: d["registered_at"] for k, d in details.items()}


def signalling(node: Node) -> str | None:
    owners = [n for n, units in node.cluster().items() if ROLE_GB28181 in units]
    return owners[0] if len(owners) == 1 else None


async def test_sip_signalling_moves_with_its_role(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    port = free_port()
    site = write_gb_site(tmp_path, port)
    env = {"SHARPEYE_DEVICE_SECRET": SECRET}  # one site secret: every node derives the same device passwords
    nodes: dict[str, Node] = {}
    sims = [SimDevice(id=dev, password=device_password(SECRET, dev, "sip"), keepalive_s=1) for dev in DEVICES]
    fleet = DeviceFleet(sims, platform_id=PLATFORM_ID, platform_port=port, t1=0.1)
    try:
        nodes["a"] = await asyncio.to_thread(Node, tmp_path, "a", site, redis_server.url, mqtt_broker.url, keys, **env)
        nodes["b"] = await asyncio.to_thread(Node, tmp_path, "b", site, redis_server.url, mqtt_broker.url, keys, **env)
        holder = await until(lambda: signalling(nodes["b"]), 15, "one node holding the SIP signalling")
        other = nodes["b" if holder == "a" else "a"]
        await fleet.start()
        await until(lambda: online(nodes[holder]), 20, "the devices registered to the signalling node")
        # the other node sees the registrations (kept in Redis), with the signalling node that holds them
        seen = await until(lambda: registered_at(other, holder), 15, "the registrations seen by the other node")
        registrations = fleet.stats["register.200"]
        assert registrations >= len(DEVICES)
        nodes[holder].kill()
        killed = time.monotonic()
        await until(lambda: signalling(other) == other.id, 15, "the other node taking the signalling role")
        await until(lambda: online(other), 20, "the devices online at the new signalling node")
        assert time.monotonic() - killed < 30
        taken = {d["id"]: d["details"] for d in other.get("/api/devices?kind=gb28181") if d["id"] in DEVICES}
        assert all(d["registered"] for d in taken.values())
        # restored, not registered anew: the registration times are the first node's, and no keepalive was refused
        assert {k: d["registered_at"] for k, d in taken.items()} == seen
        assert fleet.stats["keepalive.403"] == 0

        def catalogs() -> bool:  # the new signalling node asked the restored devices for their catalogs
            details = [d["details"] for d in other.get("/api/devices?kind=gb28181") if d["id"] in DEVICES]
            return all(d.get("channels", 0) >= 1 for d in details)

        await until(catalogs, 20, "the restored devices' catalogs at the new signalling node")
    finally:
        await fleet.stop()
        for node in nodes.values():
            await asyncio.to_thread(node.stop)
