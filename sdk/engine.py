"""The evaluation engine: pure code, no I/O. A flag is compiled once when its event arrives, then evaluated
many times. Evaluation never raises: any fault becomes an ERROR reason with the caller's default.

Order of evaluation (docs/targeting.md): off -> prerequisites -> individual targets -> rules in order (first
match wins) -> fallthrough. Everything a flag can serve is prepared at compile time as an ``_Outcome``
(value, variation, reason); the EvaluationDetail of an outcome is cached for the last ruleset sequence seen,
so a hit on the hot path allocates nothing.
"""

from __future__ import annotations

import re
import sys
import warnings
from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import repeat
from types import FunctionType
from typing import Any

import mmh3

from .bucketing import FLAGSTREAM, TOTAL, bucket_text, cumulative
from .context import Contexts, normalize
from .evaluation import ErrorKind, EvaluationDetail, Reason, ReasonKind, error_detail
from .events import Clause, Flag, Rollout, Segment, Serve
from .operators import NOW, Matcher, any_element, attribute_parts, compile_clause, in_other, string_in_parts
from .schemes import getter, pointer, rollout_picker, segment_share, walk
from .validation import (
    MAX_PREREQUISITE_DEPTH,
    Problem,
    cyclic_segments,
    flag_problems,
    segment_references,
    validate_segment,
)

_hash = mmh3.hash

_OFF = Reason(kind=ReasonKind.OFF)
_FALLTHROUGH = Reason(kind=ReasonKind.FALLTHROUGH)
_FALLTHROUGH_ROLLOUT = Reason(kind=ReasonKind.FALLTHROUGH, in_rollout=True)
_TARGET = Reason(kind=ReasonKind.TARGET_MATCH)
#: Matches no sequence (sequences are >= 0): the initial cached detail of every outcome.
_NEVER = EvaluationDetail(value=None, variation=None, reason=_OFF, seq=-1)


class _Special:
    """``CompiledFlag.error`` of a flag evaluated off the hot path (:func:`_evaluate_special`): one that can serve
    the caller's default, or reads the evaluation time. Not an error."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SPECIAL"


SPECIAL: Any = _Special()
#: The value of an outcome that serves the caller's default (``Serve.default``, ``Flag.off_default``).
CALLER_DEFAULT: Any = _Special.__new__(_Special)


class _Cycle(Exception):
    """Raised when prerequisites nest deeper than any valid flag can (a cycle that slipped past validation)."""


#: The start of every outcome's counter: ``next`` on an ``itertools.repeat`` counts down from here.
_FOREVER = sys.maxsize


class _Outcome:
    """One thing a flag can serve, with its EvaluationDetail cached for the last sequence asked.

    ``counter`` counts how often a client's accessor served it: it is ``itertools.repeat(value, _FOREVER)``, and
    the client's fast path takes the value from it (``for value in o.bools: return value``), which counts one
    down in C: no integer is allocated, no bytecode adds, and the GIL makes each step atomic (no increment lost
    between threads). ``bools`` / ``strings`` are that counter when the value is a bool / a string, else
    ``None`` (the typed accessors then take the general path). The engine never counts; ``n`` reads the count
    (``flagstream.cache`` sums them).
    """

    __slots__ = ("bools", "counter", "last", "reason", "strings", "value", "variation")

    def __init__(self, value: Any, variation: str | None, reason: Reason) -> None:
        self.value = value
        self.variation = variation
        self.reason = reason
        self.last = _NEVER  # replaced by the first evaluation that serves this outcome
        self.counter = repeat(value, _FOREVER)
        self.bools = self.counter if value is True or value is False else None
        self.strings = self.counter if type(value) is str else None

    @property
    def n(self) -> int:
        """How often a client's accessor served this outcome."""
        return _FOREVER - self.counter.__length_hint__()

    def at(self, seq: int) -> EvaluationDetail:
        d = self.last
        if d.seq != seq:
            d = self.last = EvaluationDetail(value=self.value, variation=self.variation, reason=self.reason, seq=seq)
        return d


#: run(flags, context, ctxs or None for a plain user dict, seq, depth) -> the outcome served
_Run = Callable[[Mapping[str, "CompiledFlag"], Any, Contexts | None, int, int], _Outcome]

