"""Semantic validation of flags and segments, shared by the admin API (422 before anything is written) and
the SDK (a flag that fails :func:`flag_problems` evaluates to MALFORMED_FLAG). Pure: no I/O.

Structural validation (types, key patterns, weight ranges) is done by msgspec when decoding; this module
checks what types cannot: references between variations, segments and flags, sums, operator values, regexes,
prerequisite cycles. Every problem carries the JSON path of the fault in the submitted document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from .bucketing import FLAGSTREAM
from .events import WEIGHT_TOTAL, Clause, Flag, Operator, Segment, Serve
from .operators import CASTS, NOW_MODES, ValueProblem, prepare_values
from .schemes import GROWTHBOOK, RANGED, SCHEMES, SEGMENT_SCHEMES

#: Every bucketing scheme a rollout can name.
ALGORITHMS = (FLAGSTREAM, *SCHEMES)

#: Longest prerequisite chain accepted (the engine also stops at this depth at run time).
MAX_PREREQUISITE_DEPTH = 32


class Problem(Struct, frozen=True):
    """One fault: ``path`` is a JSON path into the submitted document, e.g. ``$.rules[1].serve.variation``."""

    path: str
    message: str


def validate_flag(flag: Flag, *, segments: Mapping[str, Segment], flags: Mapping[str, Flag]) -> list[Problem]:
    """All problems of ``flag`` in an environment whose other flags and segments are given (empty if valid).

    ``flags`` may or may not contain a previous version of ``flag`` itself: ``flag`` replaces it.
    """
    problems = flag_problems(flag)
    problems += _segment_reference_problems(flag, segments)
    problems += _prerequisite_problems(flag, flags)
    return problems


def validate_segment(segment: Segment, segments: Mapping[str, Segment] | None = None) -> list[Problem]:
    """All problems of ``segment`` (empty if valid). With the environment's other ``segments`` (which may hold
    a previous version of ``segment``), also the segments it names: each must exist, and none may lead back to
    it (a cycle)."""
    problems: list[Problem] = []
    _kind_problem(segment.context_kind, "$.context_kind", problems)
    seen: set[str] = set()
    cycle_seen = False
    for i, rule in enumerate(segment.rules):
        path = f"$.rules[{i}]"
        if rule.id in seen:
            problems.append(Problem(f"{path}.id", f"duplicate rule id {rule.id!r}"))
        seen.add(rule.id)
        if not rule.bucket_by:
            problems.append(Problem(f"{path}.bucket_by", "bucket_by must name an attribute"))
        if rule.weight is not None and not 0 <= rule.weight <= WEIGHT_TOTAL:
            problems.append(Problem(f"{path}.weight", f"weight must be between 0 and {WEIGHT_TOTAL}"))
        if rule.algorithm not in (FLAGSTREAM, *SEGMENT_SCHEMES):
            known = ", ".join((FLAGSTREAM, *SEGMENT_SCHEMES))
            problems.append(Problem(f"{path}.algorithm", f"unknown algorithm {rule.algorithm!r} (known: {known})"))
        elif rule.algorithm == FLAGSTREAM and rule.hash_prefix:
            problems.append(
                Problem(f"{path}.hash_prefix", "the flagstream algorithm uses the segment's salt, not a prefix")
            )
        if rule.hash_version not in (0, 1, 2) or (rule.hash_version and rule.algorithm != GROWTHBOOK):
            problems.append(Problem(f"{path}.hash_version", "hash_version is GrowthBook's: 1 or 2"))
        if rule.context_kind:
            _kind_problem(rule.context_kind, f"{path}.context_kind", problems)
        if rule.ranges:
            if rule.algorithm != GROWTHBOOK:
                problems.append(Problem(f"{path}.ranges", "ranges of a segment rule are GrowthBook's (namespaces)"))
            else:
                problems += _range_problems(rule.ranges, len(rule.ranges), GROWTHBOOK, f"{path}.ranges")
        for j, clause in enumerate(rule.clauses):
            cpath = f"{path}.clauses[{j}]"
            problems += _clause_problems(clause, cpath)
            if _op(clause) is Operator.IN_SEGMENT:
                for k, key in enumerate(clause.values):
                    if not isinstance(key, str):
                        continue
                    where = f"{cpath}.values[{k}]"
                    if segments is not None and key != segment.key and key not in segments:
                        problems.append(Problem(where, f"unknown segment {key!r}"))
                    elif not cycle_seen:
                        cycle = _segment_cycle(segment, key, segments or {})
                        if cycle:
                            cycle_seen = True
                            problems.append(Problem(where, "segment cycle: " + " -> ".join(cycle)))
    return problems


def segment_references(segment: Segment) -> list[str]:
    """The keys of the segments ``segment``'s rules name (``in_segment`` clauses)."""
    return [
        key
        for rule in segment.rules
        for clause in rule.clauses
        if _op(clause) is Operator.IN_SEGMENT
        for key in clause.values
        if isinstance(key, str)
    ]


