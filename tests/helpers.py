"""Helpers shared by the tests: waiting on a condition (never on a sleep), tokens, a first flag on the stream,
the admin API served in the test's loop (with or without a projector for history), ``flagstream`` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

# The last line of what ``kill -USR1`` makes a ``flagstream`` process write (``runtime.aio.dump_on_signal``).
from flagstream.services.runtime.aio import DUMP_END

if TYPE_CHECKING:
    from flagstream.services.projector import Projector

#: The ``flagstream`` command of the venv running the tests.
FLAGSTREAM = str(Path(sys.executable).with_name("flagstream"))


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
        while True:
            if await check():
                break
            await asyncio.sleep(0.01)  # a breath between checks: a busy loop would take a core of a 2-core CI
        done = True

    task = asyncio.create_task(poll())
    try:
        await eventually(lambda: done or task.done(), what=what)
        await task
    finally:
        task.cancel()


@contextlib.asynccontextmanager
async def serving(app: Any, port: int = 0) -> AsyncIterator[str]:
    """``app`` served by a real uvicorn on a loopback port (``0``: a free one) in the test's event loop: its base
    URL."""
    import uvicorn

    from flagstream.services.runtime.listen import listening_socket

    sock = listening_socket("127.0.0.1", port)
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


# -- the admin API with history: a projector folding the log into a read model beside it -------------------------


@contextlib.asynccontextmanager
async def projecting(nats_url: str, db: Path, **options: Any) -> AsyncIterator[Projector]:
    """A projector folding the stream into ``db``, running in the test's event loop until the block ends."""
    from flagstream.services.projector import Projector

    projector = Projector(nats_url=nats_url, db_path=db, **{"fetch_timeout": 0.2, **options})
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class WithHistory:
    """The admin app (with a read model), an HTTP client of it signed in as the operator, and its projector."""

    app: Any
    http: httpx.AsyncClient
    projector: Projector
    db: Path


@contextlib.asynccontextmanager
async def admin_with_history(
    nats_url: str, tmp_path: Path, *, headers: dict[str, str] | None = None, http_timeout: float = 60, **state: Any
) -> AsyncIterator[WithHistory]:
    """The admin API in-process (ASGI) over ``nats_url`` with a projector and its read model in ``tmp_path``:
    every route answers, history included. ``state`` sets ``app.state`` attributes (e.g. ``schedule_poll``)."""
    from flagstream.services.admin.app import create_app

    db = tmp_path / "readmodel.sqlite"
    app = create_app(nats_url=nats_url, read_model=db, operator_token=ADMIN_TOKEN)
    for name, value in state.items():
        setattr(app.state, name, value)
    async with projecting(nats_url, db) as projector, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = auth_headers() if headers is None else headers
        async with httpx.AsyncClient(
            transport=transport, base_url="http://admin", headers=headers, timeout=http_timeout
        ) as http:
            yield WithHistory(app, http, projector, db)


@contextlib.asynccontextmanager
async def served_with_history(nats_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Projector]]:
    """As ``admin_with_history``, served over real HTTP (uvicorn on a free port): its URL and the projector."""
    from flagstream.services.admin.app import create_app

    db = tmp_path / "readmodel.sqlite"
    app = create_app(nats_url=nats_url, read_model=db, operator_token=ADMIN_TOKEN)
    async with projecting(nats_url, db) as projector, serving(app) as url:
        yield url, projector


# -- flagstream processes ---------------------------------------------------------------------------------------


def read_url(proc: subprocess.Popen[str], on_line: Callable[[str], None] | None = None) -> str:
    """Read a ``flagstream up|admin`` child's stdout until it prints the URL it serves on (it does so once it is
    serving); ``on_line`` sees every line before that. Fails with the exit code if the child ends first."""
    assert proc.stdout is not None, "start the process with stdout=subprocess.PIPE, text=True"
    for line in proc.stdout:
        if on_line is not None:
            on_line(line)
        if line.startswith("http://"):
            return line.strip()
    raise AssertionError(f"{proc.args!r} exited with {proc.wait(30)} before serving")


