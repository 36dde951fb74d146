"""``sharpeye run`` over HTTPS with SHARPEYE_TLS_CERT/KEY, and no secret in anything the hub prints or logs:
the admin password, the broker password in SHARPEYE_MQTT_URL, passwords tried at login, session and API tokens."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sharpeye.config.loader import demo_path

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import own_mqtt_session
from tests.helpers import wait_for

ADMIN_SECRET = "Admin-Secret-Pw-4711"
BROKER_SECRET = "Broker-Secret-Pw-0815"
WRONG_SECRET = "Wrong-Guess-Pw-9999"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_https_serving_and_no_secret_in_output_or_logs(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto
) -> None:
    cert, key = self_signed(tmp_path)
    data = tmp_path / "data"
    prefix = f"tls{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")} | {
        "SHARPEYE_TLS_CERT": str(cert),
        "SHARPEYE_TLS_KEY": str(key),
        "SHARPEYE_REDIS_URL": redis_server.url,
        "SHARPEYE_REDIS_PREFIX": prefix,
        "SHARPEYE_MQTT_URL": f"mqtt://hub:{BROKER_SECRET}@127.0.0.1:{mqtt_broker.port}",
        "SHARPEYE_MQTT_CLIENT_ID": own_mqtt_session(mqtt_broker.url, prefix),
        "SHARPEYE_ADMIN_PASSWORD": ADMIN_SECRET,
        "SHARPEYE_CAMERAS": "false",
        "SHARPEYE_LOG_LEVEL": "DEBUG",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpeye.node", "run", "-c", str(demo_path()), "--port", "0", "--data-dir", str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    base = None
    secrets: list[str] = [ADMIN_SECRET, BROKER_SECRET, WRONG_SECRET]
    try:
        deadline = time.monotonic() + 40
        while base is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            if m := re.search(r"console: (https://[\d.]+:\d+)/", line):
                base = m.group(1)
        assert base, "".join(lines)
        with httpx.Client(base_url=base, verify=str(cert)) as client:
            # healthy once the hub's MQTT receiver has connected, which may come just after the banner
            wait_for(lambda: client.get("/healthz").status_code == 200, what="a healthy hub")
            bad = client.post("/api/auth/token", data={"username": "admin", "password": WRONG_SECRET})
            assert bad.status_code == 401
            started = client.post("/api/auth/session", data={"username": "admin", "password": ADMIN_SECRET})
            assert started.status_code == 200
            assert all("Secure" in c for c in started.headers.get_list("set-cookie"))
            csrf = started.json()["csrf_token"]
            secrets += [csrf, client.cookies["sharpeye_session"]]
            issued = client.post("/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": csrf})
            assert issued.status_code == 201
            secrets.append(issued.json()["token"])
            script = {"Authorization": f"Bearer {issued.json()['token']}"}
            assert client.get("/api/devices", headers=script).status_code == 200
        with httpx.Client(base_url=base) as unverified:  # the certificate is checked
            try:
                unverified.get("/healthz")
                raise AssertionError("a self-signed certificate was accepted without being trusted")
            except httpx.ConnectError:
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        # read() and not communicate(): communicate() bypasses what readline() already buffered
        lines.append(proc.stdout.read())
        proc.wait(30)
    output = "".join(lines)
    assert " DEBUG " in output, output[-3000:]  # debug logging was on
    assert f"MQTT: mqtt://hub:***@127.0.0.1:{mqtt_broker.port}" in output, output[-3000:]  # shown redacted
    logs = [output] + [p.read_text(errors="replace") for p in data.rglob("*.log")]
    for secret in secrets:
        assert all(secret not in text for text in logs), f"a secret ({secret[:4]}…) was printed or logged"
