"""The hub's supervisor of its embedded services, on real child processes: a dead one is started again and counted; one
that keeps dying is retried with growing pauses, and health says why meanwhile."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed

from sharpeye.node.embedded import EmbeddedRedis, ManagedProcess
from sharpeye.node.hub import Hub
from sharpeye.settings import Settings


@dataclass(kw_only=True)
class Broken(ManagedProcess):
    """A service whose process exits at once, every time."""

    name: str = "redis"
    attempts: int = 0

    def command(self) -> list[str]:
        self.attempts += 1
        return [sys.executable, "-c", "raise SystemExit(1)"]


def hub(tmp_path: Path) -> Hub:
    return Hub(Settings(data_dir=tmp_path / "data"), load_file(demo_path(), installed()))


async def test_a_killed_redis_is_restarted_on_its_port_and_counted(tmp_path: Path) -> None:
    node = hub(tmp_path)
    server = node.embedded_redis = EmbeddedRedis(workdir=tmp_path / "redis")
    await asyncio.to_thread(server.start)
    port = server.port
    task = asyncio.create_task(node._supervise_embedded(interval_s=0.05))
    try:
        assert server.proc is not None
        server.proc.kill()
        for _ in range(200):
            # degraded until the hub's own client is answered again, not only until the process is back
            if node.embedded_restarts["redis"] == 1 and server.running and "redis" not in node._embedded_down:
                break
            await asyncio.sleep(0.05)
        assert node.embedded_restarts["redis"] == 1
        assert server.running and server.port == port
        assert node.metrics.embedded_restarts.labels("redis")._value.get() == 1
        assert "redis" not in node._embedded_down
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        await asyncio.to_thread(server.stop)


async def test_a_service_that_keeps_dying_is_retried_with_growing_pauses(tmp_path: Path) -> None:
    node = hub(tmp_path)
    broken = Broken(workdir=tmp_path / "broken")
    node.embedded_redis = broken  # type: ignore[assignment]
    task = asyncio.create_task(node._supervise_embedded(interval_s=0.05, max_backoff_s=10))
    try:
        await asyncio.sleep(3.0)  # the measured span: attempts within it, not an ordering
        # without backoff, one attempt per 0.05 s check (about 60); with pauses of 0.5, 1, 2 s: at most 4
        assert 1 <= broken.attempts <= 4, broken.attempts
        assert node.embedded_restarts["redis"] == 0
        assert node._embedded_down["redis"].startswith(("restart failed: redis exited with 1", "exited"))
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
