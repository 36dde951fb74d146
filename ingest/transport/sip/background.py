"""``Background``: the tasks a SIP service runs beside its requests, stopped for sure.

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation when its awaitable finishes in the same
loop turn, so one ``cancel()`` does not guarantee that a task ends. ``stop`` cancels until every task
is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self, stats: Counter[str] | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats = stats if stats is not None else Counter()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._stats["task_errors"] += 1
            log.warning("%s failed: %s", task.get_name(), task.exception())

    async def stop(self) -> None:
        """Cancel every task, again if a cancellation was swallowed, until all are done."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.5)
