"""The last-known-state file: lets a client start (STALE, serving the flags it last saw) while NATS is down.

The file holds the raw states of a ``Ruleset`` (flags, segments, environment, sequence, per-key versions,
project/environment) as JSON, never the compiled form: loading compiles them again with the running engine.
It is written atomically (temporary file in the same folder, fsync, ``os.replace``), debounced and off the
evaluation path (in a worker thread), so a crash leaves either the previous file or the new one, never half.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import msgspec

from .engine import compile_flag, compile_segments
from .events import Environment, Flag, Segment
from .ruleset import CompiledFlags, Ruleset, wall_clock

log = logging.getLogger("flagstream.client")

#: Bumped if the file layout ever changes incompatibly; other formats are ignored (as corrupt).
FORMAT = 1


class StateFile(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    project: str
    environment: str
    seq: int = 0
    saved_at: float = 0.0
    flags: list[Flag] = []
    segments: list[Segment] = []
    env: Environment | None = None
    versions: dict[str, int] = {}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StateFile)


def build_ruleset(
    project: str,
    environment: str,
    flags: Iterable[Flag],
    segments: Iterable[Segment] = (),
    *,
    seq: int = 0,
    env: Environment | None = None,
    versions: Mapping[str, int] | None = None,
) -> Ruleset:
    """A ``Ruleset`` from raw states, compiled by the running engine (as the fold would have built it)."""
    segment_map = {s.key: s for s in segments}
    flag_map = {f.key: f for f in flags}
    compiled_segments = MappingProxyType(compile_segments(segment_map))
    compiled = CompiledFlags({k: compile_flag(f, compiled_segments) for k, f in flag_map.items()})
    compiled.clock = wall_clock
    return Ruleset(
        project=project,
        environment=environment,
        seq=seq,
        flags=MappingProxyType(flag_map),
        segments=MappingProxyType(segment_map),
        env=env,
        compiled=compiled,
        compiled_segments=compiled_segments,
        versions=MappingProxyType(dict(versions or {})),
    )


def encode_state(ruleset: Ruleset) -> bytes:
    return _encoder.encode(
        StateFile(
            project=ruleset.project,
            environment=ruleset.environment,
            seq=ruleset.seq,
            saved_at=time.time(),
            flags=list(ruleset.flags.values()),
            segments=list(ruleset.segments.values()),
            env=ruleset.env,
            versions=dict(ruleset.versions),
        )
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader (or a crash) sees the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class CorruptStateFile(Exception):
    """The file exists but cannot be used (undecodable, other format, other project or environment)."""


def load_state(path: Path, project: str, environment: str) -> Ruleset | None:
    """The ruleset saved in ``path``; ``None`` if there is no file; ``CorruptStateFile`` if it is unusable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptStateFile(f"{path}: {exc}") from exc
    try:
        state = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise CorruptStateFile(f"{path}: {exc}") from exc
    if state.format != FORMAT:
        raise CorruptStateFile(f"{path}: format {state.format}, expected {FORMAT}")
    if (state.project, state.environment) != (project, environment):
        raise CorruptStateFile(
            f"{path}: holds {state.project}/{state.environment}, this client follows {project}/{environment}"
        )
    return build_ruleset(
        project,
        environment,
        state.flags,
        state.segments,
        seq=state.seq,
        env=state.env,
        versions=state.versions,
    )


class StatePersister:
    """Writes the current ruleset to ``path`` after changes: at most once per ``interval`` seconds, the latest
    state each time, in a worker thread. ``mark()`` is cheap (called on the client's loop after each swap)."""

    def __init__(self, path: Path, current: Callable[[], Ruleset], interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        #: Successful writes and failed ones (a failure is logged; the next change tries again).
        self.writes = 0
        self.write_errors = 0
        self._current = current
        self._written = current()  # what the file holds (or need not hold: nothing new yet)
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="flagstream-persist")

    def mark(self, *_: object) -> None:
        self._dirty.set()

    async def close(self) -> None:
        """Stop after the write in progress (never cut short), then write the latest state if not yet written."""
        if self._task is not None:
            self._stop.set()
            self._dirty.set()  # wakes the loop if it waits for a change
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        if self._current() is not self._written:
            await self._write()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._stop.is_set():
                return
            await self._write()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):  # not wait_for, which can drop a cancellation
                    await self._stop.wait()

    async def _write(self) -> None:
        self._dirty.clear()
        ruleset = self._current()
        try:
            await asyncio.to_thread(write_atomically, self.path, encode_state(ruleset))
        except Exception:
            self.write_errors += 1
            log.exception("flagstream: cannot write the last-known-state file %s", self.path)
        else:
            self.writes += 1
            self._written = ruleset
