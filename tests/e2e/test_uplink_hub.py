"""The hub forwards alarm and case events to a configured webhook receiver, signed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.conftest import app_client, hub_settings
from tests.governance.test_uplink import SECRET, Receiver
from tests.helpers import Publisher, env_secret, wait_for


def test_alarm_and_case_events_reach_the_receiver(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    port = free_port()
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    hook = {"id": "district", "url": f"http://127.0.0.1:{port}/hook", "secret": env_secret(SECRET)}
    data["governance"]["uplinks"] = [{**hook, "backoff_s": 0.05, "backoff_max_s": 0.3}]
    site = load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="Uplink-Pass-1",
                            prefix=keys.prefix)  # fmt: skip
    with app_client(settings, site) as client:
        assert client.portal is not None
        receiver = Receiver(port)
        client.portal.call(receiver.start)
        try:
            client.wait_connected()
            pub = Publisher(mqtt_broker.url)
            event = {
                "seq": 1,
                "ts": datetime.now(UTC).isoformat(),
                "event": "alarm",
                "cause": "intrusion",
                "zone": "z1",
            }
            pub.publish("sharpeye/fence/fence-reservoir/event", event)
            pub.close()

            def delivered() -> set[str]:
                return {str(e["type"]) for e in receiver.accepted}

            types = wait_for(lambda: {"alarm.raised", "case.dispatch"} <= delivered() and delivered(), timeout=20,
                             what="alarm and case events delivered")  # fmt: skip
            assert "case.report" in types and not receiver.refused
            assert len({e["id"] for e in receiver.accepted}) == len(receiver.accepted)  # each delivered once
        finally:
            client.portal.call(receiver.stop)
