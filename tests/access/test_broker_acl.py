"""Device credentials on a real Mosquitto: each device is confined to its own topics; the hub reads everything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed
from sharpeye.ingest.transport.mqtt_acl import accounts, device_password, hub_account, write_files

from sharpeye.node.embedded import EmbeddedMosquitto
from tests.helpers import wait_for
from tests.mqtt_account import AccountClient, demo_fences

SECRET = "test-device-secret-0123456789"
HUB_PASSWORD = "hub-Password-123"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMosquitto]:
    workdir = tmp_path_factory.mktemp("acl-broker")
    site = load_file(demo_path(), installed())
    files = write_files(workdir / "auth", accounts(site.devices, installed(), SECRET, hub_account("hub", HUB_PASSWORD)))
    server = EmbeddedMosquitto(workdir=workdir, password_file=files["passwd"], acl_file=files["acl"])
    server.start()
    yield server
    server.stop()


def test_files_are_private_and_list_only_mqtt_devices(tmp_path: Path) -> None:
    site = load_file(demo_path(), installed())
    files = write_files(tmp_path, accounts(site.devices, installed(), SECRET, hub_account("hub", HUB_PASSWORD)))
    for path in files.values():
        assert path.stat().st_mode & 0o077 == 0, path
    passwd = files["passwd"].read_text()
    assert SECRET not in passwd and HUB_PASSWORD not in passwd and "$7$101$" in passwd
    users = {line.split(":")[0] for line in passwd.splitlines()}
    kinds = {d.id: d.kind for d in site.devices}
    assert "hub" in users
    assert {kinds[u] for u in users - {"hub"}} <= {"fence", "thermal", "water_level"}
    assert not any(kinds[u] in ("camera", "gb28181") for u in users - {"hub"})


def test_wrong_password_is_refused(broker: EmbeddedMosquitto) -> None:
    own, _ = demo_fences()
    client = AccountClient(broker.port, own, "not-the-password")
    assert not client.login()
    client.close()


def test_device_cannot_publish_on_another_devices_topics(broker: EmbeddedMosquitto) -> None:
    own, other = demo_fences()
    hub = AccountClient(broker.port, "hub", HUB_PASSWORD)
    assert hub.login()
    hub.subscribe("sharpeye/#")
    device = AccountClient(broker.port, own, device_password(SECRET, own))
    assert device.login()
    device.publish(f"sharpeye/fence/{other}/event", b"forged")
    device.publish("sharpeye/fence/somebody/state", b"forged")
    device.publish(f"sharpeye/thermal/{own}/event", b"wrong kind")
    device.publish(f"sharpeye/fence/{own}/event", b"legitimate")
    # Messages of one client arrive in order: once the legitimate one is in, the forged ones were dropped.
    wait_for(lambda: f"sharpeye/fence/{own}/event" in hub.topics(), what="the legitimate message at the hub")
    assert hub.received == [(f"sharpeye/fence/{own}/event", b"legitimate")]
    hub.close()
    device.close()


def test_device_reads_only_its_own_command_topic(broker: EmbeddedMosquitto) -> None:
    own, other = demo_fences()
    device = AccountClient(broker.port, own, device_password(SECRET, own))
    assert device.login()
    device.subscribe("sharpeye/#")  # granted only where the ACL allows
    hub = AccountClient(broker.port, "hub", HUB_PASSWORD)
    assert hub.login()
    hub.publish(f"sharpeye/fence/{other}/command", b"for the other")
    hub.publish(f"sharpeye/fence/{other}/event", b"the other's event")
    hub.publish(f"sharpeye/fence/{own}/command", b"for me")
    wait_for(lambda: device.received, what="the device's own command")
    assert device.received == [(f"sharpeye/fence/{own}/command", b"for me")]
    hub.close()
    device.close()


def test_broker_files_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")}
    command = [sys.executable, "-m", "sharpeye.node", "broker", "files", "-c", str(demo_path()), "--out", str(tmp_path)]
    refused = subprocess.run(command, env=base, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "SHARPEYE_DEVICE_SECRET" in refused.stderr
    assert not (tmp_path / "passwd").exists()
    env = base | {"SHARPEYE_DEVICE_SECRET": SECRET, "SHARPEYE_BROKER_HUB_PASSWORD": HUB_PASSWORD}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr and HUB_PASSWORD not in done.stdout + done.stderr
    own, _ = demo_fences()
    acl = (tmp_path / "acl").read_text()
    assert f"user {own}\ntopic write sharpeye/fence/{own}/#\n" in acl
    assert "user sharpeye-hub\ntopic readwrite sharpeye/#" in acl
    sheet = dict(line.split(",") for line in (tmp_path / "credentials.csv").read_text().splitlines()[1:])
    assert sheet[own] == device_password(SECRET, own) and sheet["sharpeye-hub"] == HUB_PASSWORD


def test_broker_files_list_sip_passwords_and_broker_password_prints_derived_ones(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from sharpeye.ingest.credential import device_password as derive

    own, shared = "34020000001320000001", "34020000001320000002"
    text = demo_path().read_text(encoding="utf-8").replace("devices:\n", (
        "devices:\n"
        f'  - {{id: "{own}", kind: gb28181, name: 东门, grid: hedong-g2, password: "${{SE_TEST_GATE_PW}}"}}\n'
        f'  - {{id: "{shared}", kind: gb28181, name: 西门, grid: hedong-g2}}\n'
    ), 1)  # fmt: skip
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")} | {"SE_TEST_GATE_PW": "gate-pw-1"}
    env = base | {"SHARPEYE_DEVICE_SECRET": SECRET, "SHARPEYE_BROKER_HUB_PASSWORD": HUB_PASSWORD}
    cli = [sys.executable, "-m", "sharpeye.node", "broker"]
    out = tmp_path / "out"
    done = subprocess.run([*cli, "files", "-c", str(site), "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sheet = (out / "sip-credentials.csv").read_text()
    assert out.joinpath("sip-credentials.csv").stat().st_mode & 0o077 == 0
    assert f"{shared},{derive(SECRET, shared, 'sip')}\n" in sheet
    assert f"{own},(own password from environment variable SE_TEST_GATE_PW)\n" in sheet and "gate-pw-1" not in sheet
    assert own not in (out / "passwd").read_text()  # GB/T 28181 devices have no broker account
    printed = subprocess.run([*cli, "password", "fence-new", shared, "--purpose", "sip"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert printed.stdout.splitlines() == [f"fence-new,{derive(SECRET, 'fence-new', 'sip')}",
                                           f"{shared},{derive(SECRET, shared, 'sip')}"]  # fmt: skip
    # Without the variable: the secret a hub generated in its data dir.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "device-secret").write_text("generated-by-the-hub-0123\n")
    kept = subprocess.run([*cli, "password", "fence-new", "--data-dir", str(tmp_path / "data")], env=base,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert kept.stdout.strip() == f"fence-new,{derive('generated-by-the-hub-0123', 'fence-new')}", kept.stderr
