"""docker-compose.yml: validated by Debian's docker-compose (no engine needed) and checked for what the
deployment promises: Redis with AOF, Mosquitto with per-device accounts and ACL, health checks and start order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from sharpeye.node.embedded import EmbeddedMosquitto

ROOT = Path(__file__).resolve().parents[1]
DEVICE_SECRET = "compose-device-secret-0123456789"
HUB_PASSWORD = "compose-hub-password"


def _without_secrets() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SHARPEYE_", "MQTT_"))}


def compose_config(*extra: str) -> dict[str, object]:
    env = {**_without_secrets(), "SHARPEYE_DEVICE_SECRET": DEVICE_SECRET, "SHARPEYE_BROKER_HUB_PASSWORD": HUB_PASSWORD}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *extra, "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = yaml.safe_load(result.stdout)
    return loaded


def test_compose_file_is_valid_and_wired() -> None:
    services = compose_config()["services"]
    assert isinstance(services, dict)
    always = {name for name, svc in services.items() if not svc.get("profiles")}
    assert always == {"redis", "broker-files", "mosquitto", "sharpeye"}
    assert "--appendonly" in services["redis"]["command"]
    for name in ("redis", "mosquitto", "sharpeye"):
        assert "healthcheck" in services[name], name
    assert services["sharpeye"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "mosquitto": {"condition": "service_healthy"},
    }
    assert services["mosquitto"]["depends_on"] == {"broker-files": {"condition": "service_completed_successfully"}}
    assert "sharpeye broker files" in " ".join(services["broker-files"]["command"])
    assert services["broker-files"]["environment"]["SHARPEYE_DEVICE_SECRET"] == DEVICE_SECRET
    env = services["sharpeye"]["environment"]
    assert env["SHARPEYE_MQTT_URL"] == f"mqtt://sharpeye-hub:{HUB_PASSWORD}@mosquitto:1883"
    assert env["SHARPEYE_DEVICE_SECRET"] == DEVICE_SECRET
    assert env["SHARPEYE_REDIS_URL"] == "redis://redis:6379/0"


def test_sim_profile_adds_the_simulators() -> None:
    services = compose_config("--profile", "sim")["services"]
    assert isinstance(services, dict)
    assert services["sim"]["profiles"] == ["sim"]
    assert services["sim"]["depends_on"] == {"sharpeye": {"condition": "service_healthy"}}
    assert services["sim"]["command"][:3] == ["sharpeye", "simulate", "site"]
    # No shared device account: each simulated device logs in as itself, with a password from the device secret.
    assert services["sim"]["environment"] == {"SHARPEYE_MQTT_URL": "mqtt://mosquitto:1883",
                                              "SHARPEYE_DEVICE_SECRET": DEVICE_SECRET}  # fmt: skip


def test_missing_passwords_are_refused() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=_without_secrets(),
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "SHARPEYE_" in result.stderr, result.stderr


def _connect(port: int, username: str, password: str) -> int:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.username_pw_set(username, password)
    codes: list[int] = []
    client.on_connect = lambda c, u, f, reason, p: codes.append(reason.value)
    client.connect("127.0.0.1", port)
    deadline = 50
    while not codes and deadline:
        client.loop(0.1)
        deadline -= 1
    client.disconnect()
    return codes[0] if codes else -1


def test_shipped_mosquitto_settings_enforce_device_accounts(tmp_path: Path) -> None:
    """What the broker-files service writes (`sharpeye broker files` on the demo site), in the shipped settings'
    places: a real Mosquitto lets the hub and each device in with their own passwords, and nobody else."""
    conf = (ROOT / "docker" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "max_queued_messages 100000" in conf
    assert "password_file /mosquitto/auth/passwd" in conf and "acl_file /mosquitto/auth/acl" in conf
    auth = tmp_path / "auth"
    env = {**_without_secrets(), "SHARPEYE_DEVICE_SECRET": DEVICE_SECRET, "SHARPEYE_BROKER_HUB_PASSWORD": HUB_PASSWORD}
    made = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "broker", "files", "-c", "config/demo.yaml", "--out", str(auth)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    password = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "broker", "password", "fence-reservoir"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip().split(",")[1]  # fmt: skip
    broker = EmbeddedMosquitto(
        workdir=tmp_path / "broker", password_file=auth / "passwd", acl_file=auth / "acl", persistence=False
    )
    broker.start()
    try:
        assert _connect(broker.port, "sharpeye-hub", HUB_PASSWORD) == 0
        assert _connect(broker.port, "fence-reservoir", password) == 0
        assert _connect(broker.port, "fence-reservoir", HUB_PASSWORD) != 0
        assert _connect(broker.port, "sharpeye-hub", "wrong") != 0
        assert _connect(broker.port, "nobody", "") != 0
    finally:
        broker.stop()


@pytest.mark.parametrize("name", ["Dockerfile", ".env.example"])
def test_deployment_files_exist(name: str) -> None:
    assert (ROOT / name).is_file()
