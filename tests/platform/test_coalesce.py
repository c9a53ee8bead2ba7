"""Lookups of concurrent callers go out together; each caller gets its own answer or error."""

from __future__ import annotations

import asyncio

import pytest

from billfold.platform.coalesce import Coalescer


class Recorder:
    """A batch function that remembers its batches; `gate` holds a batch until set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.out = 0
        self.most_out = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        self.out += 1
        self.most_out = max(self.most_out, self.out)
        try:
            await self.gate.wait()
            if 13 in items and len(items) == 1:
                raise OSError("the server went away")
            return [ValueError(f"no {i}") if i < 0 else i * 10 for i in items]
        finally:
            self.out -= 1


async def test_callers_in_the_same_turn_share_a_batch_and_get_their_own_answers() -> None:
    run = Recorder()
    coalesce = Coalescer(run)
    answers = await asyncio.gather(*(coalesce(i) for i in range(1, 41)))
    assert answers == [i * 10 for i in range(1, 41)]
    assert run.batches == [list(range(1, 41))]


async def test_callers_arriving_while_batches_are_out_wait_for_the_next_one() -> None:
    """At most `concurrency` batches at once; the callers that came meanwhile go together."""
    run = Recorder()
    run.gate.clear()
    coalesce = Coalescer(run, concurrency=2, max_batch=5)
    first = [asyncio.create_task(coalesce(i)) for i in range(1, 4)]
    await asyncio.sleep(0)
    second = [asyncio.create_task(coalesce(i)) for i in range(4, 16)]
    await asyncio.sleep(0.01)
    assert run.out == 2  # the first batch, and the first five of the rest
    run.gate.set()
    assert await asyncio.gather(*first, *second) == [i * 10 for i in range(1, 16)]
    assert run.most_out == 2
    assert max(len(b) for b in run.batches) == 5
    assert len(run.batches) < 15
    assert sorted(i for b in run.batches for i in b) == list(range(1, 16))


async def test_an_item_error_is_its_callers_and_a_batch_error_is_everyones() -> None:
    run = Recorder()
    coalesce = Coalescer(run)
    answers = await asyncio.gather(coalesce(2), coalesce(-1), coalesce(3), return_exceptions=True)
    assert answers[0] == 20 and answers[2] == 30
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "no -1"
    with pytest.raises(OSError, match="went away"):
        await coalesce(13)
    assert await coalesce(4) == 40  # the next batch works


async def test_a_caller_that_stops_waiting_leaves_the_others_their_answers() -> None:
    run = Recorder()
    run.gate.clear()
    coalesce = Coalescer(run)
    impatient = asyncio.create_task(coalesce(1))
    patient = asyncio.create_task(coalesce(2))
    await asyncio.sleep(0.01)
    impatient.cancel()
    run.gate.set()
    assert await patient == 20
    with pytest.raises(asyncio.CancelledError):
        await impatient
