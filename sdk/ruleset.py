"""The pure fold: events in, an immutable ruleset out. Shared by the SDK cache, the admin service and tests.

A ``Ruleset`` is never mutated: applying events builds a new one (copy-on-write of the maps), so readers on
any thread hold a consistent snapshot without a lock.

Compilation is lazy: the fold puts a ``LazyFlag`` in ``compiled`` for each changed flag, which compiles the
flag the first time the engine reads it (any attribute) and then replaces itself in the newest ``compiled``
map with the ``CompiledFlag``, so later evaluations take the plain path. Compiling is idempotent and a dict
item assignment is atomic in CPython: two threads racing on the first evaluation both compile and one result
wins, with the same behaviour. A cold start of 10,000 flags therefore costs no compilation at all; each flag
pays it (tens of microseconds) on its first evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from msgspec import Struct

from .engine import CompiledFlag, CompiledSegment, compile_flag, compile_segments
from .events import Environment, Event, Flag, FlagEvent, Segment, SegmentEvent, state_hash, subject
from .events.catalog import EnvironmentEvent

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class _Home:
    """The newest ``compiled`` map of a line of rulesets: where a ``LazyFlag`` puts its ``CompiledFlag``; and
    ``fast``, a plain ``dict`` with the same items, for the client's fast accessors (see :func:`fast_flags`)."""

    __slots__ = ("compiled", "fast")

    def __init__(self, compiled: dict[str, Any]) -> None:
        self.compiled = compiled
        self.fast: dict[str, Any] | None = None


def wall_clock() -> float:
    """The SDK's clock: now, in epoch milliseconds (the evaluation time of clauses that read it)."""
    return time.time() * 1000.0


class CompiledFlags(dict[str, Any]):
    """``Ruleset.compiled``: a plain dict for the engine (``get`` is dict's own), plus the line's ``_Home`` and
    the clock of evaluations (``Ruleset.clock``; the engine calls it only for flags that read the time)."""

    __slots__ = ("clock", "home")