#: A flag as data, for the compiled accessors (``CompiledFlag.plan``; evaluated by ``flagstream._accel``), for a
#: context that is one plain user dict: ``(targets, rules, fallthrough)``. ``targets`` maps a user key to its
#: outcome (or is ``None``); each rule is ``(clauses, serve)`` and matches when all its clauses do; a clause is
#: ``(attribute, single, strings, negate)``, a string ``in`` clause (``single``: its one value, else ``None``);
#: a serve is an ``_Outcome``, or a rollout by the user's key ``(salt_dot, thresholds, outcomes)``: the outcome
#: of the first threshold above ``mmh3.hash(salt_dot + key, 0, False) % TOTAL``, ``None`` meaning the next rule.
PlanClause = tuple[str, str | None, frozenset[str], bool]
PlanServe = Any  # _Outcome | tuple[str, tuple[float, ...], tuple[_Outcome | None, ...]]
PlanRule = tuple[tuple[PlanClause, ...], PlanServe]
Plan = tuple[dict[str, Any] | None, tuple[PlanRule, ...], PlanServe]


def _plan_clauses(clauses: list[Clause]) -> tuple[PlanClause, ...] | None:
    """``clauses`` as a plan's, or ``None`` if one is not a string ``in`` clause on a user attribute."""
    out = []
    for clause in clauses:
        parts = string_in_parts(clause)
        if parts is None or parts[0] != "user":
            return None
        _, attribute, strings, negate = parts
        single = next(iter(strings)) if len(strings) == 1 else None
        out.append((sys.intern(attribute), single, strings, negate))
    return tuple(out)


class CompiledSegment:
    """A segment prepared for membership tests: excluded keys win, then included keys, then rules."""

    __slots__ = ("archived", "excluded", "included", "key", "kind", "rules", "segment", "timed")

    def __init__(self, segment: Segment, segments: Mapping[str, CompiledSegment] | None = None) -> None:
        self.segment = segment
        self.key = segment.key
        self.kind = segment.context_kind
        try:
            self.archived = segment.archived or bool(validate_segment(segment))
        except Exception:  # not even checkable: the segment contains nobody
            self.archived = True
        #: Whether a clause reads the evaluation time (``compile_segments`` adds the segments it names).
        self.timed = False
        self.included = frozenset(segment.included)
        self.excluded = frozenset(segment.excluded)
        salt_dot = f"{segment.salt or segment.key}."
        rules: list[tuple[tuple[Matcher, ...], Any]] = []
        try:
            for rule in () if self.archived else segment.rules:
                self.timed = self.timed or any(c.now for c in rule.clauses)
                matchers = tuple(compile_clause(c, segments) for c in rule.clauses)
                weight: Any = None
                if rule.weight is not None:
                    kind = rule.context_kind or segment.context_kind
                    if rule.algorithm == FLAGSTREAM:
                        # (kind, value getter, prefix, share): in when murmur3(prefix + text) % 100,000 < share
                        weight = (kind, getter(rule.bucket_by), salt_dot, rule.weight)
                    else:  # an imported percentage: (kind, picker), in when the picker gives 0
                        share = segment_share(
                            rule.algorithm,
                            rule.bucket_by,
                            rule.hash_prefix,
                            rule.weight,
                            rule.hash_version,
                            rule.ranges,
                        )
                        weight = (kind, share)
                rules.append((matchers, weight))
        except Exception:  # a fault validation did not foresee: the segment contains nobody
            self.archived = True
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
                if len(weight) == 2:  # an imported scheme
                    kind, share = weight
                    if share(ctxs.get(kind)) is not None:
                        return True
                    continue
                kind, get, prefix, share = weight
                b = ctxs.get(kind)
                if b is None:
                    continue
                text = bucket_text(get(b))
                if text is not None and _hash(prefix + text, 0, False) % TOTAL < share:
                    return True
        return False


