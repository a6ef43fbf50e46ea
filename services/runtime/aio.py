"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar


async def first_done(*aws: Awaitable[Any]) -> None:
    """Wait until the first of ``aws`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def run_passes(
    what: str,
    pass_once: Callable[[], Awaitable[float | None]],
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    poll: float,
    log: logging.Logger,
) -> None:
    """A background runner's loop: ``pass_once()`` until ``stop`` is set, then wait the seconds it returned (or
    ``poll`` when it returns None or fails) or until ``wake`` is set. A failing pass (NATS away, a corrupt
    message...) is logged as a warning naming ``what``, and tried again later."""
    while not stop.is_set():
        delay = poll
        try:
            returned = await pass_once()
            if returned is not None:
                delay = returned
        except Exception as exc:
            log.warning("%s: %s: %s", what, type(exc).__name__, exc)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_done(stop.wait(), wake.wait()), max(0.01, delay))


class BackgroundRunner(Protocol):
    """What ``in_background`` runs: ``run(stop)`` loops until ``stop`` is set; ``wake`` cuts its wait short."""

    wake: asyncio.Event

    def run(self, stop: asyncio.Event) -> Awaitable[None]: ...


R = TypeVar("R", bound=BackgroundRunner)


@contextlib.asynccontextmanager
async def in_background(runner: R, name: str) -> AsyncIterator[R]:
    """``runner.run(stop)`` as a task named ``name`` for the duration of the block.

    It never holds up the app's shutdown: a pass in flight gets 2 s, then is cancelled (a claim or lease it held is
    taken over by another replica once it runs out), and the cancellation gets 2 s more."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop), name=name)
    try:
        yield runner
    finally:
        stop.set()
        runner.wake.set()
        _, pending = await asyncio.wait({task}, timeout=2)
        if pending:
            task.cancel()
            await asyncio.wait({task}, timeout=2)
