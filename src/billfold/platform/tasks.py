"""Stopping background tasks for sure.

A task that runs until cancelled can miss its cancellation: Python 3.11's `asyncio.wait_for`
drops it when the call it wraps finishes in the same turn of the loop (fixed in 3.12), and
redis-py wraps every send in one when a socket timeout is set; nats-py's drain catches it. The
task then goes on as if nothing was asked, and whoever awaits it waits for ever. So a loop that
runs until cancelled checks, each round, whether it was asked to stop (`raise_if_cancelling`),
and whoever stops a task waits a bounded time (`stop`).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0
STOP_TRIES = 3


def cancelling() -> bool:
    """Whether the current task was asked to stop (even if what it awaited swallowed it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def raise_if_cancelling() -> None:
    """Raise CancelledError if the current task was asked to stop, even if whatever it was
    awaiting then swallowed the request."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end, STOP_WAIT_S at a time, asking again up to
    STOP_TRIES times; then leave it, logged with where it was stuck: a shutdown never hangs on
    one task. Its exception, if any, is logged, not raised."""
    for _ in range(STOP_TRIES):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.error("task %s had failed: %r", task.get_name(), task.exception())
            return
        log.warning("task %s did not stop within %.0fs; asking again", task.get_name(), STOP_WAIT_S)
    log.error("task %s would not stop; left behind, stuck at %s", task.get_name(), where(task))


def where(task: asyncio.Task[None]) -> str:
    """The chain of awaits a task is suspended in (Task.get_stack gives only its outer frame)."""
    frames = []
    awaited: object = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            frames.append(repr(awaited)[:100])
            break
        frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return " <- ".join(reversed(frames))