class CompiledFlag:
    """A flag prepared for fast evaluation.

    ``const`` is set when the flag serves the same thing to everyone (off, or on without targets, rules,
    prerequisites or a rollout); otherwise ``run`` evaluates it, unless ``error`` says it cannot be.
    ``fast(context, key)`` is ``run`` for a context that is one plain user dict with the string key ``key``, for
    a flag without prerequisites (else ``None``): the client's typed accessors call it directly.
    ``plan`` is the same flag as data, when it is made only of what the compiled accessors
    (``flagstream._accel``) evaluate themselves -- user targets, string ``in`` clauses on user attributes,
    variations and rollouts by the user's key -- else ``None``; see :class:`_Generator` for its shape.
    """

    __slots__ = (
        "archived", "bools", "const", "error", "fast", "flag", "key", "malformed", "on", "plan", "problems", "run",
        "strings", "timed",
    )  # fmt: skip

    def __init__(self, flag: Flag, segments: Mapping[str, CompiledSegment]) -> None:
        self.flag = flag
        self.key = flag.key
        self.on = flag.on
        self.archived = flag.archived
        self.const: _Outcome | None = None
        #: ``const``'s counters (``_Outcome.bools`` / ``.strings``), read by the accessors in one step.
        self.bools: Any = None
        self.strings: Any = None
        self.run: _Run | None = None
        self.fast: Callable[[Any, str], _Outcome] | None = None
        self.plan: Plan | None = None
        self.error: ErrorKind | None = None
        #: Reads the evaluation time (a clause, or a segment it names, has ``now``).
        self.timed = False
        try:
            self.problems = flag_problems(flag)
        except Exception as e:  # not even checkable (built in code with wrong types): refuse it
            self.problems = [Problem("$", f"cannot check this flag: {e!r}")]
        self.malformed = bool(self.problems)
        if self.archived:
            self.error = ErrorKind.FLAG_NOT_FOUND
            return
        if self.malformed:
            self.error = ErrorKind.MALFORMED_FLAG
            return
        try:
            self._compile(flag, segments)
            self._special(flag, segments)
        except Exception:  # a fault validation did not foresee: refuse the flag rather than fail later
            self.malformed = True
            self.error = ErrorKind.MALFORMED_FLAG
            self.const = self.run = self.fast = self.plan = None
        if self.const is not None:
            self.bools, self.strings = self.const.bools, self.const.strings

    def outcomes(self) -> list[_Outcome]:
        """Every outcome this flag can serve (each once): where the client's evaluation counts are."""
        found: dict[int, _Outcome] = {}
        items: list[Any] = [self.const]
        if self.run is not None:
            items += self.run.__defaults__ or ()
        for item in items:
            members = item.values() if type(item) is dict else item if type(item) is tuple else (item,)
            for o in members:
                if type(o) is _Outcome:
                    found[id(o)] = o
        return list(found.values())

    def _special(self, flag: Flag, segments: Mapping[str, CompiledSegment]) -> None:
        """Move a flag that can serve the caller's default, or reads the evaluation time, off the hot path."""
        clauses = [c for r in flag.rules for c in r.clauses]
        self.timed = any(c.now for c in clauses) or any(
            segments.get(k) is not None and segments[k].timed
            for c in clauses
            if c.op == "in_segment"
            for k in c.values
            if isinstance(k, str)
        )
        serves = [flag.fallthrough, *(r.serve for r in flag.rules)]
        if not (self.timed or flag.off_default or any(s.default for s in serves)):
            return
        const = self.const
        if const is not None:

            def run(flags: Any, context: Any, ctxs: Any, seq: int, depth: int) -> _Outcome:
                return const

            self.run, self.const = run, None
        self.error = SPECIAL  # type: ignore[assignment]
        self.fast = self.plan = None  # the accessors' short road knows neither the time nor the caller's default

    def _compile(self, flag: Flag, segments: Mapping[str, CompiledSegment]) -> None:
        values = {v.key: v.value for v in flag.variations}
        if flag.off_default:
            off = _Outcome(CALLER_DEFAULT, None, _OFF)
        else:
            off = _Outcome(values[flag.off_variation], flag.off_variation, _OFF)
        if not flag.on:
            self.const = off
            return
        if flag.fallthrough.default and not (flag.targets or flag.rules or flag.prerequisites):
            self.const = _Outcome(CALLER_DEFAULT, None, _FALLTHROUGH)
            return
        if not (flag.targets or flag.rules or flag.prerequisites) and flag.fallthrough.variation is not None:
            self.const = _Outcome(values[flag.fallthrough.variation], flag.fallthrough.variation, _FALLTHROUGH)
            return
        generator = _Generator(flag, values, off, segments)
        self.run = generator.build()
        self.fast = generator.fast
        self.plan = generator.plan


