"""docker/cluster/docker-compose.yml: validated by Debian's docker-compose (no engine needed) and checked for what
docs/deployment.md promises: three hub nodes with distinct ids on one Redis through Sentinel, one broker, one
PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from sharpeye.redis_connection import sentinel_parts

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "docker" / "cluster" / "docker-compose.yml"


def config() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")}
    env |= {"SHARPEYE_DEVICE_SECRET": "compose-device-secret-0123456789", "SHARPEYE_BROKER_HUB_PASSWORD": "hubpw",
            "SHARPEYE_POSTGRES_PASSWORD": "pgpw"}  # fmt: skip
    result = subprocess.run(["docker-compose", "-f", str(FILE), "config"], capture_output=True, text=True, env=env,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_three_hubs_share_redis_through_sentinel_one_broker_and_postgres() -> None:
    services = config()["services"]
    hubs = {name: svc for name, svc in services.items() if name.startswith("hub-")}
    assert sorted(hubs) == ["hub-a", "hub-b", "hub-c"]
    ids = [svc["environment"]["SHARPEYE_NODE_ID"] for svc in hubs.values()]
    assert sorted(ids) == ["hub-a", "hub-b", "hub-c"]
    for name in ("SHARPEYE_REDIS_URL", "SHARPEYE_MQTT_URL", "SHARPEYE_DATABASE_URL", "SHARPEYE_DEVICE_SECRET"):
        assert len({svc["environment"][name] for svc in hubs.values()}) == 1, name  # the same on every node
    env = hubs["hub-a"]["environment"]
    hosts, master, db, _ = sentinel_parts(env["SHARPEYE_REDIS_URL"])
    assert [h for h, _ in hosts] == ["sentinel-1", "sentinel-2", "sentinel-3"] and master == "sharpeye" and db == 0
    assert env["SHARPEYE_DATABASE_URL"].startswith("postgresql+asyncpg://sharpeye:pgpw@postgres:5432/")
    assert len({svc["volumes"][0] for svc in hubs.values()}) == 3  # a data volume each (evidence)
    for n in (1, 2, 3):
        assert "sentinel monitor sharpeye redis-master 6379 2" in " ".join(services[f"sentinel-{n}"]["command"])
    assert "--replicaof" in services["redis-replica"]["command"]
    assert "--min-replicas-to-write" in services["redis-master"]["command"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["mosquitto"]
