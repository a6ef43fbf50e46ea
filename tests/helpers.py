"""Helpers shared by the tests: waiting on a condition (never on a sleep), tokens, a first flag on the stream."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


async def eventually(predicate: Callable[[], object], within: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate()`` until it is truthy; fail after ``within`` seconds (generous: CI machines are noisy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        await asyncio.sleep(0.005)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """``eventually`` for a check that must await (an HTTP call): repeat it in a task, watch its outcome."""
    done = False

    async def poll() -> None:
        nonlocal done
        while not await check():
            pass
        done = True

    task = asyncio.create_task(poll())
    try:
        await eventually(lambda: done or task.done(), what=what)
        await task
    finally:
        task.cancel()


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` served by a real uvicorn on a free loopback port in the test's event loop: its base URL."""
    import uvicorn

    from flagstream.services.runtime.listen import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started or task.done(), within=30, what="admin API started")
    if task.done():
        task.result()  # raises what made the start-up fail
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


#: The operator token the test fixtures start the admin service with.
ADMIN_TOKEN = "fs_test_operator_token_0123456789"


def auth_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    """Headers for an authenticated admin API call (every HTTP call of a test should send them)."""
    return {"Authorization": f"Bearer {token}"}


async def publish_flag(url: str, key: str, *, on: bool = True, **options: Any) -> None:
    """The event stream (created if missing) and a ``flag.created`` for ``key`` in default/production, written
    straight to JetStream over a connection made with ``options`` (user, password, tls)."""
    import nats

    from flagstream.events import FlagCreated, encode_event, subject
    from flagstream.events.model import Flag
    from flagstream.services.runtime.stream import ensure_stream

    nc = await nats.connect(url, **options)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        event = FlagCreated(
            project="default", environment="production", actor="test", at=datetime.now(UTC), flag=Flag(key=key, on=on)
        )
        await js.publish(subject("default", "production", "flag", key), encode_event(event))
    finally:
        await nc.close()


def db_position(db: Path) -> int:
    """The projector's applied position, read-only from outside (0 while the file or schema does not exist)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT last_seq FROM position WHERE id = 1").fetchone()
            return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0