class _Generator:
    """Writes one evaluation function per flag, with every clause and rollout of the flag inlined.

    The source depends only on the flag's *shape* (how many prerequisites, targets kinds, rules, clauses and
    which are inlined); every value -- attribute names, kinds, sets, outcomes, salts -- is a constant bound as
    the default of a parameter (``c0``, ``c1``...), never written into the source. So the code object is
    compiled once per shape and shared by all flags of that shape (10,000 flags like the benchmark's: one
    compile), and constants are read as fast locals.
    """

    def __init__(
        self, flag: Flag, values: dict[str, Any], off: _Outcome, segments: Mapping[str, CompiledSegment]
    ) -> None:
        self.flag = flag
        self.values = values
        self.off = off
        self.segments = segments
        self.salt_dot = f"{flag.salt or flag.key}."
        self.consts: list[Any] = []
        self.lines: list[str] = []
        self.kinds: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.needs_cx = False
        #: ``fast(context, key)``: the same body for a plain user dict (see ``CompiledFlag.fast``), set by ``build``.
        self.fast: Callable[[Any, str], _Outcome] | None = None
        #: The flag as data (``CompiledFlag.plan``), set by ``build`` when every part of it can be one.
        self.plan: Plan | None = None

    def const(self, value: Any) -> str:
        if type(value) is str:  # interned, like the attribute names of a context written in code: an
            value = sys.intern(value)  # identity hit in the context's dict lookup, no string comparison
        self.consts.append(value)
        return f"c{len(self.consts) - 1}"

    def named(self, name: str, value: Any) -> str:
        """A constant used by many lines (a function of the hot path): one slot, a fast local."""
        if name not in self.names:
            self.names[name] = self.const(value)
        return self.names[name]

    def kind(self, kind: str) -> str:
        if kind not in self.kinds:
            self.kinds[kind] = f"k{len(self.kinds)}"
        return self.kinds[kind]

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def give(self, depth: int, outcome: str) -> None:
        self.emit(depth, f"return {outcome}")

    def serve(
        self, depth: int, s: Serve, reason: Reason, rollout_reason: Reason, known: frozenset[str]
    ) -> PlanServe | None:
        """Lines that return what ``s`` serves; a rollout that cannot bucket the context falls through.
        Returns the same as a ``Plan``'s part, or ``None`` if it cannot be one."""
        if s.default:
            self.give(depth, self.const(_Outcome(CALLER_DEFAULT, None, reason)))
            return None
        if s.variation is not None:
            served = _Outcome(self.values[s.variation], s.variation, reason)
            self.give(depth, self.const(served))
            return served
        r: Rollout = s.rollout  # type: ignore[assignment]
        outcomes = tuple(_Outcome(self.values[w.variation], w.variation, rollout_reason) for w in r.variations)
        k = self.kind(r.context_kind)
        weights = [w.weight for w in r.variations]
        if r.algorithm != FLAGSTREAM:  # an imported flag's own scheme (schemes.py): index of the variation
            pick = rollout_picker(
                r.algorithm, r.bucket_by, r.hash_prefix, weights, r.ranges, r.hash_version, r.fallback_by
            )
            self.emit(depth, f"i = {self.const(pick)}({k})")
            self.emit(depth, "if i is not None:")
            self.emit(depth + 1, f"o = {self.const(outcomes)}[i]")
            self.give(depth + 1, "o")
            return None
        by_key = r.bucket_by == "key" and r.context_kind == "user"  # a plain user dict's key: always a string
        if r.bucket_by == "key" and k in known:
            t = f"{k}['key']"  # a context's key is always a string
        else:
            t = "t"
            path = pointer(r.bucket_by)
            if path is None:
                self.emit(depth, f"v = {k}.get({self.const(r.bucket_by)}) if {k} is not None else None")
            else:  # a nested attribute, read as clauses read it
                self.emit(depth, f"v = _walk({k}, {self.const(path)}) if {k} is not None else None")
            self.emit(depth, "t = v if type(v) is str else _bucket_text(v)")
            self.emit(depth, "if t is not None:")
            depth += 1
        h = self.named("_hash", _hash)
        bucket = f"{h}({self.const(self.salt_dot)} + {t}, 0, False) % {TOTAL}"
        thresholds: tuple[float, ...] = cumulative(weights)
        if r.partial:  # the rest of the buckets: not served by this rollout
            thresholds += (float("inf"),)
            outcomes += (None,)  # type: ignore[assignment]
        picked = self.pick(depth, outcomes, thresholds, bucket)
        if r.partial:
            self.emit(depth, f"o = {picked}")
            self.emit(depth, "if o is not None:")
            self.give(depth + 1, "o")
        else:
            self.give(depth, picked)
        return (sys.intern(self.salt_dot), thresholds, outcomes) if by_key else None

    def pick(self, depth: int, outcomes: tuple[Any, ...], thresholds: tuple[float, ...], bucket: str) -> str:
        """An expression for ``outcomes[bisect_right(thresholds, bucket)]``: for a few thresholds a chain of
        comparisons (a call of ``bisect_right`` costs more than the rest of a two-way rollout)."""
        n = len(thresholds)
        if n <= 4 and len(outcomes) in (n, n + 1) and (len(outcomes) == n + 1 or thresholds[-1] >= TOTAL):
            names = [self.const(o) for o in outcomes]
            # With as many outcomes as thresholds, the bucket is always below the last one (it is < TOTAL).
            tests = thresholds if len(outcomes) == n + 1 else thresholds[:-1]
            if len(tests) == 1:  # one comparison: the bucket inline, not stored and read back
                return f"{names[0]} if {bucket} < {self.const(tests[0])} else {names[1]}"
            self.emit(depth, f"bk = {bucket}")
            chain = "".join(f"{names[i]} if bk < {self.const(t)} else " for i, t in enumerate(tests))
            return chain + names[len(tests)]
        return f"{self.const(outcomes)}[{self.named('_bisect', bisect_right)}({self.const(thresholds)}, {bucket})]"

    def condition(self, clause: Clause, known: set[str]) -> str:
        """A boolean expression for ``clause``; adds to ``known`` the kinds it proves present.

        Attribute clauses are inlined (the commonest, ``in`` with strings, down to a set lookup); ``exists``,
        ``in_segment`` and path attributes call their matcher with the contexts mapping ``cx``.
        """
        parts = string_in_parts(clause)
        if parts is not None:
            kind, attribute, strings, negate = parts
            k, s = self.kind(kind), self.const(strings)
            if len(strings) == 1:  # one value: a string comparison (interned: an identity hit) beats a set's
                test = f"{'!=' if negate else '=='} {self.const(next(iter(strings)))}"
            else:
                test = f"{'not in' if negate else 'in'} {s}"
            present = "" if k in known else f"{k} is not None and "
            known.add(k)
            return (
                f"{present}((v {test}) if type(v := {k}.get({self.const(attribute)})) is str"
                f" else _in_other(v, {s}, {negate}))"
            )
        general = attribute_parts(clause)
        if general is not None:
            kind, attribute, element, negate = general
            k, t = self.kind(kind), self.const(element)
            present = "" if k in known else f"{k} is not None and "
            known.add(k)
            single = f"not {t}(v)" if negate else f"{t}(v)"
            return (
                f"{present}(v := {k}.get({self.const(attribute)})) is not None and ({single}"
                f" if type(v) is not list and type(v) is not tuple else _any_element(v, {t}, {negate}))"
            )
        self.needs_cx = True
        return f"{self.const(compile_clause(clause, self.segments))}(cx)"

    def build(self) -> _Run:
        flag = self.flag
        off = self.off
        body = 1
        for p in flag.prerequisites:
            failed = self.const(
                _Outcome(off.value, off.variation, Reason(kind=ReasonKind.PREREQUISITE_FAILED, prerequisite_key=p.flag))
            )
            self.emit(body, f"if depth >= {MAX_PREREQUISITE_DEPTH}:")
            self.emit(body + 1, "raise _Cycle()")
            self.emit(body, f"pf = flags.get({self.const(p.flag)})")
            self.emit(body, "e = None if pf is None else pf.error")
            self.emit(body, "if pf is None or (e is not None and e is not _SPECIAL):")
            self.give(body + 1, failed)
            if p.require_on:  # LaunchDarkly: an off prerequisite fails, whatever it serves
                self.emit(body, "if not pf.on:")
                self.give(body + 1, failed)
            self.emit(body, "o = pf.const")
            self.emit(body, "if o is not None:")
            self.emit(body + 1, "got = o.variation")
            self.emit(body, "elif e is None:")
            self.emit(body + 1, "got = pf.run(flags, context, ctxs, seq, depth + 1).variation")
            self.emit(body, "else:")  # a prerequisite that reads the time or serves the caller's default
            self.emit(body + 1, "got = _special_run(flags, pf, context, ctxs, seq, depth + 1).variation")
            self.emit(body, f"if got != {self.const(p.variation)}:")
            self.give(body + 1, failed)

        tables: dict[str, dict[str, _Outcome]] = {}
        for t in flag.targets:
            table = tables.setdefault(t.context_kind, {})
            hit = _Outcome(self.values[t.variation], t.variation, _TARGET)
            for key in t.values:
                table.setdefault(key, hit)
        plannable = not flag.prerequisites and set(tables) <= {"user"}
        for kind, table in tables.items():
            k = self.kind(kind)
            self.emit(body, f"if {k} is not None:")
            self.emit(body + 1, f"o = {self.const(table)}.get({k}['key'])")
            self.emit(body + 1, "if o is not None:")
            self.give(body + 2, "o")

        rules: list[PlanRule] = []
        for i, rule in enumerate(flag.rules):
            depth = body
            known: set[str] = set()
            if rule.clauses:
                # One flat `and` (not nested ifs): any number of clauses, short-circuited left to right.
                self.emit(depth, "if " + " and ".join(f"({self.condition(c, known)})" for c in rule.clauses) + ":")
                depth += 1
            served = self.serve(
                depth,
                rule.serve,
                Reason(kind=ReasonKind.RULE_MATCH, rule_index=i, rule_id=rule.id),
                Reason(kind=ReasonKind.RULE_MATCH, rule_index=i, rule_id=rule.id, in_rollout=True),
                frozenset(known),
            )
            clauses = _plan_clauses(rule.clauses)
            if served is None or clauses is None:
                plannable = False
            else:
                rules.append((clauses, served))
        served = self.serve(body, flag.fallthrough, _FALLTHROUGH, _FALLTHROUGH_ROLLOUT, frozenset())
        if plannable and served is not None:
            self.plan = (tables.get("user"), tuple(rules), served)
        if flag.fallthrough.rollout is not None:
            #: A fallthrough rollout that cannot bucket the context serves the off variation.
            self.give(body, self.const(_Outcome(off.value, off.variation, _FALLTHROUGH)))

        head = []
        plain = []  # the head of ``fast``: the context is one plain user dict
        user = None
        for kind, k in self.kinds.items():
            if kind == "user":
                head.append(f"{k} = context if ctxs is None else ctxs.get({self.const(kind)})")
                user = k
            else:
                head.append(f"{k} = None if ctxs is None else ctxs.get({self.const(kind)})")
                plain.append(f"{k} = None")
        if self.needs_cx:
            c = self.const("user")
            head.append(f"cx = ctxs if ctxs is not None else {{{c}: context}}")
            plain.append(f"cx = {{{c}: context}}")
        params = "".join(f", c{i}=None" for i in range(len(self.consts)))
        source = "\n".join(
            [f"def run(flags, context, ctxs, seq, depth{params}):"] + ["    " + h for h in head] + self.lines
        )
        # The constants become the defaults of this flag's copy of the shared code: fast locals, 8 bytes each.
        template = _template(source)
        defaults = tuple(self.consts)
        if not flag.prerequisites:  # the body needs no other flag: the client's accessors call it directly
            self.fast = _fast(plain, self.lines, user, self.consts)
        return FunctionType(template.__code__, template.__globals__, "run", defaults)


