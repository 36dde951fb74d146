"""Helpers shared by tests: polling with a deadline (no sleep races), MQTT publishing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class Publisher:
    """A plain paho client for tests, publishing QoS 1 and waiting for each PUBACK."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.connect(host, int(port))
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | dict[str, object] | str, retain: bool = False) -> None:
        data = orjson.dumps(payload) if isinstance(payload, dict) else payload
        info = self.client.publish(topic, data, qos=1, retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def env_secret(value: str) -> str:
    """Put ``value`` into an environment variable of this test process and return its ``${NAME}`` reference, the
    only form a secret may take in site config."""
    import hashlib
    import os

    name = f"SE_TEST_SECRET_{hashlib.sha256(value.encode()).hexdigest()[:12].upper()}"
    os.environ[name] = value
    return "${" + name + "}"
