"""Leases: the pure plan (fair by weight, sticky, deterministic) and the Redis side (claim, renew, release,
takeover after a TTL, fencing tokens that only grow)."""

from __future__ import annotations

import asyncio
import random

import redis.asyncio as aioredis
from sharpeye.ingest.ownership import Ownership, abandon_pending, plan

from sharpeye.keys import Keys


def loads(assigned: dict[str, str], units: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for unit, node in assigned.items():
        out[node] = out.get(node, 0.0) + units[unit]
    return out


def test_plan_splits_by_weight_and_is_deterministic() -> None:
    units = {f"cam-{i}": 10.0 for i in range(6)} | {f"od-{i}": 1.0 for i in range(30)}
    nodes = {"a": 1.0, "b": 1.0, "c": 2.0}
    first = plan(units, nodes, {})
    assert first == plan(dict(reversed(list(units.items()))), dict(reversed(list(nodes.items()))), {})
    load = loads(first, units)
    total = sum(units.values())
    for node, weight in nodes.items():
        share = total * weight / sum(nodes.values())
        assert abs(load[node] - share) <= 10, (node, load[node], share)


def test_plan_keeps_units_where_they_are_when_fair() -> None:
    units = {f"u{i}": 1.0 for i in range(10)}
    assert plan(units, {"a": 1.0, "b": 1.0}, {f"u{i}": "a" if i % 2 else "b" for i in range(10)}) == {
        f"u{i}": "a" if i % 2 else "b" for i in range(10)
    }


def test_a_node_joining_takes_its_share_and_moves_nothing_else() -> None:
    rng = random.Random(7)
    units = {f"u{i}": float(rng.choice([1, 1, 1, 10])) for i in range(200)}
    two = plan(units, {"a": 1.0, "b": 1.0}, {})
    three = plan(units, {"a": 1.0, "b": 1.0, "c": 1.0}, two)
    moved = [u for u in units if three[u] != two[u]]
    assert all(three[u] == "c" for u in moved)  # units only move to the newcomer
    load = loads(three, units)
    share = sum(units.values()) / 3
    assert all(abs(v - share) <= 10 for v in load.values()), load
    assert plan(units, {"a": 1.0, "b": 1.0, "c": 1.0}, three) == three  # stable once fair


def test_a_dead_nodes_units_go_to_the_living() -> None:
    units = {f"u{i}": 1.0 for i in range(9)}
    three = plan(units, {"a": 1.0, "b": 1.0, "c": 1.0}, {})
    two = plan(units, {"a": 1.0, "b": 1.0}, three)
    assert set(two.values()) == {"a", "b"}
    assert all(two[u] == three[u] for u in units if three[u] != "c")
    assert sorted(loads(two, units).values()) in ([4.0, 5.0], [5.0, 4.0])


async def test_leases_claim_renew_take_over_and_fence(redis_client: aioredis.Redis, keys: Keys) -> None:
    units = {f"cam-{i}": 1.0 for i in range(6)}
    a = Ownership(redis_client, keys, "a", lambda: units, ttl_s=0.6, period_s=0.1)
    b = Ownership(redis_client, keys, "b", lambda: units, ttl_s=0.6, period_s=0.1)
    change = await a.round()
    assert sorted(change.gained) == sorted(units) and a.owned.keys() == units.keys()
    tokens_a = dict(a.owned)
    await b.round()  # b joins: the plan gives it half, a releases them on its next round
    await a.round()
    await b.round()
    assert len(a.owned) == 3 and len(b.owned) == 3 and not a.owned.keys() & b.owned.keys()
    assert all(a.owned[u] == tokens_a[u] for u in a.owned)  # kept units keep their lease and token
    assert sorted(n.id for n in await a.nodes()) == ["a", "b"]
    # b stops renewing (dies): after the TTL a takes everything, with new tokens
    await asyncio.sleep(0.7)
    await a.round()
    assert a.owned.keys() == units.keys()
    for unit in b.owned:
        assert int(a.owned[unit].split()[0]) > int(b.owned[unit].split()[0])
        assert await redis_client.get(keys.device_lease(unit)) != b.owned[unit].encode()  # b's fence is stale
    assert [n.id for n in await a.nodes()] == ["a"]
    # b wakes: its claim fails everywhere, it loses what it thought it held
    lost = await b.round()
    assert sorted(lost.lost) == sorted(b_units := lost.lost) and len(b_units) == 3 and not b.owned
    await a.release_all()
    assert await redis_client.get(keys.device_lease("cam-0")) is None


def test_a_role_stays_with_its_owner_when_a_node_joins() -> None:
    units = {"role:mqtt-reader": 1.5} | {f"cam-{i}": 10.0 for i in range(4)}
    one = plan(units, {"a": 1.0}, {})
    two = plan(units, {"a": 1.0, "b": 1.0}, one)
    assert two["role:mqtt-reader"] == "a"
    assert sorted(loads(two, units).values()) == [20.0, 21.5]


async def test_a_dead_nodes_pending_entries_are_claimable_at_once(redis_client: aioredis.Redis, keys: Keys) -> None:
    stream = keys.alarm_events
    for i in range(3):
        await redis_client.xadd(stream, {"n": str(i)})
    await redis_client.xgroup_create(stream, "governance", id="0")
    read = await redis_client.xreadgroup("governance", "dead", {stream: ">"}, count=2)
    assert len(read[0][1]) == 2
    _, before, *_ = await redis_client.xautoclaim(stream, "governance", "alive", 60_000, "0-0")
    assert before == []  # held by "dead" and not idle for the group's 60 s yet
    assert await abandon_pending(redis_client, [stream, keys.case_events], "dead") == 2
    _, after, *_ = await redis_client.xautoclaim(stream, "governance", "alive", 60_000, "0-0")
    assert [fields[b"n"] for _, fields in after] == [b"0", b"1"]  # taken at once, still pending until acked
    assert (await redis_client.xpending(stream, "governance"))["pending"] == 2
