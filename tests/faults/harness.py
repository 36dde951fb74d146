"""A hub run as a user runs it (``sharpeye run`` or ``sharpeye demo``, embedded Redis and broker) plus a steady load
of uniquely marked fence messages from devices logged in with their own accounts, and what a fault test checks
afterwards: every expected alarm raised and cleared once, every alarm in exactly one case.

Used by the tests in this folder and by ``bench/faults.py`` (the fault table in docs/reliability.md)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import psutil
import redis
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.config.loader import demo_path
from sharpeye.ingest.credential import device_password

from sharpeye.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
SECRET = "fault-test-device-secret-0123456789"
ADMIN_PASSWORD = "fault-test-admin-pw"
FENCES = ("fence-reservoir", "fence-school")
ZONES = [(device, zone) for device in FENCES for zone in ("z1", "z2", "z3")]
EXPECTED_ALARMS = len(ZONES) * 2  # per zone: raised, cleared, raised, cleared (two alarms)


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, redis.RedisError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def burst() -> list[tuple[str, str, dict[str, object]]]:
    """(device, topic, payload) per zone: alarm x31, restore, alarm x21, restore; each message carries the device's
    next sequence number, so every one is unique and a redelivered one is recognisable."""
    per_zone = ["alarm"] * 31 + ["restore"] + ["alarm"] * 21 + ["restore"]
    seq: Counter[str] = Counter()
    out = []
    for value in per_zone:
        for device, zone in ZONES:
            seq[device] += 1
            payload = {"seq": seq[device], "ts": datetime.now(UTC).isoformat(), "event": value,
                       "cause": "intrusion", "zone": zone}  # fmt: skip
            out.append((device, f"sharpeye/fence/{device}/event", payload))
    return out


class Devices:
    """One MQTT client per fence device, logged in with its derived password, QoS 1; a publish returns once the
    broker acknowledged it, and paho resends what was not acknowledged after a reconnect (as devices do)."""

    def __init__(self, host: str, port: int) -> None:
        self.clients: dict[str, paho.Client] = {}
        for device in FENCES:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fault-{device}", protocol=paho.MQTTv311)
            client.username_pw_set(device, device_password(SECRET, device))
            client.reconnect_delay_set(0.1, 1)
            client.connect(host, port)
            client.loop_start()
            self.clients[device] = client
        self.published = 0

    def publish(self, device: str, topic: str, payload: dict[str, object], timeout: float = 30) -> None:
        info = self.clients[device].publish(topic, orjson.dumps(payload), qos=1)
        # Published while the broker is down, paho keeps the message (rc "not connected") and sends it after the
        # reconnect; is_published() would raise on that rc, so wait for the PUBACK flag itself.
        wait_until(lambda: info._published, timeout, f"PUBACK for {topic} seq {payload['seq']}", interval=0.005)
        self.published += 1

    def close(self) -> None:
        for client in self.clients.values():
            client.loop_stop()
            client.disconnect()


@dataclass
class Hub:
    """``sharpeye run`` (or ``demo``) as a subprocess on ``data``; its stdout goes to ``log``."""

    data: Path
    command: str = "run"
    env_extra: dict[str, str] = field(default_factory=dict)
    wrap: list[str] = field(default_factory=list)  # e.g. unshare ... to hide system binaries
    args_extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    base: str = ""
    broker: tuple[str, int] = ("", 0)
    output: list[str] = field(default_factory=list)
    degraded_seen: bool = False
    _reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        return "".join(self.output)

    def start(self, timeout: float = 90) -> float:
        """Start and wait for the console line; returns the seconds it took."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")}
        env.update({"SHARPEYE_DEVICE_SECRET": SECRET, "SHARPEYE_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "SHARPEYE_NODE_ID": "fault-node", "SHARPEYE_CAMERAS": "false"})  # fmt: skip
        env.update(self.env_extra)
        args = ["run", "-c", str(demo_path())] if self.command == "run" else ["demo"]
        args += self.args_extra
        started = time.monotonic()
        self.output, self.base, self.broker = [], "", ("", 0)
        self.proc = subprocess.Popen(
            [*self.wrap, sys.executable, "-m", "sharpeye.node", *args, "--port", "0", "--data-dir", str(self.data)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or not self.base:
            self.kill()
            raise AssertionError(f"hub did not start within {timeout}s:\n{self.log[-3000:]}")
        return time.monotonic() - started

    def _read(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.output.append(line)
            if m := re.search(r"MQTT: mqtt://(?:[^@\s]*@)?([\d.]+):(\d+)", line):
                self.broker = (m.group(1), int(m.group(2)))
            if m := re.search(r"console: (http://[\d.]+:\d+)/", line):
                self.base = m.group(1)
            if self.base and self.broker[1]:
                ready.set()
        ready.set()

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def child(self, *names: str) -> psutil.Process:
        for proc in self.children():
            if any(n in proc.name() for n in names):
                return proc
        raise AssertionError(f"no child process named {names}: {[p.name() for p in self.children()]}")

    def token(self, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        reply = httpx.post(f"{self.base}/api/auth/token", data={"username": "admin", "password": password}).json()
        return {"Authorization": f"Bearer {reply['access_token']}"}

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/api/health", headers=self.token(), timeout=5).json()  # type: ignore[no-any-return]

    def healthy(self) -> bool:
        """/healthz (unauthenticated, so polling it never needs Redis for a token) answers ok."""
        try:
            return httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:  # not listening yet (a restarted hub)
            return False

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def redis(self) -> redis.Redis:
        url = (self.data / "redis-url").read_text(encoding="utf-8").strip()
        return redis.Redis.from_url(url)

    def kill(self) -> None:
        """kill -9 (its embedded services get SIGTERM from the kernel as their parent dies)."""
        if self.proc is not None and self.proc.poll() is None:
            children = self.children()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            psutil.wait_procs(children, timeout=10)

    def stop(self) -> str:
        """Ctrl-C; returns the whole log."""
        if self.proc is not None and self.proc.poll() is None:
            children = self.children()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            _gone, alive = psutil.wait_procs(children, timeout=10)
            for proc in alive:
                proc.kill()
        if self._reader is not None:
            self._reader.join(5)
        return self.log


@dataclass
class Outcome:
    fault: str
    published: int
    alarms: int
    cases: int
    lost: int
    duplicated: int
    recovery_s: float


def outcome(hub: Hub, fault: str, published: int, recovery_s: float, timeout: float = 30) -> Outcome:
    """Wait until every zone's final restore is applied and every alarm is in a case, then count: expected alarms
    missing (lost), alarms or transitions beyond one each (duplicated), and cases."""
    r = hub.redis()
    keys = Keys("se")
    auth = hub.token()
    try:

        def settled() -> bool:
            types = Counter(f[b"type"] for _, f in r.xrange(keys.alarm_events))
            return types[b"cleared"] >= EXPECTED_ALARMS

        def cased() -> list[dict[str, Any]] | None:
            cases = httpx.get(f"{hub.base}/api/cases?limit=500", headers=auth).json()["items"]
            fence = [c for c in cases if c["alarm_ids"]]
            return fence if sum(len(c["alarm_ids"]) for c in fence) >= EXPECTED_ALARMS else None

        wait_until(settled, timeout, "every zone's final restore applied")
        wait_until(cased, timeout, "every alarm in a case")
        types = Counter(f[b"type"].decode() for _, f in r.xrange(keys.alarm_events))
        alarms = httpx.get(f"{hub.base}/api/alarms?limit=500", headers=auth).json()["items"]
        fence_alarms = [a for a in alarms if a["device_id"] in FENCES]
        cases = httpx.get(f"{hub.base}/api/cases?limit=500", headers=auth).json()["items"]
        linked = Counter(a for c in cases for a in c["alarm_ids"])
        ids = {a["id"] for a in fence_alarms}
        counts = sorted(a["count"] for a in fence_alarms)
        expected_counts = [21] * len(ZONES) + [31] * len(ZONES)
        lost = max(0, EXPECTED_ALARMS - len(fence_alarms)) + sum(1 for a in ids if a not in linked)
        lost += sum(max(0, e - c) for e, c in zip(expected_counts, counts, strict=False))
        duplicated = max(0, len(fence_alarms) - EXPECTED_ALARMS) + sum(n - 1 for n in linked.values() if n > 1)
        duplicated += max(0, types["raised"] - EXPECTED_ALARMS) + max(0, types["cleared"] - EXPECTED_ALARMS)
        duplicated += sum(max(0, c - e) for e, c in zip(expected_counts, counts, strict=False))
        return Outcome(fault, published, len(fence_alarms), len([c for c in cases if set(c["alarm_ids"]) & ids]),
                       lost, duplicated, recovery_s)  # fmt: skip
    finally:
        r.close()


def run_fault(data: Path, fault: str) -> tuple[Outcome, Hub]:
    """Start the hub, publish half the burst, inflict ``fault`` (hub, redis, broker or none) mid burst, publish the
    rest, and measure. ``recovery_s``: from the kill until health is ok again (for the hub: until it answers
    after the restart a supervisor would make)."""
    hub = Hub(data)
    hub.start()
    try:
        return _inflict(hub, fault)
    except BaseException:
        hub.stop()  # a failed run leaves no hub behind
        raise


def _inflict(hub: Hub, fault: str) -> tuple[Outcome, Hub]:
    wait_until(hub.healthy, 20, "a healthy hub")
    messages = burst()
    half = len(messages) // 2
    devices = Devices(*hub.broker)
    try:
        for message in messages[:half]:
            devices.publish(*message)
        r = hub.redis()
        wait_until(lambda: r.xlen(Keys("se").alarm_events) >= 3, 15, "some alarms before the fault")
        r.close()
        killed = time.monotonic()
        published = devices.published
        if fault == "hub":
            hub.kill()
            devices.close()
            killed = time.monotonic()  # a supervisor (systemd) restarts the hub: recovery counts from there
            hub.start()
            devices = Devices(*hub.broker)
        elif fault in ("redis", "broker"):
            if fault == "broker":
                # Mosquitto writes its store once a second (docs/reliability.md): what it acknowledged in the last
                # second before a crash can be lost. Kill it once the first half has reached the hub; the second
                # half meets the dead broker and is resent by the devices.
                wait_until(lambda: hub.metric('sharpeye_messages_total{kind="fence"}') >= half, 20,
                           "the first half at the hub")  # fmt: skip
            victim = hub.child("redis", "valkey") if fault == "redis" else hub.child("mosquitto", "amqtt")
        recovered: list[float] = []
        watcher = threading.Thread(target=_watch_recovery, args=(hub, fault, recovered), daemon=True)
        watcher.start()  # polling before the kill: the 503 window of a fast restart is well under a second
        if fault in ("redis", "broker"):
            killed = time.monotonic()
            victim.send_signal(signal.SIGKILL)
        for message in messages[half:]:  # the first of these meet the fault; paho resends what was never acked
            devices.publish(*message)
        watcher.join(30)
        assert recovered, f"health not ok within 30 s after killing the {fault}"
        total = devices.published + (published if fault == "hub" else 0)
        return outcome(hub, fault, total, round(recovered[0] - killed, 1) if fault != "none" else 0.0), hub
    finally:
        devices.close()


def _watch_recovery(hub: Hub, fault: str, out: list[float], timeout: float = 30) -> None:
    """Append the moment health is ok again after ``fault`` (for Redis and the broker: after their restart), and
    record in ``hub.degraded_seen`` whether /healthz said 503 meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        restarted = fault not in ("redis", "broker") or _restarts(hub) >= 1
        healthy = hub.healthy()
        hub.degraded_seen = hub.degraded_seen or not healthy
        if restarted and healthy:
            out.append(time.monotonic())
            return
        time.sleep(0.05)


def _restarts(hub: Hub) -> float:
    try:
        return hub.metric("sharpeye_embedded_restarts_total")
    except httpx.HTTPError:
        return 0


def iterate_faults() -> Iterator[str]:
    yield from ("none", "hub", "redis", "broker")


def traceback_lines(log: str) -> str:
    """The lines of a log that say what failed and where, for an assertion message."""
    keep = [line for line in log.splitlines() if "Traceback" in line or "failed" in line or "File " in line]
    return "\n".join(keep)[-6000:]


def hiding(*binaries: str) -> list[str]:
    """A command prefix that runs its command with ``binaries`` hidden (a non-executable empty file bound over each,
    in a private mount namespace), as on a machine without them. Not root: in a user namespace of its own."""
    script = " && ".join(f"mount --bind /dev/null {b}" for b in binaries)
    # not root: a user namespace of its own maps the caller to root there, which may bind-mount in its mount namespace
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return ["unshare", *user, "-m", "--propagation", "private", "sh", "-c", f'{script} && exec "$@"', "hide"]
