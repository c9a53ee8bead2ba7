"""Many callers' lookups sent as one batch: the ledger's group commit, applied to reads.

Each round trip to PostgreSQL or Redis costs the calling process far more than the work it
carries (a system call each way, the driver's own bookkeeping). A `Coalescer` lets a request
await its own lookup while the lookups of every request that asked meanwhile go out together:
the first caller's batch leaves on the next turn of the event loop (so calls made in the same
turn join it), and calls that arrive while `concurrency` batches are out wait for the next one.
At light load a batch holds one call and adds no wait; under load, batches grow with it.

The batch function answers each item in order, with a value or an exception for that item
alone; an exception it raises is every item's. A caller that stops waiting (a timeout) leaves
its item in the batch, whose answer is then dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 64,
        concurrency: int = 2,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._out = 0
        # The loop holds tasks weakly: a drain task is kept here until it ends.
        self._draining: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._out < self._concurrency:
            self._out += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        return await future

    async def _drain(self) -> None:
        """Send batches while calls are waiting; this task holds one of the slots."""
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._send(batch)
        finally:
            self._out -= 1

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._run([item for item, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(answers)} answers")
        except BaseException as error:  # every caller learns it; the next batch tries afresh
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(error, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
