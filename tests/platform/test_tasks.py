"""A background loop stops when cancelled even if a call swallowed its cancellation, and stopping
a task that will not stop gives up after a bounded time instead of hanging the shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from billfold.platform import tasks


async def swallowing_call() -> None:
    """What Python 3.11's asyncio.wait_for does when the call it wraps finishes just as the task
    is cancelled: the cancellation is dropped and the call returns."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0.05)


async def test_a_loop_that_checks_stops_though_its_cancellation_was_swallowed() -> None:
    """A loop calling raise_if_cancelling each round ends at the next round after the cancel;
    one that does not would run for ever."""
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            tasks.raise_if_cancelling()
            rounds += 1
            await swallowing_call()

    running = asyncio.create_task(loop())
    await asyncio.sleep(0.12)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=2)
    assert done == {running} and running.cancelled()
    assert rounds >= 2


async def test_stopping_a_task_that_will_not_stop_gives_up_and_says_where(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A task that swallows every cancellation is asked STOP_TRIES times, STOP_WAIT_S apart,
    then left behind with a log of the await it is stuck in."""
    monkeypatch.setattr(tasks, "STOP_WAIT_S", 0.1)

    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            await swallowing_call()

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0.01)  # under way: a task cancelled before it starts just ends
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="billfold.platform.tasks"):
        await tasks.stop(task)
    assert time.monotonic() - started < 2
    assert not task.done()
    assert "stubborn would not stop" in caplog.text and "swallowing_call" in caplog.text
    released.set()  # the test lets it end, as a real one would not
    await asyncio.wait_for(task, 2)


async def test_stopping_a_task_that_stops_returns_at_once() -> None:
    task = asyncio.create_task(asyncio.sleep(60))
    started = time.monotonic()
    await tasks.stop(task)
    assert task.cancelled() and time.monotonic() - started < 1