#: ``fast``'s source names these builtins as constants too (a constant costs less than a builtin's name).
_BUILTINS = {"type": type, "str": str, "list": list, "tuple": tuple}
_NAMES = re.compile(r"\b(c\d+|type|str|list|tuple)\b")


def _fast(head: list[str], lines: list[str], user: str | None, consts: list[Any]) -> Callable[[Any, str], _Outcome]:
    """``fast(context, key)``: ``run``'s body for one plain user dict (``context``) whose key is ``key``.

    The user kind's attributes are ``context`` itself (never missing: no ``is not None`` test) and its key is the
    argument (the accessor has read it already). Every constant -- ``c0``, ``c1``... and the builtins ``type``,
    ``str``, ``list``, ``tuple`` -- is written as a placeholder literal, and this flag's copy of the shared code
    object gets the real values in its ``co_consts``: ``LOAD_CONST``, nothing copied into the frame per call
    (``run`` passes its constants as parameter defaults, which every call copies: ~18 instructions each).
    """
    body = "\n".join(["def fast(context, key):"] + ["    " + h for h in head] + lines)
    if user is not None:
        u = re.escape(user)
        body = re.sub(rf"\b{u}\['key'\]", "key", body)
        body = re.sub(rf"\b{u} is not None and ", "", body)
        body = re.sub(rf"if {u} is not None else None", "", body)
        body = re.sub(rf"if {u} is not None:", "if True:", body)
        body = re.sub(rf"\b{u}\b", "context", body)
    body = _NAMES.sub(lambda m: repr("\0" + m.group(1)), body)
    template = _template(body, "fast")
    values = {"\0" + name: value for name, value in _BUILTINS.items()}
    values.update((f"\0c{i}", value) for i, value in enumerate(consts))
    code = template.__code__
    code = code.replace(co_consts=_filled(code.co_consts, values))
    return FunctionType(code, template.__globals__, "fast")