def fast_flags(compiled: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``compiled`` (a ``Ruleset.compiled``) as a plain ``dict``, for the client's fast accessors:
    ``d[key]`` on a plain dict is one specialised bytecode, on a dict subclass such as ``CompiledFlags`` CPython
    3.11 goes through ``__getitem__`` as a method call (``slot_mp_subscript``: ~470 CPU instructions, more than
    the rest of an always-on evaluation). The newest map of a line shares its home's copy, which ``LazyFlag``
    keeps up to date; any other map gets a copy of its own (its lazy flags then resolve on every read: slower,
    same answers)."""
    home = getattr(compiled, "home", None)
    if home is not None and home.compiled is compiled and home.fast is not None:
        return home.fast
    return dict(compiled)


class LazyFlag:
    """Stands for ``compile_flag(flag, segments)`` until the engine first reads one of its attributes."""

    __slots__ = ("_flag", "_home", "_real", "_segments")

    def __init__(self, flag: Flag, segments: Mapping[str, CompiledSegment], home: _Home) -> None:
        self._flag = flag
        self._segments = segments
        self._home = home
        self._real: CompiledFlag | None = None

    def resolve(self) -> CompiledFlag:
        real = self._real
        if real is None:
            real = compile_flag(self._flag, self._segments)
            self._real = real
        home = self._home
        compiled, fast = home.compiled, home.fast
        key = self._flag.key
        if compiled.get(key) is self:  # else replaced since (by a newer state of the flag, or already resolved)
            compiled[key] = real
        if fast is not None and fast.get(key) is self:
            fast[key] = real
        return real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return f"LazyFlag({self._flag.key!r}, compiled={self._real is not None})"


class Ruleset(Struct, frozen=True, kw_only=True):
    """Everything needed to evaluate the flags of one environment, as of stream sequence ``seq``."""

    project: str
    environment: str
    seq: int = 0
    flags: Mapping[str, Flag] = _EMPTY
    segments: Mapping[str, Segment] = _EMPTY
    env: Environment | None = None
    compiled: Mapping[str, CompiledFlag] = _EMPTY
    compiled_segments: Mapping[str, CompiledSegment] = _EMPTY
    #: Per-key stream sequence of the last event applied (the version an API client would see).
    versions: Mapping[str, int] = _EMPTY
    #: The evaluation time of clauses that read it: a function returning epoch milliseconds. ``None``: the wall
    #: clock (:func:`wall_clock`); time travel gives the instant asked about.
    clock: Any = None

    def state_hash(self) -> str:
        """Hash of the flag and segment states, comparable with the projector's for the same environment."""
        items: list[tuple[str, Any]] = [
            (subject(self.project, self.environment, "flag", k), v) for k, v in self.flags.items()
        ]
        items += [(subject(self.project, self.environment, "segment", k), v) for k, v in self.segments.items()]
        return state_hash(items)


def _copy(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict of ``mapping``. A ``MappingProxyType``'s (or a dict's) own ``copy`` copies the table in C;
    ``dict(proxy)`` goes item by item through the mapping protocol, 30x slower: 1.1 ms for 10,000 flags, paid by
    every client on every live change (bench/live_path_cost.py)."""
    if type(mapping) is MappingProxyType or type(mapping) is dict:
        return mapping.copy()  # type: ignore[no-any-return]
    return dict(mapping)


def apply_events(ruleset: Ruleset, events: Iterable[tuple[int, Event]]) -> tuple[Ruleset, set[str]]:
    """Fold ``(stream sequence, event)`` pairs into a new ruleset; also return the flag keys that changed.

    Events of other environments and events at or below ``ruleset.seq`` are ignored, so replaying an
    overlapping range is harmless. Segment changes recompile every flag (a flag may reference any segment).
    """
    flags = _copy(ruleset.flags)
    segments = _copy(ruleset.segments)
    compiled = CompiledFlags(ruleset.compiled)
    home = getattr(ruleset.compiled, "home", None) or _Home(compiled)
    compiled.home = home
    compiled.clock = ruleset.clock or wall_clock
    compiled_segments = _copy(ruleset.compiled_segments)
    versions = _copy(ruleset.versions)
    env = ruleset.env
    seq = ruleset.seq
    changed: set[str] = set()
    segments_changed = False
    for event_seq, event in events:
        if event_seq <= seq:
            continue
        seq = event_seq
        if event.project != ruleset.project or event.environment != ruleset.environment:
            continue
        if isinstance(event, FlagEvent):
            if event.flag.deleted:  # the tombstone: the flag is gone from this environment
                flags.pop(event.flag.key, None)
                versions.pop(f"flag/{event.flag.key}", None)
            else:
                flags[event.flag.key] = event.flag
                versions[f"flag/{event.flag.key}"] = event_seq
            changed.add(event.flag.key)
        elif isinstance(event, SegmentEvent):
            segments[event.segment.key] = event.segment
            versions[f"segment/{event.segment.key}"] = event_seq
            segments_changed = True
        elif isinstance(event, EnvironmentEvent):
            env = event.env
    if segments_changed:
        compiled_segments = compile_segments(segments)
        changed.update(flags)
        recompile: Iterable[str] = flags
    else:
        recompile = changed
    frozen_segments = MappingProxyType(compiled_segments)
    for key in recompile:
        if key in flags:
            compiled[key] = LazyFlag(flags[key], frozen_segments, home)
        else:
            compiled.pop(key, None)
    new = Ruleset(
        project=ruleset.project,
        environment=ruleset.environment,
        seq=seq,
        flags=MappingProxyType(flags),
        segments=MappingProxyType(segments),
        env=env,
        compiled=compiled,  # a dict: the hot path reads it on every evaluation (only LazyFlags replace themselves)
        compiled_segments=frozen_segments,
        versions=MappingProxyType(versions),
        clock=ruleset.clock,
    )
    home.compiled = compiled  # from now on, flags compiled on demand land in the newest map
    home.fast = dict(compiled)  # and in its plain copy (fast_flags)
    return new, changed
