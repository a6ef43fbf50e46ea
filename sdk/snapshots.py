"""Reading an environment's compacted snapshot (``flagstream.events.snapshot``) at cold start.

A snapshot is the last event of every subject of the environment as of a stream sequence S, written by the
services (``services/snapshots``) in a few big messages of the ``flagstream_snapshots`` bucket. The client reads
them with JetStream's direct get (one request per part, all parts but the first at once), checks and decodes them
in one call, folds the events as it would fold the same events read one by one, and follows the stream from
S + 1 (``nats_source.py``). Whatever goes wrong here, the client loads the environment the long way (the last
message of each subject): this module raises, its caller logs, counts and falls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from .events.snapshot import SNAPSHOT_STREAM, Snapshot, SnapshotError, decode_snapshot, read_head, snapshot_subject

#: Seconds a part may take to arrive (the JetStream API's own default is 5 s; the fallback is never far).
PART_TIMEOUT = 3.0


async def fetch_snapshot(js: Any, project: str, environment: str, attempts: int = 2) -> Snapshot:
    """The environment's snapshot. Raises nats-py's ``NotFoundError`` when there is none, ``UnknownFormat`` when it
    was written in a newer format, ``SnapshotError`` when it cannot be used, or whatever NATS raised. A snapshot
    rewritten while it was read (parts of two snapshots) is read again, ``attempts`` times in all."""
    for attempt in range(attempts):
        first = await _part(js, project, environment, 0)
        _, count = read_head(first.headers)
        rest = await asyncio.gather(*(_part(js, project, environment, i) for i in range(1, count)))
        parts = [(m.headers, m.data or b"") for m in (first, *rest)]
        try:
            with gc_paused():
                return decode_snapshot(parts)
        except SnapshotError as exc:
            if attempt + 1 >= attempts or "another snapshot" not in str(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector paused for the block (if it was on): decoding and folding a snapshot create hundreds of
    thousands of objects that all stay, and the collections their number triggers would scan them again and again
    for nothing (about a fifth of a 10,000-flag load's CPU). Tens of milliseconds, on the loading client's loop."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _part(js: Any, project: str, environment: str, part: int) -> Any:
    subject = snapshot_subject(project, environment, part)
    async with asyncio.timeout(PART_TIMEOUT):  # not wait_for, which can drop a cancellation (flagstream.aio)
        return await js.get_last_msg(SNAPSHOT_STREAM, subject, direct=True)


__all__ = ["PART_TIMEOUT", "fetch_snapshot", "gc_paused"]