def _filled(consts: tuple[Any, ...], values: dict[str, Any]) -> tuple[Any, ...]:
    """``consts`` with each placeholder replaced by its value (also inside tuples: a dict display's keys)."""
    out = []
    for c in consts:
        if type(c) is str and c[:1] == "\0":
            c = values[c]
        elif type(c) is tuple:
            c = _filled(c, values)
        out.append(c)
    return tuple(out)


_TEMPLATES: dict[str, FunctionType] = {}
_GLOBALS: dict[str, Any] = {
    "_bucket_text": bucket_text,
    "_in_other": in_other,
    "_any_element": any_element,
    "_walk": walk,
    "_SPECIAL": SPECIAL,
}


_FILENAME = "<flagstream-flag>"


def _quiet_placeholders() -> None:
    """Ignore the compiler's SyntaxWarnings about ``fast``'s placeholders (a called or ``is``-compared string
    literal), for this code's file name only. A filter added once and left in place (``catch_warnings`` would
    save and restore the process's filters around each compile, racing with other threads); added again if
    something reset the filters since."""
    module = re.escape(_FILENAME)
    for f in warnings.filters:
        if f[0] == "ignore" and f[2] is SyntaxWarning and f[3] is not None and f[3].pattern == module:
            return
    warnings.filterwarnings("ignore", category=SyntaxWarning, module=module)