def _segment_cycle(segment: Segment, start: str, segments: Mapping[str, Segment]) -> list[str] | None:
    """The path ``segment -> start -> ... -> segment`` through ``in_segment`` clauses, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [segment.key, start])]
    seen: set[str] = set()
    while stack:
        key, path = stack.pop()
        if key == segment.key:
            return path
        if key in seen:
            continue
        seen.add(key)
        other = segments.get(key)
        if other is not None:
            stack += [(k, [*path, k]) for k in segment_references(other)]
    return None


def cyclic_segments(segments: Mapping[str, Segment]) -> set[str]:
    """The keys of the segments on a cycle of ``in_segment`` references: they contain nobody."""
    return {key for key, s in segments.items() if any(_segment_cycle(s, k, segments) for k in segment_references(s))}


def flag_problems(flag: Flag) -> list[Problem]:
    """The problems visible in ``flag`` alone (no reference to other flags or segments)."""
    problems: list[Problem] = []
    keys: set[str] = set()
    if not flag.variations:
        problems.append(Problem("$.variations", "a flag needs at least one variation"))
    for i, variation in enumerate(flag.variations):
        if variation.key in keys:
            problems.append(Problem(f"$.variations[{i}].key", f"duplicate variation key {variation.key!r}"))
        keys.add(variation.key)
    if flag.off_variation not in keys:
        problems.append(Problem("$.off_variation", f"unknown variation {flag.off_variation!r}"))
    problems += _serve_problems(flag.fallthrough, "$.fallthrough", keys)

    targeted: dict[tuple[str, str], int] = {}
    for i, target in enumerate(flag.targets):
        path = f"$.targets[{i}]"
        if target.variation not in keys:
            problems.append(Problem(f"{path}.variation", f"unknown variation {target.variation!r}"))
        _kind_problem(target.context_kind, f"{path}.context_kind", problems)
        for j, value in enumerate(target.values):
            if not isinstance(value, str):
                problems.append(Problem(f"{path}.values[{j}]", "a target is a context key (a string)"))
                continue
            first = targeted.setdefault((target.context_kind, value), i)
            if first != i:
                problems.append(Problem(f"{path}.values[{j}]", f"{value!r} is already targeted by $.targets[{first}]"))

    rule_ids: set[str] = set()
    for i, rule in enumerate(flag.rules):
        path = f"$.rules[{i}]"
        if rule.id in rule_ids:
            problems.append(Problem(f"{path}.id", f"duplicate rule id {rule.id!r}"))
        rule_ids.add(rule.id)
        for j, clause in enumerate(rule.clauses):
            problems += _clause_problems(clause, f"{path}.clauses[{j}]")
        problems += _serve_problems(rule.serve, f"{path}.serve", keys)

    required: set[str] = set()
    for i, prerequisite in enumerate(flag.prerequisites):
        path = f"$.prerequisites[{i}]"
        if prerequisite.flag == flag.key:
            problems.append(Problem(f"{path}.flag", f"prerequisite cycle: {flag.key} -> {flag.key}"))
        elif prerequisite.flag in required:
            problems.append(Problem(f"{path}.flag", f"duplicate prerequisite {prerequisite.flag!r}"))
        required.add(prerequisite.flag)
    return problems


# ---------------------------------------------------------------------------------------------------------


def _op(clause: Clause) -> Operator | None:
    try:
        return Operator(clause.op)
    except ValueError:
        return None


def _kind_problem(kind: Any, path: str, problems: list[Problem]) -> None:
    if not isinstance(kind, str) or not kind or kind in ("multi", "kind"):
        problems.append(Problem(path, f"invalid context kind {kind!r}"))


def _clause_problems(clause: Clause, path: str) -> list[Problem]:
    problems: list[Problem] = []
    op = _op(clause)
    if op is None:
        return [Problem(f"{path}.op", f"unknown operator {clause.op!r}")]
    _kind_problem(clause.context_kind, f"{path}.context_kind", problems)
    if clause.now not in NOW_MODES:
        problems.append(Problem(f"{path}.now", f"unknown now {clause.now!r} (known: always, if_absent)"))
    elif clause.now and op in (Operator.EXISTS, Operator.IN_SEGMENT):
        problems.append(Problem(f"{path}.now", f"{op.value!r} cannot test the evaluation time"))
    if clause.stringify not in ("", "python", "js"):
        problems.append(Problem(f"{path}.stringify", f"unknown stringify {clause.stringify!r} (known: python, js)"))
    if clause.cast not in CASTS:
        problems.append(Problem(f"{path}.cast", f"unknown cast {clause.cast!r} (known: python, js, jsonlogic)"))
    elif clause.cast and (clause.now or clause.attribute == "kind" or op in (Operator.EXISTS, Operator.IN_SEGMENT)):
        problems.append(
            Problem(f"{path}.cast", "a cast compares an attribute value (not exists, segments, kinds, time)")
        )
    if op is not Operator.IN_SEGMENT and (not isinstance(clause.attribute, str) or not clause.attribute):
        problems.append(Problem(f"{path}.attribute", "a clause needs an attribute"))
    try:
        prepare_values(op, tuple(clause.values), clause.case_insensitive, clause.semver, clause.cast)
    except ValueProblem as e:
        where = f"{path}.values" if e.index is None else f"{path}.values[{e.index}]"
        problems.append(Problem(where, e.message))
    return problems


def _serve_problems(serve: Serve, path: str, keys: set[str]) -> list[Problem]:
    if (serve.variation is not None) + (serve.rollout is not None) + bool(serve.default) != 1:
        return [Problem(path, "serve exactly one of 'variation', 'rollout' or 'default'")]
    if serve.default:
        return []
    if serve.variation is not None:
        if serve.variation not in keys:
            return [Problem(f"{path}.variation", f"unknown variation {serve.variation!r}")]
        return []
    problems: list[Problem] = []
    rollout = serve.rollout
    assert rollout is not None
    rpath = f"{path}.rollout"
    if not rollout.variations:
        problems.append(Problem(f"{rpath}.variations", "a rollout needs at least one variation"))
    seen: set[str] = set()
    total = 0
    for i, weighted in enumerate(rollout.variations):
        if weighted.variation not in keys:
            problems.append(Problem(f"{rpath}.variations[{i}].variation", f"unknown variation {weighted.variation!r}"))
        elif weighted.variation in seen:
            problems.append(Problem(f"{rpath}.variations[{i}].variation", f"{weighted.variation!r} appears twice"))
        seen.add(weighted.variation)
        if not 0 <= weighted.weight <= WEIGHT_TOTAL:
            problems.append(Problem(f"{rpath}.variations[{i}].weight", f"weight must be between 0 and {WEIGHT_TOTAL}"))
        total += weighted.weight
    if rollout.partial:
        if total > WEIGHT_TOTAL:
            problems.append(Problem(f"{rpath}.variations", f"weights sum to {total}, more than {WEIGHT_TOTAL} (100%)"))
    elif rollout.variations and total != WEIGHT_TOTAL:
        problems.append(Problem(f"{rpath}.variations", f"weights sum to {total}, not {WEIGHT_TOTAL} (100%)"))
    if rollout.algorithm not in ALGORITHMS:
        known = ", ".join(ALGORITHMS)
        problems.append(Problem(f"{rpath}.algorithm", f"unknown algorithm {rollout.algorithm!r} (known: {known})"))
    elif rollout.algorithm == FLAGSTREAM and rollout.hash_prefix:
        problems.append(Problem(f"{rpath}.hash_prefix", "the flagstream algorithm uses the flag's salt, not a prefix"))
    if not isinstance(rollout.hash_prefix, str):
        problems.append(Problem(f"{rpath}.hash_prefix", "hash_prefix must be a string"))
    if rollout.hash_version not in (0, 1, 2) or (rollout.hash_version and rollout.algorithm != GROWTHBOOK):
        problems.append(Problem(f"{rpath}.hash_version", "hash_version is GrowthBook's: 1 or 2"))
    if rollout.ranges:
        problems += _range_problems(rollout.ranges, len(rollout.variations), rollout.algorithm, f"{rpath}.ranges")
    if rollout.fallback_by and rollout.algorithm != GROWTHBOOK:
        problems.append(Problem(f"{rpath}.fallback_by", "fallback_by is GrowthBook's (fallbackAttribute)"))
    if not rollout.bucket_by:
        problems.append(Problem(f"{rpath}.bucket_by", "bucket_by must name an attribute"))
    _kind_problem(rollout.context_kind, f"{rpath}.context_kind", problems)
    return problems


def _range_problems(ranges: Any, n: int, algorithm: str, path: str) -> list[Problem]:
    if algorithm not in RANGED:
        return [Problem(path, f"the {algorithm} scheme buckets by weights, not ranges")]
    if len(ranges) != n:
        return [Problem(path, f"{len(ranges)} ranges for {n} variations (one [start, end) each)")]
    problems: list[Problem] = []
    for i, r in enumerate(ranges):
        try:
            start, end = (float(x) for x in r)
        except (TypeError, ValueError):
            problems.append(Problem(f"{path}[{i}]", "a range is [start, end], two numbers"))
            continue
        if not (math.isfinite(start) and math.isfinite(end)) or start > end or start < 0:
            problems.append(Problem(f"{path}[{i}]", f"[{start}, {end}] is not a range (0 <= start <= end)"))
    return problems


def _segment_reference_problems(flag: Flag, segments: Mapping[str, Segment]) -> list[Problem]:
    problems: list[Problem] = []
    for i, rule in enumerate(flag.rules):
        for j, clause in enumerate(rule.clauses):
            if _op(clause) is not Operator.IN_SEGMENT:
                continue
            for k, key in enumerate(clause.values):
                if not isinstance(key, str):
                    continue  # reported by the clause check
                segment = segments.get(key)
                where = f"$.rules[{i}].clauses[{j}].values[{k}]"
                if segment is None:
                    problems.append(Problem(where, f"unknown segment {key!r}"))
                elif segment.archived:
                    problems.append(Problem(where, f"segment {key!r} is archived"))
    return problems


def _prerequisite_problems(flag: Flag, flags: Mapping[str, Flag]) -> list[Problem]:
    problems: list[Problem] = []
    for i, prerequisite in enumerate(flag.prerequisites):
        if prerequisite.flag == flag.key:
            continue  # reported as a cycle by flag_problems
        other = flags.get(prerequisite.flag)
        path = f"$.prerequisites[{i}]"
        if other is None:
            problems.append(Problem(f"{path}.flag", f"unknown flag {prerequisite.flag!r}"))
            continue
        if other.archived:
            problems.append(Problem(f"{path}.flag", f"flag {prerequisite.flag!r} is archived"))
        if prerequisite.variation not in {v.key for v in other.variations}:
            problems.append(
                Problem(f"{path}.variation", f"flag {prerequisite.flag!r} has no variation {prerequisite.variation!r}")
            )
        cycle = _cycle_through(flag, prerequisite.flag, flags)
        if cycle:
            problems.append(Problem(f"{path}.flag", "prerequisite cycle: " + " -> ".join(cycle)))
        else:
            depth = _depth(prerequisite.flag, flags, flag)
            if depth + 1 > MAX_PREREQUISITE_DEPTH:
                problems.append(Problem(f"{path}.flag", f"prerequisite chain deeper than {MAX_PREREQUISITE_DEPTH}"))
    return problems


def _requires(key: str, flags: Mapping[str, Flag], flag: Flag) -> list[str]:
    current = flag if key == flag.key else flags.get(key)
    return [] if current is None else [p.flag for p in current.prerequisites]


def _cycle_through(flag: Flag, start: str, flags: Mapping[str, Flag]) -> list[str] | None:
    """The path ``flag -> start -> ... -> flag`` if one exists (depth-first, shortest not guaranteed)."""
    stack: list[tuple[str, list[str]]] = [(start, [flag.key, start])]
    visited: set[str] = set()
    while stack:
        key, path = stack.pop()
        if key in visited:
            continue
        visited.add(key)
        for nxt in _requires(key, flags, flag):
            if nxt == flag.key:
                return [*path, nxt]
            if nxt not in visited:
                stack.append((nxt, [*path, nxt]))
    return None


def _depth(start: str, flags: Mapping[str, Flag], flag: Flag) -> int:
    """Length of the longest prerequisite chain below ``start`` (1 for a flag without prerequisites)."""
    memo: dict[str, int] = {}
    active: set[str] = set()

    def depth(key: str) -> int:
        if key in memo:
            return memo[key]
        if key in active or len(active) > MAX_PREREQUISITE_DEPTH:
            return 0  # a cycle elsewhere in the environment, or already too deep: stop here
        active.add(key)
        result = 1 + max((depth(n) for n in _requires(key, flags, flag)), default=0)
        active.discard(key)
        memo[key] = result
        return result

    return depth(start)
