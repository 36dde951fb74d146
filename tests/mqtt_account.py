"""A paho client logging in with a broker account, for the tests of device accounts and topic ACLs on Mosquitto and
on the amqtt fallback broker: it records what it receives and how its login and subscriptions went."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed
from sharpeye.ingest.transport.mqtt_acl import mqtt_devices


class AccountClient:
    """Connects at once; ``username`` None sends no user name or password. MQTT 5 by default (amqtt speaks 3.1.1)."""

    def __init__(self, port: int, username: str | None, password: str | None, *, v5: bool = True) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.refused: bool | None = None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda _c, _u, msg: self.received.append((msg.topic, msg.payload))
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        self.refused = bool(getattr(reason, "is_failure", False))
        self.connected.set()

    def login(self, timeout: float = 10) -> bool:
        """True when the broker took the login, False when it refused it."""
        assert self.connected.wait(timeout), "no CONNACK"
        return not self.refused

    def subscribe(self, topic: str, timeout: float = 10) -> bool:
        """True when granted (a SUBACK without failure)."""
        done = threading.Event()
        granted: list[bool] = []

        def on_subscribe(_c: object, _u: object, _mid: int, reasons: list[object], _p: object) -> None:
            granted.extend(not getattr(r, "is_failure", False) for r in reasons)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos=1)
        assert done.wait(timeout), "no SUBACK"
        return all(granted)

    def publish(self, topic: str, payload: bytes, timeout: float = 10) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout)

    def topics(self) -> list[str]:
        return [t for t, _ in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def demo_fences() -> tuple[str, str]:
    """Two fence controllers of the demo site (MQTT devices with broker accounts)."""
    fences = [d.id for d in mqtt_devices(load_file(demo_path(), installed()).devices, installed()) if d.kind == "fence"]
    assert len(fences) >= 2
    return fences[0], fences[1]
