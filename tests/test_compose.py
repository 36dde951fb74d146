"""docker-compose.yml: validated by Debian's docker-compose (no engine needed) and checked for what the
deployment promises: Redis with AOF, Mosquitto with password auth, health checks and start order."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from sharpeye.embedded import EmbeddedMosquitto

ROOT = Path(__file__).resolve().parents[1]


def compose_config(*extra: str) -> dict[str, object]:
    env = {**os.environ, "MQTT_HUB_PASSWORD": "hub-secret", "MQTT_DEVICE_PASSWORD": "dev-secret"}
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
    assert always == {"redis", "mosquitto-passwd", "mosquitto", "sharpeye"}
    assert "--appendonly" in services["redis"]["command"]
    for name in ("redis", "mosquitto", "sharpeye"):
        assert "healthcheck" in services[name], name
    assert services["sharpeye"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "mosquitto": {"condition": "service_healthy"},
    }
    assert services["mosquitto"]["depends_on"] == {"mosquitto-passwd": {"condition": "service_completed_successfully"}}
    env = services["sharpeye"]["environment"]
    assert env["SHARPEYE_MQTT_URL"] == "mqtt://sharpeye:hub-secret@mosquitto:1883"
    assert env["SHARPEYE_REDIS_URL"] == "redis://redis:6379/0"


def test_sim_profile_adds_the_simulators() -> None:
    services = compose_config("--profile", "sim")["services"]
    assert isinstance(services, dict)
    assert services["sim"]["profiles"] == ["sim"]
    assert services["sim"]["depends_on"] == {"sharpeye": {"condition": "service_healthy"}}
    assert services["sim"]["command"][:3] == ["sharpeye", "simulate", "site"]


def test_missing_passwords_are_refused() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "MQTT_HUB_PASSWORD" in result.stderr


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


def test_shipped_mosquitto_settings_enforce_passwords(tmp_path: Path) -> None:
    """The broker settings of docker/mosquitto: a real Mosquitto refuses anonymous and wrong passwords."""
    conf = (ROOT / "docker" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file" in conf and "max_queued_messages 100000" in conf
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "sharpeye", "hub-secret"], check=True, timeout=30)
    broker = EmbeddedMosquitto(workdir=tmp_path / "broker", password_file=passwd, persistence=False)
    broker.start()
    try:
        assert _connect(broker.port, "sharpeye", "hub-secret") == 0
        assert _connect(broker.port, "sharpeye", "wrong") != 0
        assert _connect(broker.port, "nobody", "") != 0
    finally:
        broker.stop()


@pytest.mark.parametrize("name", ["Dockerfile", ".env.example"])
def test_deployment_files_exist(name: str) -> None:
    assert (ROOT / name).is_file()
