"""The evaluation engine: pure code, no I/O. A flag is compiled once when its event arrives, then evaluated
many times. Evaluation never raises: any fault becomes an ERROR reason with the caller's default.

Foundation version: on/off, off variation, fallthrough variation. Targets, rules, rollouts, segments and
prerequisites come with the targeting engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .evaluation import ErrorKind, EvaluationDetail, Reason, ReasonKind, error_detail
from .events import Flag, Segment

_OFF = Reason(kind=ReasonKind.OFF)
_FALLTHROUGH = Reason(kind=ReasonKind.FALLTHROUGH)


class CompiledSegment:
    __slots__ = ("segment",)

    def __init__(self, segment: Segment) -> None:
        self.segment = segment


class CompiledFlag:
    """A flag prepared for fast evaluation."""

    __slots__ = ("archived", "fallthrough", "flag", "key", "malformed", "off", "on")

    def __init__(self, flag: Flag, segments: Mapping[str, CompiledSegment]) -> None:
        self.flag = flag
        self.key = flag.key
        self.on = flag.on
        self.archived = flag.archived
        values = {v.key: v.value for v in flag.variations}
        self.malformed = flag.off_variation not in values or flag.fallthrough.variation not in values
        self.off = (values.get(flag.off_variation), flag.off_variation)
        self.fallthrough = (values.get(flag.fallthrough.variation or ""), flag.fallthrough.variation)


def compile_segment(segment: Segment) -> CompiledSegment:
    return CompiledSegment(segment)


def compile_flag(flag: Flag, segments: Mapping[str, CompiledSegment]) -> CompiledFlag:
    return CompiledFlag(flag, segments)


def evaluate(flags: Mapping[str, CompiledFlag], key: str, context: Any, default: Any, seq: int = 0) -> EvaluationDetail:
    """Evaluate flag ``key`` for ``context``; unknown or archived flags give ``default`` with an ERROR reason."""
    flag = flags.get(key)
    if flag is None or flag.archived:
        return error_detail(default, ErrorKind.FLAG_NOT_FOUND, seq)
    if flag.malformed:
        return error_detail(default, ErrorKind.MALFORMED_FLAG, seq)
    if not flag.on:
        value, variation = flag.off
        return EvaluationDetail(value=value, variation=variation, reason=_OFF, seq=seq)
    value, variation = flag.fallthrough
    return EvaluationDetail(value=value, variation=variation, reason=_FALLTHROUGH, seq=seq)
