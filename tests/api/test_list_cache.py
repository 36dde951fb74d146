"""The list cache of GET /api/alarms and GET /api/verifications against a real hub: an operator sees their own verdict
in their next list at once, a change made through another Redis client (another hub would make it the same way) shows
well within the age bound, two users of different scopes never get each other's answers, and hits and misses are
counted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from sharpeye.alarms.store import AlarmStore
from sharpeye.api.permission import Role
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Verification
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

PW = "List-Cache-Password-1"
ALARMS = "/api/alarms?open_only=true&limit=50"
WAITING = "/api/verifications?limit=50"


def verifying_site() -> SiteConfig:
    site = load_file(demo_path(), installed())
    rules = [rule.model_copy(update={"verification": Verification(within_s=600), "correlate": False})
             if rule.id == "fence-intrusion" else rule for rule in site.rules]  # fmt: skip
    return site.model_copy(update={"rules": rules})


def hub(tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys,
        on: bool = True, **cache: float) -> Iterator[HubClient]:  # fmt: skip
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix,
                            **{f"list_cache_{name}": value for name, value in cache.items()})  # fmt: skip
    with app_client(settings, verifying_site(), connected=True) as c:
        for name, unit in (("duty", None), ("duty2", None), ("hedong", "hedong"), ("shanxia", "shanxia")):
            c.call(lambda name=name, unit=unit: c.users.add(name, PW, Role.operator, unit))  # type: ignore[misc]
        if on:
            wait_for(lambda: c.fastapi.state.list_cache.enabled, what="the list cache on the alarm channel")
        yield c


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    """Answers kept up to 30 s, dropped at once on any change (the defaults, but for the age)."""
    yield from hub(tmp_path, redis_server, mqtt_broker, keys, s=30)


@pytest.fixture
def settling(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    """Changes made elsewhere may take 30 s to show: only the caller's own writes show at once."""
    yield from hub(tmp_path, redis_server, mqtt_broker, keys, s=30, settle_s=30)


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def raise_fence(mqtt_broker: EmbeddedMosquitto, zone: str, seq: int = 1) -> None:
    pub = Publisher(mqtt_broker.url)
    try:
        pub.publish("sharpeye/fence/fence-reservoir/event",
                    {"seq": seq, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion",
                     "zone": zone})  # fmt: skip
    finally:
        pub.close()


def waiting_alarm(client: HubClient, zone: str) -> str:
    """The id of zone's alarm once it waits for a verdict (held, and said so on the alarm channel), asked of the hub
    itself (not through the cache)."""

    async def find() -> str | None:
        waiting = await client.services.verification.waiting()
        held = (w for w in waiting if w.alarm is not None and w.alarm.channel == zone and w.alarm.verdict == "pending")
        return next((w.alarm_id for w in held), None)

    return wait_for(lambda: client.call(find), what=f"zone {zone}'s alarm waiting for a verdict")


def outcomes(client: HubClient) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {(s.labels["route"], s.labels["outcome"]): s.value for f in families
            if f.name == "sharpeye_api_list_cache" for s in f.samples if s.name.endswith("_total")}  # fmt: skip


def ids(answer: Any) -> set[str]:
    items = answer["items"] if isinstance(answer, dict) else answer
    return {item["id"] if "id" in item else item["alarm_id"] for item in items}


