"""The asyncio helpers the services share: stopping a background task for sure, and where tasks are waiting."""

from __future__ import annotations

import asyncio

from flagstream.services.runtime import cancel_and_wait, task_dump


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
