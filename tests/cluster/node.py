"""Hub nodes as real processes (``python -m sharpeye.node run``) sharing the test session's Redis and Mosquitto and
one SQL database; a site of the demo's MQTT devices plus cameras whose leases the nodes share."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from sharpeye.config.loader import demo_path
from sharpeye.ingest.ownership import ROLE_MQTT

from sharpeye.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "cluster-test-pw"
ZONES = [(device, zone) for device in ("fence-reservoir", "fence-school") for zone in ("z1", "z2", "z3")]
ANALYSED = [f"cam-a{i}" for i in range(3)]
WATCHED = [f"cam-w{i}" for i in range(6)]
UNITS = {ROLE_MQTT, *ANALYSED, *WATCHED}
HEAVIEST = 10.0


def write_site(tmp: Path) -> Path:
    """The demo site without its cameras, GB/T 28181 devices and video rules, with cameras of its own that point at
    a closed port (a node that owns one only retries it, cheaply), and a site id of its own (the hub's MQTT session
    is named after it, so no other test's session is shared)."""
    site = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    site["site"]["id"] = f"c{uuid.uuid4().hex[:8]}"
    site["devices"] = [d for d in site["devices"] if d["kind"] not in ("camera", "gb28181")]
    site.pop("gb28181", None)  # the demo's NVR: the GB test gives the site a signalling role of its own
    for device in site["devices"]:
        for zone in device.get("zones", []):
            zone.pop("cameras", None)
    zone = {"id": "z", "name": "区域", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}
    for cam in ANALYSED + WATCHED:
        device: dict[str, Any] = {"id": cam, "kind": "camera", "name": cam, "grid": "shanxia-g1",
                                  "url": f"rtsp://127.0.0.1:9/{cam}"}  # fmt: skip
        if cam in ANALYSED:
            device["zones"] = [zone]
        site["devices"].append(device)
    site["rules"] = [r for r in site["rules"] if not str(r["match"].get("kind", "")).startswith("video.")]
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


class Node:
    """One hub node in a process group of its own (so a pause or a kill reaches its receiver and workers too)."""

    def __init__(
        self,
        tmp: Path,
        node_id: str,
        site: Path,
        redis_url: str,
        mqtt_url: str,
        keys: Keys,
        *,
        port: int = 0,
        **extra_env: str,
    ) -> None:
        self.id = node_id
        data = tmp / node_id
        data.mkdir(parents=True, exist_ok=True)
        self.log = data / "hub.log"
        env = {
            **os.environ,
            "SHARPEYE_REDIS_URL": redis_url,
            "SHARPEYE_MQTT_URL": mqtt_url,
            "SHARPEYE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'cases.db'}",
            "SHARPEYE_REDIS_PREFIX": keys.prefix,
            "SHARPEYE_ADMIN_PASSWORD": PASSWORD,
            "SHARPEYE_NODE_ID": node_id,
            "SHARPEYE_LOG_LEVEL": os.environ.get("SHARPEYE_TEST_NODE_LOG_LEVEL", "WARNING"),
            "SHARPEYE_CAMERA_WORKERS": "1",
            **extra_env,
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sharpeye.node", "run", "-c", str(site), "--port", str(port),
                 "--data-dir", str(data)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.base = self._wait_console()
        token = httpx.post(f"{self.base}/api/auth/token", data={"username": "admin", "password": PASSWORD}).json()
        self.auth = {"Authorization": f"Bearer {token['access_token']}"}

    def _wait_console(self) -> str:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            match = re.search(r"console: (http://[\d.]+:\d+)/", self.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"node {self.id} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.base}{path}", headers=self.auth, timeout=10).json()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}{path}", headers=self.auth, timeout=10, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        answer = httpx.post(f"{self.base}{path}", json=body, headers=self.auth, timeout=10, **kwargs)
        assert answer.status_code < 300, f"POST {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def cluster(self) -> dict[str, set[str]]:
        """Live node -> the units it owns, as this node sees them."""
        return {n["id"]: set(n["devices"]) for n in self.get("/api/cluster")["nodes"]}

    def loads(self) -> dict[str, float]:
        return {n["id"]: n["load"] for n in self.get("/api/cluster")["nodes"]}

    def metric(self, name: str, labels: str = "") -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and labels in line and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def split_once(view: dict[str, set[str]], nodes: set[str]) -> bool:
    """Every unit owned by exactly one of ``nodes``, and nothing by anyone else."""
    if set(view) != nodes:
        return False
    owned = [u for devices in view.values() for u in devices]
    return len(owned) == len(set(owned)) and set(owned) == UNITS


def messages() -> list[tuple[str, dict[str, object]]]:
    """Per zone: alarm, 30 repeats, restore, alarm, 20 repeats, restore (12 alarms raised, 12 cleared)."""
    per_zone = ["alarm"] * 31 + ["restore"] + ["alarm"] * 21 + ["restore"]
    out = []
    for index, value in enumerate(per_zone):
        for device, zone in ZONES:
            payload = {"seq": index + 1, "ts": datetime.now(UTC).isoformat(), "event": value, "cause": "intrusion",
                       "zone": zone}  # fmt: skip
            out.append((f"sharpeye/fence/{device}/event", payload))
    return out


def event_types(r: redis.Redis, keys: Keys) -> Counter[str]:
    return Counter(f[b"type"].decode() for _, f in r.xrange(keys.alarm_events))


def assert_exact(node: Node, r: redis.Redis, keys: Keys) -> None:
    """Every zone's two alarms raised and cleared once each, every message counted once."""
    assert event_types(r, keys) == {"raised": 12, "cleared": 12}
    alarms = node.get("/api/alarms?limit=500")["items"]
    assert sorted(a["count"] for a in alarms) == [21] * 6 + [31] * 6
    assert all(a["state"] == "cleared_unack" for a in alarms)
