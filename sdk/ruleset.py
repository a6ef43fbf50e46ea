"""The pure fold: events in, an immutable ruleset out. Shared by the SDK cache, the admin service and tests.

A ``Ruleset`` is never mutated: applying events builds a new one (copy-on-write of the maps), so readers on
any thread hold a consistent snapshot without a lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from msgspec import Struct

from .engine import CompiledFlag, CompiledSegment, compile_flag, compile_segment
from .events import Environment, Event, Flag, FlagEvent, Segment, SegmentEvent, state_hash, subject
from .events.catalog import EnvironmentEvent

_EMPTY: Mapping[str, Any] = MappingProxyType({})


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

    def state_hash(self) -> str:
        """Hash of the flag and segment states, comparable with the projector's for the same environment."""
        items: list[tuple[str, Any]] = [
            (subject(self.project, self.environment, "flag", k), v) for k, v in self.flags.items()
        ]
        items += [(subject(self.project, self.environment, "segment", k), v) for k, v in self.segments.items()]
        return state_hash(items)


def apply_events(ruleset: Ruleset, events: Iterable[tuple[int, Event]]) -> tuple[Ruleset, set[str]]:
    """Fold ``(stream sequence, event)`` pairs into a new ruleset; also return the flag keys that changed.

    Events of other environments and events at or below ``ruleset.seq`` are ignored, so replaying an
    overlapping range is harmless. Segment changes recompile every flag (a flag may reference any segment).
    """
    flags = dict(ruleset.flags)
    segments = dict(ruleset.segments)
    compiled = dict(ruleset.compiled)
    compiled_segments = dict(ruleset.compiled_segments)
    versions = dict(ruleset.versions)
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
        compiled_segments = {k: compile_segment(s) for k, s in segments.items()}
        changed.update(flags)
        recompile: Iterable[str] = flags
    else:
        recompile = changed
    frozen_segments = MappingProxyType(compiled_segments)
    for key in recompile:
        compiled[key] = compile_flag(flags[key], frozen_segments)
    new = Ruleset(
        project=ruleset.project,
        environment=ruleset.environment,
        seq=seq,
        flags=MappingProxyType(flags),
        segments=MappingProxyType(segments),
        env=env,
        compiled=compiled,  # a plain dict: the hot path reads it on every evaluation (never mutated)
        compiled_segments=frozen_segments,
        versions=MappingProxyType(versions),
    )
    return new, changed
