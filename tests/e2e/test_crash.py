"""kill -9 the hub in the middle of a burst and restart it: no alarm, clear, notification or case is lost
or repeated. The hub runs as a real process against the test session's Redis and Mosquitto."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis
from sharpeye.config.loader import demo_path

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import own_mqtt_session
from tests.helpers import Publisher, wait_for

ROOT = Path(__file__).resolve().parents[2]
ZONES = [(device, zone) for device in ("fence-reservoir", "fence-school") for zone in ("z1", "z2", "z3")]


def start_hub(tmp: Path, redis_url: str, mqtt_url: str, keys: Keys) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "SHARPEYE_REDIS_URL": redis_url,
        "SHARPEYE_MQTT_URL": mqtt_url,
        "SHARPEYE_REDIS_PREFIX": keys.prefix,
        "SHARPEYE_ADMIN_PASSWORD": "crash-test-pw",
        "SHARPEYE_NODE_ID": "crash-node",
        # the session the restarted hub takes up again; the site's default one may hold other tests' messages
        "SHARPEYE_MQTT_CLIENT_ID": own_mqtt_session(mqtt_url, keys.prefix),
        "SHARPEYE_LOG_LEVEL": "WARNING",
        "SHARPEYE_CAMERAS": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpeye.node", "run", "-c", str(demo_path()), "--port", "0", "--data-dir", str(tmp)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"console: (http://[\d.]+:\d+)/", line)
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("hub did not start")


def messages() -> list[tuple[str, dict[str, object]]]:
    """Per zone: alarm, 30 repeats, restore, alarm, 20 repeats, restore (4 transitions: no flapping)."""
    per_zone = ["alarm"] * 31 + ["restore"] + ["alarm"] * 21 + ["restore"]
    out = []
    for index, value in enumerate(per_zone):
        for device, zone in ZONES:
            payload = {"seq": index + 1, "ts": datetime.now(UTC).isoformat(), "event": value, "cause": "intrusion",
                       "zone": zone}  # fmt: skip
            out.append((f"sharpeye/fence/{device}/event", payload))
    return out


def test_kill_9_mid_burst_loses_and_repeats_nothing(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    r = redis.Redis.from_url(redis_server.url)
    hub, base = start_hub(tmp_path, redis_server.url, mqtt_broker.url, keys)
    pub = Publisher(mqtt_broker.url)
    try:
        token = httpx.post(f"{base}/api/auth/token", data={"username": "admin", "password": "crash-test-pw"}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        wait_for(lambda: httpx.get(f"{base}/api/health", headers=auth).json()["components"]["mqtt"]["status"] == "ok",
                 what="hub subscribed")  # fmt: skip
        burst = messages()
        half = len(burst) // 2
        for topic, payload in burst[:half]:
            pub.publish(topic, payload)
        wait_for(lambda: r.xlen(keys.alarm_events) >= 3, what="some alarms before the crash")
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        for topic, payload in burst[half:]:  # published while the hub is dead: the broker keeps them
            pub.publish(topic, payload)
        hub, base = start_hub(tmp_path, redis_server.url, mqtt_broker.url, keys)
        token = httpx.post(f"{base}/api/auth/token", data={"username": "admin", "password": "crash-test-pw"}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}

        def settled() -> bool:
            types = Counter(f[b"type"] for _, f in r.xrange(keys.alarm_events))
            return types[b"cleared"] >= 12

        wait_for(settled, timeout=30, what="every zone's final restore applied")
        types = Counter(f[b"type"].decode() for _, f in r.xrange(keys.alarm_events))
        assert types == {"raised": 12, "cleared": 12}
        alarms = httpx.get(f"{base}/api/alarms?limit=500", headers=auth).json()["items"]
        assert len(alarms) == 12
        assert sorted(a["count"] for a in alarms) == [21] * 6 + [31] * 6
        assert all(a["state"] == "cleared_unack" for a in alarms)

        def all_cased() -> list[dict[str, object]] | None:
            cases = httpx.get(f"{base}/api/cases?limit=500", headers=auth).json()["items"]
            linked = [a for c in cases for a in c["alarm_ids"]]
            return cases if len(linked) >= 12 else None

        cases = wait_for(all_cased, timeout=15, what="every alarm in a case")
        linked = [a for c in cases for a in c["alarm_ids"]]
        assert sorted(linked) == sorted(a["id"] for a in alarms)  # each alarm in exactly one case
    finally:
        pub.close()
        hub.terminate()
        hub.wait(15)
        r.close()
