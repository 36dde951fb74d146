"""The fault table of docs/reliability.md: kill -9 mid burst, and what it cost.

    python bench/faults.py [--faults none,hub,redis,broker] [--queued 2000]

(a) For each fault: `sharpeye run` on the demo site with embedded Redis and Mosquitto (as a user runs it), 324
uniquely numbered fence messages from the two fence devices (each logged in with its own account, QoS 1), half
before the kill, half after; then the alarms, cases, alarms lost and duplicated, and the seconds from the kill until
/api/health is ok again (for the hub: from the restart a supervisor makes). `none` is the baseline run.
(b) Broker persistence: N QoS 1 messages queued for an offline persistent subscriber, then kill -9 of Mosquitto and
a restart; messages kept, and the publish rate, with the shipped setting (save after every change) beside
Mosquitto's default (save every 1800 s) measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sharpeye.node.embedded import EmbeddedMosquitto
from tests.faults.harness import run_fault


class _Autosave(EmbeddedMosquitto):
    """The embedded Mosquitto with another ``autosave`` setting (``lines`` replace the shipped one)."""

    lines: str = ""

    def prepare(self) -> None:
        super().prepare()
        text = self.conf_path.read_text(encoding="utf-8")
        self.conf_path.write_text(text.replace(f"autosave_interval {self.autosave_interval_s}\n", self.lines))


SETTINGS = [
    ("every second (shipped)", "autosave_interval 1\n"),
    ("after every change", "autosave_on_changes true\nautosave_interval 1\n"),
    ("every 1800 s (Mosquitto's default: baseline)", "autosave_interval 1800\n"),
]


def _subscriber(broker: EmbeddedMosquitto, received: set[bytes], client_id: str) -> paho.Client:
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=paho.MQTTv311)  # fmt: skip
    client.on_message = lambda _c, _u, msg: received.add(msg.payload)
    client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("q/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    if not subscribed.wait(5):
        raise SystemExit("no SUBACK")
    return client


def _publish(broker: EmbeddedMosquitto, n: int, tag: str) -> float:
    """n QoS 1 messages, up to 100 in flight; returns msg/s until the last PUBACK."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    pub.max_inflight_messages_set(100)
    pub.max_queued_messages_set(0)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    started = time.perf_counter()
    infos = [pub.publish("q/x", f"{tag}-{i}".encode(), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(120)
    rate = n / (time.perf_counter() - started)
    pub.loop_stop()
    pub.disconnect()
    return rate


def broker_persistence(broker: EmbeddedMosquitto, n: int, hold_s: float) -> tuple[int, float]:
    """(messages delivered after kill -9 and restart, publish rate) for n messages queued for an offline subscriber,
    held ``hold_s`` before the kill."""
    broker.start()
    received: set[bytes] = set()
    sub = _subscriber(broker, received, "bench-offline")
    sub.loop_stop()
    sub.disconnect()
    rate = _publish(broker, n, "q")
    time.sleep(hold_s)  # the situation measured: the broker holds the queue this long before it dies
    broker.kill()
    broker.start()
    sub = _subscriber(broker, received, "bench-offline")
    deadline = time.monotonic() + 15
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    broker.stop()
    return len(received), rate


def online_rate(broker: EmbeddedMosquitto, n: int) -> float:
    """QoS 1 msg/s from publish to delivery with the subscriber connected (the hub up)."""
    broker.start()
    received: set[bytes] = set()
    sub = _subscriber(broker, received, "bench-online")
    started = time.perf_counter()
    _publish(broker, n, "o")
    deadline = time.monotonic() + 120
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    rate = len(received) / (time.perf_counter() - started)
    sub.loop_stop()
    sub.disconnect()
    broker.stop()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default="none,hub,redis,broker")
    parser.add_argument("--queued", type=int, default=2000, help="messages queued for (b)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sharpeye-faults-") as tmp:
        rows = []
        for fault in args.faults.split(","):
            result, hub = run_fault(Path(tmp) / fault, fault)
            hub.stop()
            rows.append(result)
            print(f"  {fault}: {result}", file=sys.stderr, flush=True)
        print("| killed (kill -9, mid burst) | published | alarms | cases | lost | duplicated | recovery |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            recovery = "-" if r.fault == "none" else f"{r.recovery_s:.1f} s"
            name = {"none": "nothing (baseline)", "hub": "the hub", "redis": "embedded Redis",
                    "broker": "embedded Mosquitto"}.get(r.fault, r.fault)  # fmt: skip
            print(f"| {name} | {r.published} | {r.alarms} | {r.cases} | {r.lost} | {r.duplicated} | {recovery} |")
        print()
        n = args.queued
        print(
            f"| Mosquitto saves its store | kept of {n} queued, kill -9 at once | kept, held 2 s first "
            "| QoS 1 msg/s, hub offline | QoS 1 msg/s, hub online |"
        )
        print("|---|---|---|---|---|")
        for i, (label, lines) in enumerate(SETTINGS):

            def broker(tag: str, i: int = i, lines: str = lines) -> _Autosave:
                b = _Autosave(workdir=Path(tmp) / f"mq-{i}-{tag}")
                b.lines = lines
                return b

            at_once, rate = broker_persistence(broker("now"), n, 0.0)
            held, _ = broker_persistence(broker("held"), n, 2.0)
            online = online_rate(broker("online"), n)
            print(f"| {label} | {at_once} | {held} | {rate:,.0f} | {online:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
