"""What the admin's long-lived event streams (the UI's live changes, OFREP's events) share: they end as soon as
the server starts to shut down.

uvicorn stops by waiting for every open connection to finish. A browser with the UI open holds a change stream;
without this, Ctrl-C on ``flagstream up`` waited for it (up to its 25 s lifetime) and then gave up with a
traceback. ``StreamingServer.shutdown`` sets the app's ``closing`` event first; each stream waits on its next
item *or* that event (``next_or_closing``) and ends when it is set. Its client reconnects (to another replica,
or after the restart) and resumes after the last event id it saw.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from typing import Any, TypeVar

import uvicorn
from starlette.requests import Request

T = TypeVar("T")


class Closing:
    """The marker ``next_or_closing`` returns when the server is shutting down."""


CLOSING = Closing()


def closing_of(request: Request) -> asyncio.Event:
    return request.app.state.closing  # type: ignore[no-any-return]


async def next_or_closing(next_item: Awaitable[T], closing: asyncio.Event, timeout: float) -> T | Closing:  # noqa: ASYNC109
    """``next_item``'s result, or ``CLOSING`` if the server starts to shut down first; ``TimeoutError`` after
    ``timeout`` seconds (``next_item`` is then cancelled)."""
    item = asyncio.ensure_future(next_item)
    stop = asyncio.ensure_future(closing.wait())
    try:
        done, _ = await asyncio.wait({item, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (item, stop):
            task.cancel()
    if item in done:
        return item.result()
    if stop in done:
        return CLOSING
    raise TimeoutError


class StreamingServer(uvicorn.Server):
    """uvicorn that tells the app's event streams to end before it waits for the open connections."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app: Any = self.config.app
        closing = getattr(getattr(app, "state", None), "closing", None)
        if closing is not None:
            closing.set()
        await super().shutdown(sockets)