def test_an_operator_sees_their_own_verdict_at_once(settling: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    client = settling
    duty, duty2 = login(client, "duty"), login(client, "duty2")
    raise_fence(mqtt_broker, "z1")
    alarm_id = waiting_alarm(client, "z1")
    first = client.get(WAITING, headers=duty2)
    assert first.status_code == 200 and ids(first.json()) == {alarm_id}
    again = client.get(WAITING, headers=duty)  # another operator of the same scope: the kept answer, byte for byte
    assert again.content == first.content and again.headers["content-type"] == "application/json"
    assert outcomes(client)[("/api/verifications", "hit")] == 1

    judged = client.post(f"/api/alarms/{alarm_id}/verdict", json={"verdict": "false_alarm", "reason": "小动物"},
                         headers=duty)  # fmt: skip
    assert judged.status_code == 200, judged.text
    # settle_s 30: duty2 is still shown the list from before duty's verdict (the cache is really in the way) ...
    assert ids(client.get(WAITING, headers=duty2).json()) == {alarm_id}
    # ... but duty, who gave the verdict, sees it at once, in both lists
    assert client.get(WAITING, headers=duty).json() == []
    listed = client.get(ALARMS, headers=duty).json()["items"]
    assert [a["verdict"] for a in listed if a["id"] == alarm_id] == ["false_alarm"]
    # and duty's fresh answer is the one kept from now on, for duty2 too
    assert client.get(WAITING, headers=duty2).json() == []


def test_a_change_made_elsewhere_shows_within_the_bound(
    client: HubClient, mqtt_broker: EmbeddedMosquitto, redis_server: EmbeddedRedis, keys: Keys
) -> None:
    duty = login(client, "duty")
    raise_fence(mqtt_broker, "z2")
    alarm_id = waiting_alarm(client, "z2")
    first = client.get(ALARMS, headers=duty)
    assert client.get(ALARMS, headers=duty).content == first.content
    assert outcomes(client)[("/api/alarms", "hit")] >= 1
    assert [a["state"] for a in first.json()["items"] if a["id"] == alarm_id] == ["active_unack"]

    async def acknowledge_elsewhere() -> None:  # another Redis client: as another hub node would
        other = aioredis.Redis.from_url(redis_server.url)
        try:
            await AlarmStore(other, keys).act(alarm_id, "acknowledge", "user:elsewhere", datetime.now(UTC), "seen")
        finally:
            await other.aclose()

    asyncio.run(acknowledge_elsewhere())

    def state() -> str | None:
        items = client.get(ALARMS, headers=duty).json()["items"]
        return next((a["state"] for a in items if a["id"] == alarm_id and a["state"] == "active_ack"), None)

    # answers are kept up to 30 s here: the alarm channel, not their age, makes this one stale
    wait_for(state, timeout=5, what="the acknowledgement made elsewhere in the cached list")


def test_users_of_different_scopes_never_share_an_answer(client: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    duty, hedong, shanxia = login(client, "duty"), login(client, "hedong"), login(client, "shanxia")
    raise_fence(mqtt_broker, "z3")  # the reservoir's fence is in 山下
    alarm_id = waiting_alarm(client, "z3")
    for _ in range(2):  # computed, then kept: every user gets their own scope's answer both times
        assert alarm_id in ids(client.get(ALARMS, headers=duty).json())
        assert ids(client.get(ALARMS, headers=hedong).json()) == set()
        assert client.get(WAITING, headers=hedong).json() == []
        assert alarm_id in ids(client.get(ALARMS, headers=shanxia).json())
        assert ids(client.get(WAITING, headers=shanxia).json()) == {alarm_id}
    counted = outcomes(client)
    assert counted[("/api/alarms", "miss")] == 3 and counted[("/api/alarms", "hit")] == 3
    assert counted[("/api/verifications", "miss")] == 2 and counted[("/api/verifications", "hit")] == 2


def test_refusals_and_other_queries_are_not_served_from_the_cache(client: HubClient) -> None:
    duty = login(client, "duty")
    assert client.get(ALARMS, headers=duty).status_code == 200
    assert client.get(ALARMS).status_code == 401
    assert client.get(ALARMS, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    client.call(lambda: client.users.add("fresh", PW, Role.operator, must_change_password=True))
    assert client.get(ALARMS, headers=login(client, "fresh")).status_code == 403  # a password to change first
    client.call(lambda: client.users.add("fixer", PW, Role.integrator))
    assert client.get(ALARMS, headers=login(client, "fixer")).status_code == 403  # no alarms:read
    assert client.get("/api/alarms?open_only=true&limit=0", headers=duty).status_code == 422
    assert client.get("/api/alarms?open_only=true&limit=0", headers=duty).status_code == 422
    counted = outcomes(client)
    assert counted[("/api/alarms", "bypass")] == 4 and counted[("/api/alarms", "miss")] == 3
    assert counted.get(("/api/alarms", "hit"), 0) == 0


def test_hits_are_timed_under_their_route(client: HubClient) -> None:
    duty = login(client, "duty")
    for _ in range(3):
        assert client.get(WAITING, headers=duty).status_code == 200
    families = text_string_to_metric_families(client.get("/metrics").text)
    timed = sum(s.value for f in families if f.name == "sharpeye_http_request_seconds" for s in f.samples
                if s.name.endswith("_count") and s.labels["route"] == "/api/verifications")  # fmt: skip
    assert timed == 3 and outcomes(client)[("/api/verifications", "hit")] == 2


def test_no_cache_with_list_cache_s_0(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    for client in hub(tmp_path, redis_server, mqtt_broker, keys, on=False, s=0):
        duty = login(client, "duty")
        for _ in range(3):
            assert client.get(ALARMS, headers=duty).status_code == 200
        assert not client.fastapi.state.list_cache.enabled and outcomes(client) == {}
