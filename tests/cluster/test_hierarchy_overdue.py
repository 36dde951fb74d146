"""Escalation by supervision: with ``hierarchy.upper.escalate_overdue``, a case whose 督办 step for the level above
fires at a hub that has no level above the case's department goes to the upper hub by itself; a step for the
centre does not send anything up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.governance.escalation import Firing
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.conftest import app_client, hub_settings
from tests.helpers import env_secret, wait_for

PASSWORD = "Overdue-Pass-1"


def test_an_overdue_case_at_the_top_goes_up(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    nowhere = f"http://127.0.0.1:{free_port()}/api/hierarchy/inbox"  # nobody listens: the message waits queued
    data["governance"]["uplinks"] = [{"id": "district", "url": nowhere, "secret": env_secret("pair-key-0123456789ab"),
                                      "events": ["hub"], "backoff_s": 5}]  # fmt: skip
    data["governance"]["hierarchy"] = {"upper": {"uplink": "district", "escalate_overdue": True}}
    site = load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PASSWORD, prefix=keys.prefix)
    with app_client(settings, site, sign_in=PASSWORD) as client:

        def case(severity: str) -> dict[str, Any]:
            report = {"title": "仓库火情", "category": "fire", "org_unit": "shanxia-g1", "severity": severity}
            case_id = client.post("/api/reports", json=report).json()["id"]
            for action in ("accept", "dispatch"):
                answer = client.post(f"/api/cases/{case_id}/actions", json={"action": action})
                assert answer.status_code == 200, answer.text
            return dict(client.get(f"/api/cases/{case_id}").json()["case"])

        top = case("critical")  # dispatched at the town: no level above it in this hub
        lower = case("minor")  # dispatched at a village: the town is its level above
        assert top["level"] == "town" and lower["level"] == "village"

        def fire(case_id: str, notify: str, target: str) -> None:
            now = time.time()
            firing = Firing(entry_id="0-1", case_id=case_id, step=f"step-{notify}", notify=notify, target=target,
                            due=now, at=now, generation="g1")  # fmt: skip
            assert client.call(lambda: client.hub.cases.record_firing(firing))

        fire(lower["id"], "level_above", "qingshui")  # a level above exists here: no escalation
        fire(top["id"], "centre", "centre")  # the centre is told: no escalation
        fire(top["id"], "level_above", "centre")  # no level above the town here: up it goes

        def escalated() -> list[dict[str, Any]]:
            return [e for e in client.get("/api/hierarchy").json()["escalated"] if e["sent"]]

        (record,) = wait_for(escalated, timeout=30, what="the overdue case escalated and queued for the upper hub")
        assert (record["case_id"], record["by"]) == (top["id"], "system:sla")
        assert "超期上报上级" in record["reason"]
        (uplink,) = client.get("/api/uplinks").json()
        assert uplink["pending"] == 1  # the escalation message, waiting for the upper hub
        history = client.get(f"/api/cases/{top['id']}").json()["history"]
        assert [e["actor"] for e in history if e["action"] == "escalate_up"] == ["system:sla"]
        others = client.get(f"/api/cases/{lower['id']}").json()["history"]
        assert not [e for e in others if e["action"] == "escalate_up"]
