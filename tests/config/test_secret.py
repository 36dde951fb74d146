"""Secrets in the site YAML only as ``${NAME}``: read from the environment at load time; a literal secret or an
unset variable is refused by `sharpeye config check` with the path and line, and the value is never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sharpeye.config.loader import ConfigError, demo_path, load_text
from sharpeye.config.secret import EnvSecret
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.registry import installed

ROOT = Path(__file__).resolve().parents[2]
LITERAL = "Literal-Secret-Value-0123"
GB_DEVICE = '  - {id: "34020000001320000001", kind: gb28181, name: 东门, grid: hedong-g2, password: "%s"}\n'
CASCADE = (
    'gb28181:\n  sip_id: "34020000002000000001"\n  cascade:\n    upper_id: "34010000002000000001"\n'
    '    upper_host: 10.0.0.1\n    password: "%s"\n'
)
UPLINK = 'governance:\n  uplinks:\n    - {id: city, url: "https://city.example/hook", secret: "%s"}\n'


def site_text(gb: str = "", cascade: str = "", uplink: str = "") -> str:
    text = demo_path().read_text(encoding="utf-8")
    if gb:
        text = text.replace("devices:\n", "devices:\n" + GB_DEVICE % gb, 1)
    if uplink:
        text = text.replace("governance:\n", UPLINK % uplink, 1)
    return text + (CASCADE % cascade if cascade else "")


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def check(tmp_path: Path, text: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHARPEYE_", "SE_TEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "config", "check", str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=base | env,
    )  # fmt: skip


def test_literal_secrets_are_refused_with_path_line_and_the_fix(tmp_path: Path) -> None:
    text = site_text(gb=LITERAL, cascade=LITERAL, uplink=LITERAL)
    result = check(tmp_path, text, {})
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert LITERAL not in out
    for path in ("devices[0].password", "gb28181.cascade.password", "governance.uplinks[0].secret"):
        assert f"{path}: a secret may not be written into the file: write ${{NAME}}" in out, (path, out)
    assert f"line {line_of(text, 'kind: gb28181')}: devices[0].password" in out
    assert f"line {line_of(text, 'upper_host') + 1}: gb28181.cascade.password" in out


def test_unset_variables_are_named_and_set_ones_are_read(tmp_path: Path) -> None:
    text = site_text(gb="${SE_TEST_GATE}", cascade="${SE_TEST_UPPER}", uplink="${SE_TEST_HOOK}")
    missing = check(tmp_path, text, {"SE_TEST_GATE": LITERAL})
    assert missing.returncode == 1
    assert "gb28181.cascade.password: environment variable SE_TEST_UPPER is not set" in missing.stderr
    assert "governance.uplinks[0].secret: environment variable SE_TEST_HOOK is not set" in missing.stderr
    assert "SE_TEST_GATE" not in missing.stderr and LITERAL not in missing.stderr
    short = check(tmp_path, text, {"SE_TEST_GATE": "g", "SE_TEST_UPPER": "u", "SE_TEST_HOOK": "too-short"})
    assert "SE_TEST_HOOK needs at least 16 characters" in short.stderr and "too-short" not in short.stderr
    ok = check(tmp_path, text, {"SE_TEST_GATE": "g", "SE_TEST_UPPER": "u", "SE_TEST_HOOK": LITERAL})
    assert ok.returncode == 0, ok.stderr


def test_a_loaded_secret_shows_and_serialises_as_its_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_TEST_GATE", LITERAL)
    monkeypatch.setenv("SE_TEST_HOOK", LITERAL)
    site = load_text(site_text(gb="${SE_TEST_GATE}", uplink="${SE_TEST_HOOK}"), installed())
    device = next(d for d in site.devices if isinstance(d, GbDeviceConfig))
    assert device.password is not None and device.password.get_secret_value() == LITERAL
    assert site.governance.uplinks[0].secret.get_secret_value() == LITERAL
    dumped = site.model_dump(mode="json")
    assert LITERAL not in repr(site) and LITERAL not in str(dumped)
    assert dumped["devices"][0]["password"] == "${SE_TEST_GATE}"
    # A dumped device (the API's view, a run-time device stored in Redis) loads again from the environment.
    again = installed().device_adapter().validate_python(dumped["devices"][0])
    assert again == device
    monkeypatch.setenv("SE_TEST_GATE", "rotated")
    assert installed().device_adapter().validate_python(dumped["devices"][0]).password == EnvSecret(
        "SE_TEST_GATE", "rotated"
    )


def test_a_validation_error_never_carries_the_literal() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(site_text(gb=LITERAL), installed())
    assert LITERAL not in str(caught.value)
    with pytest.raises(ValidationError) as raw:
        GbDeviceConfig.model_validate({"id": "34020000001320000001", "kind": "gb28181", "name": "x", "grid": "g",
                                       "password": LITERAL})  # fmt: skip
    assert LITERAL not in str(raw.value)


def test_without_a_password_a_gb_device_uses_the_derived_one() -> None:
    device = GbDeviceConfig.model_validate({"id": "34020000001320000001", "kind": "gb28181", "name": "x", "grid": "g"})
    secret = "site-device-secret-0123456789"
    sip = device.digest_password(secret)
    assert sip is not None and len(sip) == 32
    from sharpeye.ingest.credential import device_password

    assert sip == device_password(secret, device.id, "sip") != device_password(secret, device.id, "mqtt")
    assert device.digest_password(None) is None


def test_a_camera_url_takes_a_password_only_as_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    from sharpeye.ingest.camera.config import CameraConfig

    base = {"id": "cam-gate", "kind": "camera", "name": "x", "grid": "g"}
    with pytest.raises(ValidationError) as caught:
        CameraConfig.model_validate(base | {"url": f"rtsp://admin:{LITERAL}@10.0.0.9/ch1"})
    assert "password in a URL may not be written" in str(caught.value) and LITERAL not in str(caught.value)
    with pytest.raises(ValidationError, match="SE_TEST_CAM is not set"):
        CameraConfig.model_validate(base | {"url": "rtsp://admin:${SE_TEST_CAM}@10.0.0.9/ch1"})
    monkeypatch.setenv("SE_TEST_CAM", "p@ss:w/rd")
    camera = CameraConfig.model_validate(base | {"url": "rtsp://admin:${SE_TEST_CAM}@10.0.0.9/ch1"})
    assert camera.url == "rtsp://admin:${SE_TEST_CAM}@10.0.0.9/ch1"  # shown and stored as the reference
    assert camera.open_url == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.9/ch1"
    for plain in ("rtsp://10.0.0.9/ch1", "rtsp://admin@10.0.0.9/ch1", "synthetic:intrusion", "/data/clip.ts"):
        assert CameraConfig.model_validate(base | {"url": plain}).open_url == plain