def _template(source: str, name: str = "run") -> FunctionType:
    """The compiled function ``name`` of ``source``, whose code every flag of the same shape shares."""
    template = _TEMPLATES.get(source)
    if template is None:
        namespace: dict[str, Any] = dict(_GLOBALS, _Cycle=_Cycle, _special_run=_special_run)
        _quiet_placeholders()
        exec(compile(source, _FILENAME, "exec"), namespace)
        template = namespace[name]
        if len(_TEMPLATES) >= 4096:
            _TEMPLATES.clear()
        _TEMPLATES[source] = template
    return template


def compile_segment(segment: Segment, segments: Mapping[str, CompiledSegment] | None = None) -> CompiledSegment:
    """``segments`` resolves the segments named by ``segment``'s clauses when evaluated (missing: empty)."""
    return CompiledSegment(segment, segments)


def compile_segments(segments: Mapping[str, Segment]) -> dict[str, CompiledSegment]:
    """Every segment of an environment, each able to name the others; those on a cycle contain nobody."""
    compiled: dict[str, CompiledSegment] = {}
    for key, segment in segments.items():
        compiled[key] = CompiledSegment(segment, compiled)
    valid = {k: s for k, s in segments.items() if not compiled[k].archived}  # checkable: validation passed
    for key in cyclic_segments(valid):
        compiled[key].archived = True
    names = {k: segment_references(s) for k, s in valid.items() if not compiled[k].archived}
    changed = True
    while changed:  # a segment naming a timed segment reads the time too
        changed = False
        for key, named in names.items():
            c = compiled[key]
            if not c.timed and any(compiled.get(k) is not None and compiled[k].timed for k in named):
                c.timed = changed = True
    return compiled


