"""Sites for simulator tests: the packaged demo site plus the thermal cameras and gauge proposed for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sharpeye.config.loader import demo_path, validate
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import installed

HERE = Path(__file__).parent


def demo_site_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    present = {d["id"] for d in data["devices"]}
    extra = yaml.safe_load((HERE / "demo_extra_devices.yaml").read_text(encoding="utf-8"))
    data["devices"].extend(d for d in extra if d["id"] not in present)
    return data


@pytest.fixture
def demo_site() -> SiteConfig:
    return validate(demo_site_data(), installed(), "demo+thermal")


@pytest.fixture
def fence_fleet() -> Callable[[int, float], SiteConfig]:
    return _fence_fleet


def _fence_fleet(count: int, heartbeat_s: float = 1.0) -> SiteConfig:
    """A site of ``count`` fence controllers on one grid (for the many-devices tests)."""
    data = demo_site_data()
    data["devices"] = [
        {
            "id": f"fence-{i:04d}",
            "kind": "fence",
            "name": f"围界主机{i}",
            "grid": "hedong-g1",
            "heartbeat_s": heartbeat_s,
            "zones": [{"id": "z1", "name": "一号防区"}, {"id": "tamper", "name": "防拆", "type": "tamper"}],
        }
        for i in range(count)
    ]
    data["rules"] = [r for r in data["rules"] if r["id"].startswith("fence-")]
    return validate(data, installed(), "fleet")
