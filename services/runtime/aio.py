"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any


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
