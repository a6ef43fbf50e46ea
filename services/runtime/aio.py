"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ...aio import cancel_and_wait  # the SDK's (one ``cancel()`` is not enough on Python 3.11: see there)

log = logging.getLogger("flagstream.runtime")


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
            async with asyncio.timeout(max(0.01, delay)):  # not wait_for: see flagstream.aio
                await first_done(stop.wait(), wake.wait())


async def end_within(task: asyncio.Task[Any], what: str, *, grace: float, log: logging.Logger = log) -> None:
    """Wait up to ``grace`` seconds for ``task`` (told to stop) to end, then cancel it (again while it runs on:
    ``cancel_and_wait``) for ``grace`` seconds more; never longer. What it raised, or its running on after that,
    is logged naming ``what``. Not ``asyncio.wait_for(task, grace)``: on Python 3.11, once that times out it
    waits without a limit for the cancelled task (which may have lost the cancellation)."""
    _, running = await asyncio.wait({task}, timeout=grace)
    if running:
        log.warning("%s: did not stop within %gs; cancelled", what, grace)
        if not await cancel_and_wait(task, within=grace, again=grace / 4):
            log.error("%s: still running %gs after it was cancelled", what, grace)
    elif not task.cancelled() and task.exception() is not None:
        log.error("%s: ended with %r", what, task.exception(), exc_info=task.exception())


class BackgroundRunner(Protocol):
    """What ``in_background`` runs: ``run(stop)`` loops until ``stop`` is set; ``wake`` cuts its wait short."""

    wake: asyncio.Event

    def run(self, stop: asyncio.Event) -> Awaitable[None]: ...


R = TypeVar("R", bound=BackgroundRunner)


@contextlib.asynccontextmanager
async def in_background(runner: R, name: str, *, grace: float = 2.0) -> AsyncIterator[R]:
    """``runner.run(stop)`` as a task named ``name`` for the duration of the block.

    It never holds up the app's shutdown for long: ``stop`` is set and the runner woken; a pass in flight gets
    ``grace`` seconds to end, then the task is cancelled (again while it runs on: ``cancel_and_wait``; a claim or
    lease it held is taken over by another replica once it runs out) for ``grace`` seconds more."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop), name=name)
    try:
        yield runner
    finally:
        stop.set()
        runner.wake.set()
        await end_within(task, name, grace=grace)


def _await_chain(awaitable: Any) -> list[str]:
    """Where a coroutine is suspended: one line per frame down its ``await`` chain, then what it waits on."""
    lines: list[str] = []
    seen = 0
    while awaitable is not None and seen < 100:
        seen += 1
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is None:
            # An async generator's asend/athrow (an ``async with`` of a generator-based context manager): go on
            # in the generator it drives. Else a future (a lock's, a sleep's, a socket read's...): the end.
            agen = next((r for r in gc.get_referents(awaitable) if inspect.isasyncgen(r)), None)
            if agen is not None:
                awaitable = agen
                continue
            lines.append(f"  waiting on {awaitable!r}")
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return lines


def task_dump() -> str:
    """Every asyncio task of the running loop, each with the ``await`` chain it is suspended in (for a hang)."""
    out = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        coro = task.get_coro()
        what = getattr(coro, "__qualname__", type(coro).__name__)
        state = "done" if task.done() else "pending"
        if not task.done() and task.cancelling():
            state += f", cancelled {task.cancelling()} time(s) and still running"
        out.append(f"Task {task.get_name()!r} {what} ({state}):")
        out.extend(_await_chain(coro))
    return "\n".join(out) + "\n"


#: The last line of the dump (a name, not a literal in ``dump``: its own stack, in the dump, shows that line).
DUMP_END = "end of the asyncio tasks"


def thread_dump() -> str:
    """Every thread's stack (most recent call last), read with the GIL held: ``faulthandler`` reads them from a
    signal handler without it, and once hung a ``flagstream projector`` that way (a test waited 30 s for the rest
    of its dump)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    out = []
    for ident, frame in sys._current_frames().items():
        head = "Current thread" if ident == me else "Thread"
        out.append(f"{head} 0x{ident:x} ({names.get(ident, 'not a Python thread')}), most recent call last:")
        out.extend(line.rstrip("\n") for line in traceback.format_stack(frame))
    return "\n".join(out) + "\n"


def dump_on_signal(sig: int) -> None:
    """On ``sig``, write every thread's stack and every asyncio task's ``await`` chain to stderr, from the event
    loop (so a loop that is blocked does not answer: ``py-spy dump`` does). Call it from the running loop."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        text = f"threads of pid {os.getpid()}:\n{thread_dump()}asyncio tasks:\n{task_dump()}{DUMP_END}\n"
        sys.stderr.write(text)
        sys.stderr.flush()

    loop.add_signal_handler(sig, dump)
