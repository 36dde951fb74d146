"""MQTT ingest: the hub against a bare paho subscriber, on one private Mosquitto, in one run.

    python bench/mqtt_ingest.py [--messages 100000] [--fences 100] [--thermals 20] [--rate 5000] [--rounds 1]

(SHARPEYE_BENCH_PROFILE=<dir> with py-spy on PATH writes raw py-spy profiles of the hub there.)

Traffic: fence controllers (4 zones each) sending zone events (alarm/repeat/restore, 1% state changes) and
heartbeats, and 32x24 thermal cameras sending binary radiometric frames (about 10% of messages).

(a) bare paho subscriber (persistent session, QoS 1) that only counts: messages/s draining a queued backlog;
(b) the hub (`sharpeye run` as its own process, on a private Redis): decoding, rules and alarm state, messages/s
    draining the same backlog (timed from its first to its last message through its /metrics counter);
(c) publish -> alarm-raised latency p50/p99 through the hub while a publisher sends the mix at --rate msg/s,
    beside its baseline: the same publisher's markers to a bare paho subscriber.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sharpeye.ingest.thermal.frame import encode_binary  # noqa: E402

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis  # noqa: E402


def site(fences: int, thermals: int) -> dict[str, object]:
    devices: list[dict[str, object]] = []
    for f in range(fences):
        zones = [{"id": f"z{z}", "name": f"zone {z}"} for z in range(1, 5)]
        devices.append({"id": f"f{f}", "kind": "fence", "name": f"fence {f}", "grid": "g1", "heartbeat_s": 3600,
                        "zones": zones})  # fmt: skip
    for t in range(thermals):
        devices.append({"id": f"t{t}", "kind": "thermal", "name": f"thermal {t}", "grid": "g1", "heartbeat_s": 3600,
                        "width": 32, "height": 24,
                        "rois": [{"id": "all", "name": "all", "pre_alarm_c": 60, "alarm_c": 100}]})  # fmt: skip
    rule = {"id": "fence-intrusion", "name": "intrusion", "match": {"kind": "fence.intrusion"},
            "condition": {"type": "state", "active": ["alarm"], "clear": ["restore"]}, "severity": "major",
            "category": "perimeter_intrusion", "flapping": {"transitions": 1000000, "window_s": 1}}  # fmt: skip
    hot = {"id": "thermal-alarm", "name": "hot", "match": {"kind": "thermal.level"},
           "condition": {"type": "state", "active": ["alarm"], "clear": ["normal", "pre_alarm"]},
           "severity": "major", "category": "fire"}  # fmt: skip
    return {"site": {"id": "bench", "name": "bench"}, "org": {"id": "g1", "name": "g1", "level": "grid"},
            "devices": devices, "rules": [rule, hot], "alarms": {"correlation_window_s": 0},
            "governance": {"intake": [{"category": "*", "open_case": False}]}}  # fmt: skip


class Traffic:
    def __init__(self, fences: int, thermals: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.fences, self.thermals = fences, thermals
        self.seq: dict[str, int] = {}
        self.state: dict[tuple[int, int], bool] = {}
        self.ambient = np.full((24, 32), 21.0, dtype=np.float32)

    def next_seq(self, device: str) -> int:
        self.seq[device] = self.seq.get(device, 0) + 1
        return self.seq[device]

    def message(self) -> tuple[str, bytes]:
        r = self.rng.random()
        now = datetime.now(UTC)
        if r < 0.10 and self.thermals:
            t = self.rng.randrange(self.thermals)
            frame = self.ambient + np.float32(self.rng.random())
            return f"sharpeye/thermal/t{t}/frame", encode_binary(frame, self.next_seq(f"t{t}"),
                                                                 int(now.timestamp() * 1000))  # fmt: skip
        f = self.rng.randrange(self.fences)
        if r < 0.15:
            body = {"seq": self.next_seq(f"f{f}"), "ts": now.isoformat(), "armed": {}, "mains": True}
            return f"sharpeye/fence/f{f}/heartbeat", orjson.dumps(body)
        z = self.rng.randrange(1, 4)  # zone z4 is kept for the latency markers
        active = self.state.get((f, z), True)
        if self.rng.random() < 0.01:
            active = not active
        self.state[(f, z)] = active
        body = {"seq": self.next_seq(f"f{f}"), "ts": now.isoformat(), "event": "alarm" if active else "restore",
                "cause": "intrusion", "zone": f"z{z}"}  # fmt: skip
        return f"sharpeye/fence/f{f}/event", orjson.dumps(body)


def client(port: int, client_id: str = "", clean: bool = True) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=paho.MQTTv311)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    return c


def forget_session(port: int, client_id: str) -> None:
    """End a persistent session, so that it queues nothing while other phases publish."""
    c = client(port, client_id, clean=True)
    c.loop(1)
    c.disconnect()


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    pub = client(port)
    pub.loop_start()
    # paho holds at most 65,535 QoS 1 messages in flight (16-bit ids): publish in chunks
    for start in range(0, len(messages), 20_000):
        infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages[start : start + 20_000]]
        for info in infos:
            info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()


def bare_rate(port: int, messages: list[tuple[str, bytes]]) -> float:
    """Queue the backlog for an offline persistent session, then time a counting subscriber draining it."""
    sub = client(port, "bench-bare", clean=False)
    sub.subscribe("sharpeye/#", qos=1)
    sub.loop(1)
    sub.disconnect()
    publish_all(port, messages)
    times: list[float] = []
    done = threading.Event()

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        times.append(time.perf_counter())
        if len(times) >= len(messages):
            done.set()

    sub = client(port, "bench-bare", clean=False)
    sub.on_message = on_message
    sub.loop_start()
    done.wait(300)
    sub.loop_stop()
    sub.disconnect()
    forget_session(port, "bench-bare")
    return (len(times) - 1) / (times[-1] - times[0])


def start_hub(config: Path, data: Path, redis_url: str, mqtt_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "SHARPEYE_REDIS_URL": redis_url, "SHARPEYE_MQTT_URL": mqtt_url,
           "SHARPEYE_ADMIN_PASSWORD": "bench", "SHARPEYE_LOG_LEVEL": "WARNING",
           "SHARPEYE_NODE_ID": "bench"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "sharpeye.node", "run", "-c", str(config), "--port", "0",
                             "--data-dir", str(data)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(r"console: (http://[\d.]+:\d+)/", line):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, m.group(1)
    raise RuntimeError("hub did not start")


def stop_hub(hub: subprocess.Popen[str]) -> None:
    hub.terminate()
    try:
        hub.wait(30)
    except subprocess.TimeoutExpired:
        print("warning: the hub did not stop within 30 s of SIGTERM; killed", flush=True)
        if os.environ.get("SHARPEYE_BENCH_PROFILE"):
            subprocess.run(["py-spy", "dump", "-p", str(hub.pid)], check=False)
        hub.kill()
        hub.wait(30)


def hub_messages(base: str, metric: str = "sharpeye_messages_total") -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(rf'^{metric}\{{kind="[^"]+"\}} (\S+)$', text, re.M))


def hub_rate(config: Path, data: Path, redis_url: str, mqtt_url: str, port: int,
             messages: list[tuple[str, bytes]]) -> float:  # fmt: skip
    hub, base = start_hub(config, data, redis_url, mqtt_url)
    time.sleep(1)  # let it subscribe (persistent session)
    stop_hub(hub)
    publish_all(port, messages)
    hub, base = start_hub(config, data, redis_url, mqtt_url)
    profiler = profile(hub.pid, "drain")
    try:
        first = last = None
        seen = 0.0
        deadline = time.monotonic() + 600
        while seen < len(messages) and time.monotonic() < deadline:
            seen = hub_messages(base)
            now = time.perf_counter()
            if seen > 0 and first is None:
                first = (now, seen)
            last = (now, seen)
            time.sleep(0.02)
        assert first is not None and last is not None
        limited = hub_messages(base, "sharpeye_rate_limited_total")
        print(f"(b) drained {seen:.0f} messages, {limited:.0f} dropped by the per-device rate limit", flush=True)
        return (last[1] - first[1]) / (last[0] - first[0])
    finally:
        stop_hub(hub)
        forget_session(port, "sharpeye-hub-bench")
        if profiler is not None:
            profiler.wait(30)


def profile(pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """With SHARPEYE_BENCH_PROFILE=<dir>, sample the hub with py-spy (raw format) while it runs."""
    folder = os.environ.get("SHARPEYE_BENCH_PROFILE")
    if not folder:
        return None
    out = Path(folder) / f"hub-{name}.txt"
    return subprocess.Popen(["py-spy", "record", "--format", "raw", "-r", "100", "-o", str(out), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


Sent = dict[str, list[tuple[float, float]]]
"""Per alarm fingerprint, in order: (time.time() at publish, seconds since the phase began)."""


def publish_paced(port: int, rate: float, seconds: float, traffic: Traffic) -> Sent:
    """Publish the mix at ``rate`` msg/s for ``seconds``; every 50th message is a latency marker: intrusion then
    restore on zone z4 of one fence after another, so that each marker alarm is new.

    paho runs without its network thread here: ``publish()`` then writes to the socket at once, in the thread
    that stamped the time (with ``loop_start()`` the write waited for paho's thread to get this process's GIL,
    and that wait was charged to the hub). The socket has TCP_NODELAY, as the hub's own sockets and the
    broker's do: without it Nagle's algorithm held small publishes back until the broker's delayed ACK."""
    pub = client(port)
    pub.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not pub.is_connected():
        pub.loop(0.1)
    sent: Sent = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    n = marker = 0
    while time.perf_counter() - start < seconds:
        target = start + n * interval
        while (delay := target - time.perf_counter()) > 0:
            pub.loop(delay)
        if n % 50 == 0:
            fence = f"f{(marker // 2) % traffic.fences}"
            event = "alarm" if marker % 2 == 0 else "restore"
            marker += 1
            body = {"seq": traffic.next_seq(fence), "ts": datetime.now(UTC).isoformat(), "event": event,
                    "cause": "intrusion", "zone": "z4"}  # fmt: skip
            if event == "alarm":
                sent.setdefault(f"fence-intrusion|{fence}|z4", []).append((time.time(), target - start))
            pub.publish(f"sharpeye/fence/{fence}/event", orjson.dumps(body), qos=0)
        else:
            topic, payload = traffic.message()
            pub.publish(topic, payload, qos=0)
        n += 1
    deadline = time.monotonic() + 5
    while pub.want_write() and time.monotonic() < deadline:
        pub.loop(0.05)
    pub.disconnect()
    return sent


