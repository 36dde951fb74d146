"""The amqtt fallback broker (no Mosquitto on the machine) enforces the same device accounts and ACL as Mosquitto:
the password file and ACL file the hub writes (ingest/transport/mqtt_acl.py), read by its plugins
(ingest/transport/mqtt_broker_auth.py). Issue 15 defect 2: it used to take any local client without a password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed
from sharpeye.ingest.transport.mqtt_acl import (
    BrokerAccount,
    accounts,
    covers,
    device_password,
    hub_account,
    write_files,
)

from sharpeye.node.embedded import EmbeddedAmqtt
from tests.helpers import wait_for
from tests.mqtt_account import AccountClient, demo_fences

SECRET = "amqtt-device-secret-0123456789"
HUB_PASSWORD = "amqtt-hub-Password-123"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedAmqtt]:
    workdir = tmp_path_factory.mktemp("amqtt-broker")
    site = load_file(demo_path(), installed())
    files = write_files(workdir / "auth", accounts(site.devices, installed(), SECRET, hub_account("hub", HUB_PASSWORD)))
    server = EmbeddedAmqtt(workdir=workdir, password_file=files["passwd"], acl_file=files["acl"])
    server.start(timeout=60)
    yield server
    server.stop()


def test_acl_patterns_grant_what_mosquitto_grants() -> None:
    assert covers("sharpeye/#", "sharpeye/fence/f1/event") and covers("sharpeye/#", "sharpeye/#")
    assert covers("sharpeye/fence/f1/#", "sharpeye/fence/f1/event")
    assert not covers("sharpeye/fence/f1/#", "sharpeye/fence/f2/event")
    assert covers("sharpeye/+/f1/command", "sharpeye/fence/f1/command")
    assert not covers("sharpeye/fence/f1/command", "sharpeye/#")  # a wider subscription than granted
    assert not covers("sharpeye/fence/f1/command", "sharpeye/fence/+/command")
    assert not covers("sharpeye/fence/f1/command", "sharpeye/fence/f1/command/x")


def test_wrong_password_unknown_user_and_anonymous_are_refused(broker: EmbeddedAmqtt) -> None:
    own, _ = demo_fences()
    for username, password in ((own, "not-the-password"), ("nobody", "x"), (None, None), (own, None)):
        client = AccountClient(broker.port, username, password, v5=False)
        try:
            assert not client.login(), f"{username!r} with {password!r} was let in"
        finally:
            client.close()


def test_a_device_is_confined_to_its_own_topics(broker: EmbeddedAmqtt) -> None:
    own, other = demo_fences()
    hub = AccountClient(broker.port, "hub", HUB_PASSWORD, v5=False)
    device = AccountClient(broker.port, own, device_password(SECRET, own), v5=False)
    try:
        assert hub.login() and device.login()
        assert hub.subscribe("sharpeye/#")
        assert not device.subscribe("sharpeye/#"), "a device subscribed to every device's traffic"
        assert not device.subscribe(f"sharpeye/fence/{other}/command")
        assert device.subscribe(f"sharpeye/fence/{own}/command")
        device.publish(f"sharpeye/fence/{other}/event", b"forged")
        device.publish(f"sharpeye/thermal/{own}/event", b"wrong kind")
        device.publish(f"sharpeye/fence/{own}/event", b"legitimate")
        # one client's messages arrive in order: once the legitimate one is in, the forged ones were dropped
        wait_for(lambda: f"sharpeye/fence/{own}/event" in hub.topics(), what="the legitimate message at the hub")
        assert hub.received == [(f"sharpeye/fence/{own}/event", b"legitimate")], hub.received
        hub.publish(f"sharpeye/fence/{own}/command", b"arm")
        wait_for(lambda: device.received, what="the device's own command")
        assert device.received == [(f"sharpeye/fence/{own}/command", b"arm")]
    finally:
        hub.close()
        device.close()


def test_accounts_written_while_it_runs_apply_without_a_restart(broker: EmbeddedAmqtt) -> None:
    """A device added at run time (API, discovery): the hub rewrites the files, the plugins read them again."""
    assert broker.password_file is not None
    site = load_file(demo_path(), installed())
    newcomer = BrokerAccount("fence-newcomer", "newcomer-pw", ("sharpeye/fence/fence-newcomer/#",), ())
    before = AccountClient(broker.port, newcomer.username, newcomer.password, v5=False)
    try:
        assert not before.login()
    finally:
        before.close()
    made = [*accounts(site.devices, installed(), SECRET, hub_account("hub", HUB_PASSWORD)), newcomer]
    write_files(Path(broker.password_file).parent, made)
    wait_for(lambda: _logs_in(broker.port, newcomer), what="the new account taken", timeout=10)


def _logs_in(port: int, account: BrokerAccount) -> bool:
    client = AccountClient(port, account.username, account.password, v5=False)
    try:
        return client.login()
    finally:
        client.close()