def compile_flag(flag: Flag, segments: Mapping[str, CompiledSegment]) -> CompiledFlag:
    return CompiledFlag(flag, segments)


def _special_run(
    flags: Mapping[str, CompiledFlag],
    flag: CompiledFlag,
    context: Any,
    ctxs: Any,
    seq: int,
    depth: int,
    now: Any = None,
) -> EvaluationDetail:
    """Run a SPECIAL flag: with the evaluation time in the contexts if it reads it (``now``, else the clock of
    ``flags``, else none: its time clauses then do not match). Its caller's-default outcomes keep the
    CALLER_DEFAULT value here: :func:`evaluate` puts the caller's default in."""
    if ctxs is None:
        ctxs = normalize(context)
        if ctxs is None:
            raise _Malformed()
    if flag.timed and NOW not in ctxs:
        if now is None:
            clock = getattr(flags, "clock", None)
            now = clock() if clock is not None else None
        if now is not None:
            ctxs = {**ctxs, NOW: now}
    o = flag.run(flags, context, ctxs, seq, depth)  # type: ignore[misc]
    d = o.last
    return d if d.seq == seq else o.at(seq)


class _Malformed(Exception):
    """The context is malformed (found while running a SPECIAL flag)."""


def evaluate(
    flags: Mapping[str, CompiledFlag], key: str, context: Any, default: Any, seq: int = 0, now: float | None = None
) -> EvaluationDetail:
    """Evaluate flag ``key`` for ``context``; never raises.

    Unknown or archived flags give ``default`` with FLAG_NOT_FOUND, invalid flags MALFORMED_FLAG, a context
    that is not one of the accepted shapes (see :mod:`flagstream.context`) MALFORMED_CONTEXT.

    ``now`` (epoch milliseconds) is the evaluation time for clauses that read it (``Clause.now``); by default
    the clock of ``flags`` (``Ruleset.clock``: the SDK's wall clock, time travel's instant), if it has one.
    """
    try:
        flag = flags.get(key)
        if flag is None:
            return error_detail(default, ErrorKind.FLAG_NOT_FOUND, seq)
        # A plain dict with a string key is one user context: used as is (ctxs None), nothing allocated.
        plain = type(context) is dict and "kind" not in context and type(context.get("key")) is str
        o = flag.const
        if o is not None:  # serves the same to everyone (never set on an archived or malformed flag)
            if not plain and normalize(context) is None:
                return error_detail(default, ErrorKind.MALFORMED_CONTEXT, seq)
            d = o.last
            return d if d.seq == seq else o.at(seq)
        if flag.error is not None:
            if flag.error is SPECIAL:
                d = _special_run(flags, flag, context, None, seq, 0, now)
                if d.value is CALLER_DEFAULT:
                    return EvaluationDetail(value=default, variation=None, reason=d.reason, seq=seq)
                return d
            return error_detail(default, flag.error, seq)
        if plain:
            ctxs = None
        else:
            ctxs = normalize(context)
            if ctxs is None:
                return error_detail(default, ErrorKind.MALFORMED_CONTEXT, seq)
        o = flag.run(flags, context, ctxs, seq, 0)  # type: ignore[misc]
        d = o.last
        return d if d.seq == seq else o.at(seq)
    except _Cycle:
        return error_detail(default, ErrorKind.MALFORMED_FLAG, seq)
    except _Malformed:
        return error_detail(default, ErrorKind.MALFORMED_CONTEXT, seq)
    except Exception:
        return error_detail(default, ErrorKind.EXCEPTION, seq)