def listen(port: int) -> None:
    """``--listen PORT`` (the baseline's subscriber, run as its own process): print the arrival time of every
    marker alarm as JSON lines ``[fingerprint, time]`` when stdin closes."""
    arrived: list[tuple[str, float]] = []

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        now = time.time()
        if b'"z4"' in m.payload and b'"alarm"' in m.payload:
            arrived.append((f"fence-intrusion|{m.topic.split('/')[2]}|z4", now))

    sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    sub.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("sharpeye/fence/+/event", qos=0)
    sub.loop_start()
    while not sub.is_connected():
        time.sleep(0.01)
    print("ready", flush=True)
    sys.stdin.read()
    sub.loop_stop()
    sub.disconnect()
    for item in arrived:
        print(orjson.dumps(item).decode())


@dataclass
class Latency:
    values: list[tuple[float, float]]  # (latency in s, seconds into the phase)
    expected: int

    def line(self) -> str:
        lat = sorted(v for v, _ in self.values)
        if not lat:
            return "no alarms seen"
        worst, at = max(self.values)
        first = sum(1 for v, t in self.values if t < 1.0 and v >= lat[int(len(lat) * 0.99)])
        return (f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms, "
                f"max {worst * 1000:.1f} ms at {at:.1f} s ({len(lat)} of {self.expected} markers; {first} of the "
                f"slowest 1% in the first second)")  # fmt: skip


