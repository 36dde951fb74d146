"""Stopping background tasks for sure.

Python 3.11's ``asyncio.wait_for`` (and the client libraries built on it) can swallow a cancellation that lands in
the loop turn its awaitable finishes in; a task looping around such a call then runs on, and a ``cancel()``
followed by ``await task`` waits for ever (a hub that never finishes stopping). ``cancel_and_wait`` cancels again
until every task has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, again_s: float = 0.2) -> None:
    """Cancel ``tasks`` and return once each has ended, cancelling those still running every ``again_s``
    seconds. A task that ended with an exception is logged (its exception is not raised here). A cancellation of
    the caller itself is not swallowed."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("task %s had failed: %r", task.get_name(), task.exception())
