"""Alarm engine throughput against a private Redis, beside raw Redis round trips measured in the same run.

    python bench/alarm_engine.py [--fingerprints 10000] [--readings 100000] [--batch 500]

(a) readings/s through the rules with N fingerprints, each with an open alarm, and 1% state changes;
(b) alarm transitions/s when every reading changes state (raise or clear, each notified);
baseline: pipelined raw Redis commands (HINCRBY) at the same batch size, and single round trips (PING).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.location import Location
from sharpeye.ingest.reading import Reading

from sharpeye.clock import SystemClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis


class FlatLocator:
    def locate(self, device_id: str, channel: str | None) -> Location:
        return Location(org_unit="g1", place=device_id)

    def in_unit(self, unit_id: str, device_id: str, channel: str | None) -> bool:
        return True


SITE = SiteConfig.model_validate(
    {
        "site": {"id": "bench", "name": "bench"},
        "org": {"id": "g1", "name": "g1", "level": "grid"},
        "alarms": {"correlation_window_s": 0},
        "rules": [
            {
                "id": "r", "name": "bench rule", "match": {"kind": "k.r"},
                "condition": {"type": "state", "active": ["alarm"], "clear": ["restore"]},
                "severity": "major", "category": "c", "flapping": {"transitions": 1000000, "window_s": 1},
            }
        ],
    }
)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fingerprints", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(workdir=Path(tmp), appendonly=True)
        server.start()
        try:
            await run(server.url, args.fingerprints, args.readings, args.batch)
        finally:
            server.stop()


async def run(url: str, n_fp: int, n_readings: int, batch: int) -> None:
    client = aioredis.Redis.from_url(url)
    keys = Keys("bench")
    engine = AlarmEngine(SITE, AlarmStore(client, keys), FlatLocator(), SystemClock())
    seq = [0] * n_fp
    state = [True] * n_fp

    def reading(i: int, active: bool) -> Reading:
        seq[i] += 1
        return Reading(device_id=f"d{i}", kind="k.r", value="alarm" if active else "restore", seq=seq[i],
                       channel="z", ts=datetime.now(UTC))  # fmt: skip

    async def feed(readings: list[Reading]) -> float:
        started = time.perf_counter()
        for start in range(0, len(readings), batch):
            await engine.process(readings[start : start + batch])
        return time.perf_counter() - started

    # open an alarm on every fingerprint
    await feed([reading(i, True) for i in range(n_fp)])

    # baseline 1: raw pipelined Redis commands at the same batch size
    started = time.perf_counter()
    for start in range(0, n_readings, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + batch, n_readings)):
            pipe.hincrby(f"bench:raw:{i % n_fp}", "count", 1)
        await pipe.execute()
    raw_rate = n_readings / (time.perf_counter() - started)
    # baseline 2: single round trips
    started = time.perf_counter()
    for _ in range(2000):
        await client.ping()
    rtt_rate = 2000 / (time.perf_counter() - started)

    # (a) readings through the rules, 1% state changes
    rng = random.Random(1)
    mixed = []
    for _ in range(n_readings):
        i = rng.randrange(n_fp)
        if rng.random() < 0.01:
            state[i] = not state[i]
        mixed.append(reading(i, state[i]))
    mixed_rate = n_readings / await feed(mixed)

    # (b) pure state changes: every reading raises or clears (and is notified)
    changes = []
    for k in range(n_readings // 5):
        i = k % n_fp
        state[i] = not state[i]
        changes.append(reading(i, state[i]))
    change_rate = len(changes) / await feed(changes)

    print(f"fingerprints {n_fp}, readings {n_readings}, batch {batch}")
    print(f"baseline raw Redis, pipelined HINCRBY:   {raw_rate:10.0f} cmd/s")
    print(f"baseline raw Redis, single round trips:  {rtt_rate:10.0f} cmd/s")
    print(f"(a) engine, readings with 1% changes:    {mixed_rate:10.0f} readings/s  "
          f"= {mixed_rate / raw_rate:.2f} x raw pipelined")  # fmt: skip
    print(f"(b) engine, pure state changes:          {change_rate:10.0f} transitions/s "
          f"= {change_rate / raw_rate:.2f} x raw pipelined")  # fmt: skip
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
