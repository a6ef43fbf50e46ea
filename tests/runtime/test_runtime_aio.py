"""The asyncio helpers the services share: background runners stopped for sure, and where tasks are waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from flagstream.services.runtime import cancel_and_wait, end_within, in_background, run_passes, task_dump
from tests.helpers import eventually


async def test_a_task_that_lost_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    """On Python 3.11 ``asyncio.wait_for`` drops a cancellation that comes as its awaitable completes (nats-py's
    requests use it): a ``while True`` loop then runs on after one ``cancel()``. Here the drop is made explicit."""
    waiting = asyncio.Event()

    async def loop_forever() -> None:
        try:
            waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # what asyncio.wait_for does on 3.11 when the awaited answer arrived in the same moment
        while True:  # a loop stopped only by cancelling it
            await asyncio.Event().wait()

    task = asyncio.create_task(loop_forever())
    await waiting.wait()
    assert await cancel_and_wait(task, within=30)
    assert task.cancelled()


async def test_cancel_and_wait_gives_up_after_within_seconds_on_a_task_that_will_not_end() -> None:
    started, may_end = asyncio.Event(), asyncio.Event()

    async def refuses() -> None:
        started.set()
        while not may_end.is_set():
            try:
                await may_end.wait()
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(refuses())
    await started.wait()
    assert not await cancel_and_wait(task, within=0.3, again=0.05)
    assert not task.done()
    assert task.cancelling() >= 2, "cancelled again while it ran on"
    may_end.set()
    await task


async def test_the_task_dump_shows_each_task_and_the_await_it_is_suspended_in() -> None:
    async def inner(event: asyncio.Event) -> None:
        await event.wait()

    async def outer(event: asyncio.Event) -> None:
        await inner(event)

    event = asyncio.Event()
    task = asyncio.create_task(outer(event), name="the-waiting-one")
    await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait
    dump = task_dump()
    section = dump.split("Task 'the-waiting-one'", 1)[1].split("\nTask ", 1)[0]
    assert "outer (pending)" in section
    for frame in ("in outer", "in inner", "in wait"):  # down to Event.wait
        assert frame in section
    event.set()
    await task


class _Runner:
    """A background runner as the services' (``run_passes``), whose pass is ``work``."""

    def __init__(self, work: Callable[[], Awaitable[None]]) -> None:
        self.wake = asyncio.Event()
        self.work = work
        self.passes = 0
        self.finished = False  # run returned (stopped, not cancelled)

    async def pass_once(self) -> float:
        self.passes += 1
        await self.work()
        return 3600.0

    async def run(self, stop: asyncio.Event) -> None:
        await run_passes("test", self.pass_once, stop=stop, wake=self.wake, poll=3600, log=logging.getLogger("test"))
        self.finished = True


async def test_in_background_stops_a_waiting_runner_at_once_at_the_end_of_the_block() -> None:
    async def nothing() -> None:
        return None

    runner = _Runner(nothing)
    async with in_background(runner, "test-runner", grace=30) as running:
        assert running is runner
        await eventually(lambda: runner.passes == 1, what="the first pass")
        assert any(t.get_name() == "test-runner" for t in asyncio.all_tasks())
    assert runner.finished  # woken from its hour-long wait and stopped, not cancelled
    assert not any(t.get_name() == "test-runner" for t in asyncio.all_tasks())


async def test_in_background_cancels_a_pass_that_runs_over_even_if_it_loses_the_cancellation() -> None:
    async def stuck() -> None:  # a pass waiting on NATS that misses one cancellation (Python 3.11's wait_for)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        await asyncio.Event().wait()

    runner = _Runner(stuck)
    async with in_background(runner, "test-runner", grace=0.5):
        await eventually(lambda: runner.passes == 1, what="the pass under way")
    assert not runner.finished
    assert not any(t.get_name() == "test-runner" for t in asyncio.all_tasks()), "the task has ended"


async def test_end_within_ends_a_task_that_does_not_stop_and_loses_its_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the webhooks' lifespan, the history fold and ``flagstream up`` stop their tasks with: ``wait_for(task,
    grace)`` instead waited without a limit, once it timed out, for a task that lost the cancellation (3.11)."""
    started = asyncio.Event()

    async def deaf() -> None:  # told to stop, it does not; cancelled, it drops the first cancellation
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        await asyncio.Event().wait()

    task = asyncio.create_task(deaf())
    await started.wait()
    async with asyncio.timeout(30):
        await end_within(task, "the deaf one", grace=0.2, log=logging.getLogger("test"))
    assert task.cancelled()
    assert "the deaf one: did not stop within 0.2s; cancelled" in caplog.text


async def test_end_within_logs_what_a_task_that_ended_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("the stream is gone")

    task = asyncio.create_task(fails())
    await end_within(task, "the failing one", grace=30, log=logging.getLogger("test"))
    assert "the failing one: ended with RuntimeError('the stream is gone')" in caplog.text
