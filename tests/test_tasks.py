"""``cancel_and_wait`` stops a task that swallows a cancellation (as Python 3.11's ``asyncio.wait_for`` can when
its awaitable finishes in the same loop turn), where one ``cancel()`` and an ``await`` would wait for ever."""

from __future__ import annotations

import asyncio

import pytest

from sharpeye.tasks import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = 0
    stepping = asyncio.Event()

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                stepping.set()
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed == 2:
                    raise
                swallowed += 1  # a library that goes on after a cancellation landed

    task = asyncio.create_task(stubborn(), name="stubborn")
    await stepping.wait()
    task.cancel()  # the old way: one cancel, then wait for the end
    done, _ = await asyncio.wait({task}, timeout=0.5)
    assert task not in done and swallowed == 1  # still running: awaiting it would never return

    await asyncio.wait_for(cancel_and_wait([task], again_s=0.05), 10)
    assert task.cancelled() and swallowed == 2


async def test_failed_tasks_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("broken")

    async def runs() -> None:
        await asyncio.sleep(3600)

    failed = asyncio.create_task(fails(), name="fails")
    running = asyncio.create_task(runs(), name="runs")
    await asyncio.sleep(0)
    await cancel_and_wait([failed, running])
    assert running.cancelled()
    assert "task fails had failed: ValueError('broken')" in caplog.text