def bare_latency(port: int, rate: float, seconds: float, traffic: Traffic) -> Latency:
    """Baseline for (c): the same paced publisher, markers received by a bare paho subscriber process."""
    sub = subprocess.Popen([sys.executable, __file__, "--listen", str(port)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert sub.stdin is not None and sub.stdout is not None
    sub.stdout.readline()
    sent = publish_paced(port, rate, seconds, traffic)
    time.sleep(1)
    out, _ = sub.communicate(timeout=60)
    expected = sum(len(v) for v in sent.values())
    values = []
    for line in out.splitlines():
        key, arrived = orjson.loads(line)
        if sent.get(key):
            at, offset = sent[key].pop(0)
            values.append((arrived - at, offset))
    return Latency(values, expected)


def latency(config: Path, data: Path, redis_url: str, mqtt_url: str, port: int, rate: float, seconds: float,
            traffic: Traffic) -> Latency:  # fmt: skip
    """Publish -> alarm raised: the end is the time Redis stored the alarm's ``raised`` notification (the
    entry id of the alarm-events stream, Redis's clock at XADD, same machine), not the alarm's ``at`` field,
    which the hub takes before it sends the batch to Redis."""
    hub, _ = start_hub(config, data, redis_url, mqtt_url)
    profiler = profile(hub.pid, "latency")
    r = redis.Redis.from_url(redis_url)
    try:
        time.sleep(1)
        last_id = (r.xrevrange("se:alarm-events", count=1) or [(b"0-0", {})])[0][0]
        sent = publish_paced(port, rate, seconds, traffic)
        expected = sum(len(v) for v in sent.values())
        values: list[tuple[float, float]] = []
        deadline = time.monotonic() + 60  # a hub that fell behind is waited for, not judged on its fast part
        while len(values) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
            for entry, fields in r.xrange("se:alarm-events", min=f"({last_id.decode()}"):
                last_id = entry
                if fields[b"type"] == b"raised":
                    key = fields[b"fingerprint"].decode()
                    if sent.get(key):
                        stored = int(entry.split(b"-")[0]) / 1000
                        at, offset = sent[key].pop(0)
                        values.append((stored - at, offset))
        return Latency(values, expected)
    finally:
        stop_hub(hub)
        r.close()
        if profiler is not None:
            profiler.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--fences", type=int, default=100)
    parser.add_argument("--thermals", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rounds", type=int, default=1, help="(a)/(b) pairs; the median ratio is reported (0: only (c))"
    )
    parser.add_argument("--listen", type=int, help=argparse.SUPPRESS)  # the baseline's subscriber process
    args = parser.parse_args()
    if args.listen:
        listen(args.listen)
        return
    traffic = Traffic(args.fences, args.thermals)
    messages = [traffic.message() for _ in range(args.messages)]
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        config = tmpdir / "site.yaml"
        config.write_text(yaml.safe_dump(site(args.fences, args.thermals), allow_unicode=True), encoding="utf-8")
        broker = EmbeddedMosquitto(workdir=tmpdir / "mq", persistence=False)
        store = EmbeddedRedis(workdir=tmpdir / "redis")
        broker.start()
        store.start()
        try:
            rounds: list[tuple[float, float]] = []
            for n in range(args.rounds):  # (a) then (b) in each round: a ratio from neighbouring measurements
                bare = bare_rate(broker.port, messages)
                hub = hub_rate(config, tmpdir / "hub", store.url, broker.url, broker.port, messages)
                rounds.append((bare, hub))
                if args.rounds > 1:
                    print(f"round {n + 1}: (a) {bare:7.0f} msg/s, (b) {hub:7.0f} msg/s, ratio {hub / bare:.2f}, "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            base = bare_latency(broker.port, args.rate, args.seconds, traffic)
            print(f"load {os.getloadavg()[0]:.1f} after the baseline of (c)", flush=True)
            lat = latency(config, tmpdir / "hub", store.url, broker.url, broker.port, args.rate, args.seconds,
                          traffic)  # fmt: skip
        finally:
            broker.stop()
            store.stop()
    print(f"messages {args.messages} ({args.fences} fences x 4 zones, {args.thermals} thermal 32x24, binary frames)")
    if rounds:
        ratios = sorted(hub / bare for bare, hub in rounds)
        bare, hub = sorted(rounds, key=lambda r: r[1] / r[0])[len(rounds) // 2]
        print(f"(a) bare paho subscriber, counting only: {bare:9.0f} msg/s")
        print(
            f"(b) hub: decode + rules + alarm state:   {hub:9.0f} msg/s   ratio (b)/(a) = {hub / bare:.2f}"
            + (f" (median of {len(rounds)} rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(rounds) > 1 else "")
        )
    print(f"(c) publish -> alarm raised at {args.rate:.0f} msg/s: {lat.line()}")
    print(f"    baseline, publish -> bare paho subscriber, same publisher: {base.line()}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
