"""Stopping asyncio tasks for sure (the SDK's, and the services' through ``flagstream.services.runtime``).

One ``cancel()`` is not enough on Python 3.11: ``asyncio.wait_for`` whose awaitable completes in the same moment as
its task is cancelled returns the result and drops the cancellation (CPython gh-86296, fixed in 3.12). nats-py's
requests, flushes and publishes under flow control go through it, so a loop stopped only by cancelling it
(``while True``) can run on, and awaiting it after one cancel can wait forever: an application's
``client.close()`` would hang. Hence: cancel again until the task ends, within a bound; and wait with
``asyncio.timeout`` (which does not drop a cancellation), never ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("flagstream.client")

#: Seconds a client's ``close()`` gives each of its steps (its tasks to end once cancelled, a last report or flush,
#: closing the connection): ``close()`` always returns, whatever NATS does.
CLOSE_WITHIN = 2.0


async def cancel_and_wait(*tasks: asyncio.Task[Any], within: float | None = None, again: float = 0.5) -> bool:
    """Cancel ``tasks`` and wait until they have ended, cancelling again every ``again`` seconds those that run on;
    give up after ``within`` seconds (None: never). Returns whether they all ended.

    The next suspension of a task that lost a cancellation gets the new one. If the caller is cancelled meanwhile,
    the tasks are still cancelled (once more) and the caller's cancellation goes on (it is never swallowed)."""
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    pending = {task for task in tasks if not task.done()}
    try:
        while pending:
            for task in pending:
                task.cancel()
            wait = again if deadline is None else min(again, deadline - loop.time())
            if wait <= 0:
                return False
            _, pending = await asyncio.wait(pending, timeout=wait)
    finally:
        for task in pending:
            task.cancel()
    for task in tasks:  # retrieved, so that asyncio logs no "exception was never retrieved"
        if task.done() and not task.cancelled():
            task.exception()
    return True


async def end_on_close(what: str, *tasks: asyncio.Task[Any]) -> None:
    """A client's ``close()``: cancel ``tasks`` and wait for them within ``CLOSE_WITHIN``; warn, naming ``what``,
    if one still runs then."""
    if not await cancel_and_wait(*tasks, within=CLOSE_WITHIN, again=CLOSE_WITHIN / 10):
        log.warning("flagstream: %s still runs %gs after it was cancelled", what, CLOSE_WITHIN)
