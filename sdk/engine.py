"""The evaluation engine: pure code, no I/O. A flag is compiled once when its event arrives, then evaluated
many times. Evaluation never raises: any fault becomes an ERROR reason with the caller's default.

Order of evaluation (docs/targeting.md): off -> prerequisites -> individual targets -> rules in order (first
match wins) -> fallthrough. Everything a flag can serve is prepared at compile time as an ``_Outcome``
(value, variation, reason); the EvaluationDetail of an outcome is cached for the last ruleset sequence seen,
so a hit on the hot path allocates nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

import mmh3

from .bucketing import TOTAL, bucket_text, cumulative
from .context import Contexts, normalize
from .evaluation import ErrorKind, EvaluationDetail, Reason, ReasonKind, error_detail
from .events import Flag, Rollout, Segment, Serve
from .operators import Matcher, compile_clause
from .validation import MAX_PREREQUISITE_DEPTH, flag_problems, validate_segment

_hash = mmh3.hash

_OFF = Reason(kind=ReasonKind.OFF)
_FALLTHROUGH = Reason(kind=ReasonKind.FALLTHROUGH)
_FALLTHROUGH_ROLLOUT = Reason(kind=ReasonKind.FALLTHROUGH, in_rollout=True)
_TARGET = Reason(kind=ReasonKind.TARGET_MATCH)


class _Cycle(Exception):
    """Raised when prerequisites nest deeper than any valid flag can (a cycle that slipped past validation)."""


class _Outcome:
    """One thing a flag can serve, with its EvaluationDetail cached for the last sequence asked."""

    __slots__ = ("last", "reason", "value", "variation")

    def __init__(self, value: Any, variation: str | None, reason: Reason) -> None:
        self.value = value
        self.variation = variation
        self.reason = reason
        self.last = EvaluationDetail(value=value, variation=variation, reason=reason, seq=-1)

    def at(self, seq: int) -> EvaluationDetail:
        d = self.last
        if d.seq != seq:
            d = self.last = EvaluationDetail(value=self.value, variation=self.variation, reason=self.reason, seq=seq)
        return d


#: A compiled rollout: (context kind, attribute, "salt.", cumulative weights, outcomes).
_Roll = tuple[str, str, str, tuple[int, ...], tuple[_Outcome, ...]]
_Run = Callable[[Mapping[str, "CompiledFlag"], Contexts, Any, int, int], EvaluationDetail]


def _roll(roll: _Roll, ctxs: Contexts) -> _Outcome | None:
    """The outcome a rollout serves to ``ctxs``; ``None`` if the context cannot be bucketed."""
    kind, attribute, salt_dot, thresholds, outcomes = roll
    a = ctxs.get(kind)
    if a is None:
        return None
    v = a.get(attribute)
    text = v if type(v) is str else bucket_text(v)
    if text is None:
        return None
    return outcomes[bisect_right(thresholds, _hash(salt_dot + text, signed=False) % TOTAL)]


class CompiledSegment:
    """A segment prepared for membership tests: excluded keys win, then included keys, then rules."""

    __slots__ = ("archived", "excluded", "included", "key", "kind", "rules", "segment")

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.key = segment.key
        self.kind = segment.context_kind
        self.archived = segment.archived or bool(validate_segment(segment))
        self.included = frozenset(segment.included)
        self.excluded = frozenset(segment.excluded)
        salt_dot = f"{segment.salt or segment.key}."
        rules: list[tuple[tuple[Matcher, ...], tuple[str, str, int] | None]] = []
        if not self.archived:
            for rule in segment.rules:
                matchers = tuple(compile_clause(c, None) for c in rule.clauses)
                weight = None if rule.weight is None else (rule.bucket_by, salt_dot, rule.weight)
                rules.append((matchers, weight))
        self.rules = tuple(rules)

    def contains(self, ctxs: Contexts) -> bool:
        """Whether the context is in this segment (an archived or invalid segment contains nobody)."""
        if self.archived:
            return False
        a = ctxs.get(self.kind)
        if a is not None:
            key = a.get("key")
            if key in self.excluded:
                return False
            if key in self.included:
                return True
        for matchers, weight in self.rules:
            if all(m(ctxs) for m in matchers):
                if weight is None:
                    return True
                if a is None:
                    continue
                bucket_by, salt_dot, share = weight
                text = bucket_text(a.get(bucket_by))
                if text is not None and _hash(salt_dot + text, signed=False) % TOTAL < share:
                    return True
        return False


class CompiledFlag:
    """A flag prepared for fast evaluation.

    ``const`` is set when the flag serves the same thing to everyone (off, or on without targets, rules,
    prerequisites or a rollout); otherwise ``run`` evaluates it, unless ``error`` says it cannot be.
    """

    __slots__ = ("archived", "const", "error", "flag", "key", "malformed", "on", "problems", "run")

    def __init__(self, flag: Flag, segments: Mapping[str, CompiledSegment]) -> None:
        self.flag = flag
        self.key = flag.key
        self.on = flag.on
        self.archived = flag.archived
        self.const: _Outcome | None = None
        self.run: _Run | None = None
        self.error: ErrorKind | None = None
        self.problems = flag_problems(flag)
        self.malformed = bool(self.problems)
        if self.archived:
            self.error = ErrorKind.FLAG_NOT_FOUND
            return
        if self.malformed:
            self.error = ErrorKind.MALFORMED_FLAG
            return
        try:
            self._compile(flag, segments)
        except Exception:  # a fault validation did not foresee: refuse the flag rather than fail later
            self.malformed = True
            self.error = ErrorKind.MALFORMED_FLAG
            self.const = self.run = None

    def _compile(self, flag: Flag, segments: Mapping[str, CompiledSegment]) -> None:
        values = {v.key: v.value for v in flag.variations}
        off = _Outcome(values[flag.off_variation], flag.off_variation, _OFF)
        if not flag.on:
            self.const = off
            return
        salt_dot = f"{flag.salt or flag.key}."

        def serve(s: Serve, reason: Reason, rollout_reason: Reason) -> _Outcome | _Roll:
            if s.variation is not None:
                return _Outcome(values[s.variation], s.variation, reason)
            r: Rollout = s.rollout  # type: ignore[assignment]
            outcomes = tuple(_Outcome(values[w.variation], w.variation, rollout_reason) for w in r.variations)
            return (r.context_kind, r.bucket_by, salt_dot, cumulative(w.weight for w in r.variations), outcomes)

        fallthrough = serve(flag.fallthrough, _FALLTHROUGH, _FALLTHROUGH_ROLLOUT)
        if not (flag.targets or flag.rules or flag.prerequisites) and isinstance(fallthrough, _Outcome):
            self.const = fallthrough
            return
        #: A fallthrough rollout that cannot bucket the context serves the off variation.
        unbucketable = _Outcome(off.value, off.variation, _FALLTHROUGH)

        tables: dict[str, dict[str, _Outcome]] = {}
        for t in flag.targets:
            table = tables.setdefault(t.context_kind, {})
            hit = _Outcome(values[t.variation], t.variation, _TARGET)
            for key in t.values:
                table.setdefault(key, hit)
        targets = tuple(tables.items())

        rules = tuple(
            (
                tuple(compile_clause(c, segments) for c in rule.clauses),
                serve(
                    rule.serve,
                    Reason(kind=ReasonKind.RULE_MATCH, rule_index=i, rule_id=rule.id),
                    Reason(kind=ReasonKind.RULE_MATCH, rule_index=i, rule_id=rule.id, in_rollout=True),
                ),
            )
            for i, rule in enumerate(flag.rules)
        )
        prerequisites = tuple(
            (
                p.flag,
                p.variation,
                _Outcome(
                    off.value, off.variation, Reason(kind=ReasonKind.PREREQUISITE_FAILED, prerequisite_key=p.flag)
                ),
            )
            for p in flag.prerequisites
        )
        self.run = _make_run(prerequisites, targets, rules, fallthrough, unbucketable)


def _make_run(
    prerequisites: tuple[tuple[str, str, _Outcome], ...],
    targets: tuple[tuple[str, dict[str, _Outcome]], ...],
    rules: tuple[tuple[tuple[Matcher, ...], _Outcome | _Roll], ...],
    fallthrough: _Outcome | _Roll,
    unbucketable: _Outcome,
) -> _Run:
    Outcome = _Outcome

    def run(flags: Mapping[str, CompiledFlag], ctxs: Contexts, default: Any, seq: int, depth: int) -> EvaluationDetail:
        o: _Outcome | None
        for pkey, pvar, failed in prerequisites:
            if depth >= MAX_PREREQUISITE_DEPTH:
                raise _Cycle(pkey)
            pf = flags.get(pkey)
            if pf is None or pf.error is not None:
                return failed.at(seq)
            c = pf.const
            got = c.variation if c is not None else pf.run(flags, ctxs, None, seq, depth + 1).variation  # type: ignore[misc]
            if got != pvar:
                return failed.at(seq)
        for kind, table in targets:
            a = ctxs.get(kind)
            if a is not None:
                o = table.get(a["key"])
                if o is not None:
                    return o.at(seq)
        for matchers, s in rules:
            for m in matchers:
                if not m(ctxs):
                    break
            else:
                if type(s) is Outcome:
                    o = s
                else:
                    o = _roll(s, ctxs)  # type: ignore[arg-type]
                    if o is None:
                        continue  # a percentage rule only applies to contexts it can bucket
                d = o.last
                return d if d.seq == seq else o.at(seq)
        o = fallthrough if type(fallthrough) is Outcome else (_roll(fallthrough, ctxs) or unbucketable)  # type: ignore[arg-type]
        d = o.last
        return d if d.seq == seq else o.at(seq)

    return run


def compile_segment(segment: Segment) -> CompiledSegment:
    return CompiledSegment(segment)


def compile_flag(flag: Flag, segments: Mapping[str, CompiledSegment]) -> CompiledFlag:
    return CompiledFlag(flag, segments)


def evaluate(flags: Mapping[str, CompiledFlag], key: str, context: Any, default: Any, seq: int = 0) -> EvaluationDetail:
    """Evaluate flag ``key`` for ``context``; never raises.

    Unknown or archived flags give ``default`` with FLAG_NOT_FOUND, invalid flags MALFORMED_FLAG, a context
    that is not one of the accepted shapes (see :mod:`flagstream.context`) MALFORMED_CONTEXT.
    """
    try:
        flag = flags.get(key)
        if flag is None:
            return error_detail(default, ErrorKind.FLAG_NOT_FOUND, seq)
        plain = type(context) is dict and "kind" not in context and type(context.get("key")) is str
        o = flag.const
        if o is not None:
            if not plain and normalize(context) is None:
                return error_detail(default, ErrorKind.MALFORMED_CONTEXT, seq)
            d = o.last
            return d if d.seq == seq else o.at(seq)
        if flag.error is not None:
            return error_detail(default, flag.error, seq)
        if plain:
            ctxs: Contexts | None = {"user": context}
        else:
            ctxs = normalize(context)
            if ctxs is None:
                return error_detail(default, ErrorKind.MALFORMED_CONTEXT, seq)
        return flag.run(flags, ctxs, default, seq, 0)  # type: ignore[misc]
    except _Cycle:
        return error_detail(default, ErrorKind.MALFORMED_FLAG, seq)
    except Exception:
        return error_detail(default, ErrorKind.EXCEPTION, seq)
