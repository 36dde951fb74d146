"""A device kind from a package of its own, outside this tree: its folder plus two entry-point lines (driver and
simulator) is all it takes. The package is built and installed into a temporary directory, and the hub's own
commands see it: ``config check`` validates a site that uses it, the contract suite runs over it, and the labels the
console shows come from its driver through the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=69"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "acme-noise-meter"
        version = "1.0.0"

        [project.entry-points."sharpeye.drivers"]
        noise_meter = "acme_noise.noise_meter:driver"

        [project.entry-points."sharpeye.simulators"]
        noise_meter = "acme_noise.simulator:NoiseSimulator"

        [tool.setuptools]
        packages = ["acme_noise", "acme_noise.noise_meter"]

        [tool.setuptools.package-data]
        "acme_noise.noise_meter" = ["fixtures/*"]
        """,
    "acme_noise/__init__.py": '"""Acme devices for SharpEye."""\n',
    "acme_noise/noise_meter/__init__.py": '''
        """Noise meters (噪声监测仪) over MQTT: level in dB(A) against a limit."""

        from __future__ import annotations

        from collections.abc import Iterable, Sequence
        from datetime import datetime
        from pathlib import Path
        from typing import Literal

        import msgspec
        from pydantic import Field

        from sharpeye.config.device import DeviceConfig
        from sharpeye.ingest.driver import Payload, Transport, decode_json, finite, sequence, timestamp
        from sharpeye.ingest.reading import DecodeError, Reading


        class NoiseConfig(DeviceConfig):
            """A meter publishing ``sharpeye/noise_meter/<id>/level``."""

            kind: Literal["noise_meter"] = Field(description="Device kind.")
            limit_db: float = Field(default=70, gt=0, lt=200, description="Limit, dB(A).")


        class Level(msgspec.Struct, forbid_unknown_fields=True):
            seq: int
            ts: datetime | int
            db: float


        class Heartbeat(msgspec.Struct, forbid_unknown_fields=True):
            seq: int
            ts: datetime | int


        _level = msgspec.json.Decoder(Level)
        _heartbeat = msgspec.json.Decoder(Heartbeat)


        class NoiseDriver:
            kind = "noise_meter"
            transport: Transport = "mqtt"
            config_model = NoiseConfig
            reading_kinds: Sequence[str] = ("noise_meter.level",)
            labels = {
                "noise_meter": {"zh": "噪声监测仪", "en": "Noise meter"},
                "noise_meter.level": {"zh": "噪声", "en": "noise level"},
            }
            fixtures = Path(__file__).with_name("fixtures")

            def channels(self, device: DeviceConfig) -> Iterable[str]:
                return []

            def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
                assert isinstance(device, NoiseConfig)
                if payload.channel == "heartbeat":
                    beat = decode_json(_heartbeat, payload.data, 512)
                    return [Reading(device_id=device.id, kind="device.heartbeat", value=True,
                                    ts=timestamp(beat.ts, payload.received), seq=sequence(beat.seq))]
                if payload.channel != "level":
                    raise DecodeError("unknown_channel", f"noise meters publish level, not {payload.channel!r}")
                msg = decode_json(_level, payload.data, 512)
                db = finite(msg.db, "db", 0, 200)
                return [
                    Reading(device_id=device.id, kind="noise_meter.level", value=db,
                            ts=timestamp(msg.ts, payload.received), seq=sequence(msg.seq),
                            attrs={"over": db > device.limit_db})
                ]


        driver = NoiseDriver()
        ''',
    "acme_noise/noise_meter/fixtures/cases.yaml": """
        received: "2026-01-05T02:00:00Z"
        device: {id: noise-1, kind: noise_meter, name: 广场噪声监测仪, grid: shanxia-g1, limit_db: 70}
        good:
          - name: quiet
            channel: level
            raw: '{"seq": 1, "ts": "2026-01-05T02:00:00Z", "db": 55.5}'
            readings:
              - {kind: noise_meter.level, value: 55.5, seq: 1, attrs: {over: false}}
          - name: heartbeat
            channel: heartbeat
            raw: '{"seq": 3, "ts": "2026-01-05T02:00:00Z"}'
            readings:
              - {kind: device.heartbeat, value: true, seq: 3}
          - name: loud
            channel: level
            raw: '{"seq": 2, "ts": 1767578460000, "db": 81}'
            readings:
              - {kind: noise_meter.level, value: 81.0, ts: "2026-01-05T02:01:00Z", attrs: {over: true}}
        bad:
          - {name: not JSON, channel: level, raw: "DB=55", reason: not_json}
          - {name: invalid UTF-8, channel: level, hex: "7b226462223a20ff7d", reason: bad_utf8}
          - {name: NaN, channel: level, raw: '{"seq": 1, "ts": 1, "db": NaN}', reason: non_finite}
          - {name: an array, channel: level, raw: '[1, 2]', reason: wrong_shape}
          - {name: db as text, channel: level, raw: '{"seq": 1, "ts": 1, "db": "loud"}', reason: wrong_type}
          - {name: too large, channel: level, raw: '{"seq": 1, "ts": 1, "db": 50}', pad_to: 600, reason: oversize}
          - {name: unknown channel, channel: spectrum, raw: '{}', reason: unknown_channel}
          - {name: out of range, channel: level, raw: '{"seq": 1, "ts": 1, "db": 500}', reason: out_of_range}
        """,
    "acme_noise/simulator.py": '''
        """Simulated noise meter: a level every ``heartbeat_s``."""

        from __future__ import annotations

        import random
        from collections.abc import Mapping, Sequence
        from datetime import datetime, timedelta
        from typing import Any

        import msgspec


        class NoiseSimulator:
            def __init__(self, device: Any, *, seed: int, start: datetime) -> None:
                self.device = device
                self._rng = random.Random(seed)
                self._seq = 0
                self._next = start

            @property
            def device_id(self) -> str:
                return str(self.device.id)

            def next_tick(self) -> datetime:
                return self._next

            def actions(self) -> Sequence[str]:
                return ()

            def tick(self, now: datetime) -> list[tuple[str, bytes]]:
                if now < self._next:
                    return []
                self._next = now + timedelta(seconds=self.device.heartbeat_s)
                self._seq += 1
                ts = int(now.timestamp() * 1000)
                db = round(self._rng.uniform(40, 90), 1)
                level = msgspec.json.encode({"seq": self._seq, "ts": ts, "db": db})
                return [("level", level), ("heartbeat", msgspec.json.encode({"seq": self._seq, "ts": ts}))]

            def act(self, action: str, args: Mapping[str, Any], now: datetime) -> list[tuple[str, bytes]]:
                raise ValueError(f"noise_meter simulator has no action {action!r}")
        ''',
}


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that has the external package installed (into a directory of its own)."""
    base = tmp_path_factory.mktemp("external-kind")
    src, site = base / "src", base / "site"
    for name, text in PACKAGE.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return env


def _site_with_noise_meter(tmp_path: Path, extra: str = "") -> Path:
    demo = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    device = (
        "  - id: noise-square\n    kind: noise_meter\n    name: 广场噪声监测仪\n    grid: shanxia-g1\n"
        f"    limit_db: 65\n{extra}"
    )
    path = tmp_path / "site.yaml"
    path.write_text(demo.replace("devices:\n", "devices:\n" + device, 1), encoding="utf-8")
    return path


def test_config_check_knows_the_external_kind(external: dict[str, str], tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "config", "check", str(_site_with_noise_meter(tmp_path))],
        env=external, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    bad_path = _site_with_noise_meter(tmp_path, extra="    limit_db_typo: 3\n")
    bad = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "config", "check", str(bad_path)],
        env=external, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "limit_db_typo" in bad.stdout + bad.stderr


def test_without_the_package_the_kind_is_unknown(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "config", "check", str(_site_with_noise_meter(tmp_path))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1
    assert "noise_meter" in res.stdout + res.stderr


def test_the_contract_suite_runs_over_the_external_kind(external: dict[str, str]) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "noise_meter",
         str(ROOT / "tests" / "contract" / "test_drivers.py")],
        env=external, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    summary = res.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 5, summary


def test_the_console_label_comes_from_the_external_driver(external: dict[str, str]) -> None:
    script = (
        "import json; from sharpeye.api.routes.kind import kind_views; from sharpeye.ingest.registry import installed; "
        "print(json.dumps([v.model_dump() for v in kind_views(installed()) if v.kind == 'noise_meter']))"
    )
    res = subprocess.run([sys.executable, "-c", script], env=external, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    [view] = json.loads(res.stdout)
    assert view["label"] == {"zh": "噪声监测仪", "en": "Noise meter"}
    assert view["readings"]["noise_meter.level"] == {"zh": "噪声", "en": "noise level"}