class AdminProcess:
    """``flagstream admin`` as a child process on a fixed port, killable and restartable. ``output`` collects what
    it prints (its log lines included), from the start on."""

    def __init__(self, nats_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        from flagstream.services.runtime.natsd import free_port

        self.nats_url = nats_url
        self.args = args
        #: More environment variables for the process.
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self) -> AdminProcess:
        self.proc = subprocess.Popen(
            [FLAGSTREAM, "admin", "--nats-url", self.nats_url, "--port", str(self.port), "--log-level", "warning",
             *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ADMIN_TOKEN, **self.env},
        )  # fmt: skip
        read_url(self.proc, self.output.append)
        # Keep reading what it prints, so a chatty process never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        return self

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, within: float = 30) -> None:
        """SIGTERM, and wait for the exit; one that does not come within ``within`` seconds fails the test with
        where the process hangs (its threads' stacks and asyncio tasks, ``kill -USR1``), and it is killed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                dump = self.dump()
                self.kill()
                raise AssertionError(
                    f"flagstream admin (pid {self.proc.pid}) did not exit within {within:g}s of SIGTERM:\n{dump}"
                ) from None

    def dump(self, within: float = 10) -> str:
        """The running process's threads' stacks and asyncio tasks (``kill -USR1``: docs/operations.md)."""
        assert self.proc is not None
        start = len(self.output)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + within
        while not any(DUMP_END in line for line in self.output[start:]) and time.monotonic() < deadline:
            time.sleep(0.01)  # the output is read by another thread (_drain)
        return "".join(self.output[start:])


@contextlib.contextmanager
def admin_processes(nats_url: str, count: int, *args: str) -> Iterator[list[AdminProcess]]:
    """``count`` admin processes over one NATS, started in turn, stopped (if still running) at the end."""
    admins: list[AdminProcess] = []
    try:
        for _ in range(count):
            admins.append(AdminProcess(nats_url, *args).start())
        yield admins
    finally:
        for admin in admins:
            admin.stop()


# -- the same events in another stream --------------------------------------------------------------------------


async def copy_stream(source: str, target: str, *, after: int = 0, source_options: dict[str, Any] | None = None) -> int:
    """Append the events of ``source``'s stream after sequence ``after`` to ``target``'s stream (created if
    missing), in order and byte for byte: a target that held the first ``after`` of them before ends with the same
    sequences. Returns the last sequence copied (``after`` if there was nothing new)."""
    import nats

    from flagstream.events import STREAM
    from flagstream.services.runtime.stream import ensure_stream

    src = await nats.connect(source, **(source_options or {}))
    dst = await nats.connect(target)
    try:
        js_src, js_dst = src.jetstream(), dst.jetstream()
        await ensure_stream(js_dst)
        last = (await js_src.stream_info(STREAM)).state.last_seq
        for seq in range(after + 1, last + 1):
            msg = await js_src.get_msg(STREAM, seq=seq, direct=True)
            assert msg.subject is not None
            ack = await js_dst.publish(msg.subject, msg.data or b"", stream=STREAM)
            assert ack.seq == seq, f"{target} was not a copy up to {after}: {seq} landed as {ack.seq}"
        return max(last, after)
    finally:
        await src.close()
        await dst.close()


async def flag_in(http: httpx.AsyncClient, environments: str, env: str, body: dict[str, Any]) -> httpx.Response:
    """Flag ``body["key"]`` as ``body`` says in environment ``env`` (``environments``: the API path of the
    project's environments): created if it is new (a flag is created once, in every environment), otherwise
    changed in ``env`` (a merge patch: the other environments keep theirs)."""
    created = await http.post(f"{environments}/{env}/flags", json=body)
    if created.status_code != 409 or "already exists in project" not in created.text:
        return created
    changes = {k: v for k, v in body.items() if k != "key"}
    return await http.patch(f"{environments}/{env}/flags/{body['key']}", json=changes)
