"""Conditions of other systems as boolean formulas over Flagstream clauses, and their lowering to flag rules and
segment rules. Pure: no I/O.

Flagsmith nests ``ALL``/``ANY``/``NONE`` rules and GrowthBook has ``$and``/``$or``/``$nor``/``$not``; Flagstream has
rules that AND their clauses, several rules (of a flag or a segment) OR-ed, and segments that name segments
(``in_segment``, negated or not). A formula is lowered to those exactly: ``Or`` becomes several rules, ``And``
the product of its parts' alternatives (a part with many alternatives moves to a helper segment instead, so the
product stays small), ``Not`` a negated ``in_segment`` of a helper segment holding what it negates (so it also
holds for contexts without the attribute, as a negation does there). A :class:`Share` (a sticky percentage)
becomes a segment rule's weight.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Union

from ...events import Clause, Operator, Segment, SegmentRule
from .common import Unmappable, key_for


@dataclass(frozen=True)
class Share:
    """A segment rule's sticky percentage (``SegmentRule`` fields ``weight``, ``algorithm``...)."""

    weight: int
    bucket_by: str
    algorithm: str
    hash_prefix: str
    hash_version: int = 0
    ranges: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class And:
    items: tuple[Formula, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Formula, ...]


@dataclass(frozen=True)
class Not:
    item: Formula


Formula = Union[bool, Clause, Share, And, Or, Not]  # noqa: UP007 - a runtime alias for the dataclasses above


def all_of(*items: Formula) -> Formula:
    out: list[Formula] = []
    for f in items:
        if f is True:
            continue
        if f is False:
            return False
        out.extend(f.items if isinstance(f, And) else (f,))
    return True if not out else out[0] if len(out) == 1 else And(tuple(out))


def any_of(*items: Formula) -> Formula:
    out: list[Formula] = []
    for f in items:
        if f is False:
            continue
        if f is True:
            return True
        out.extend(f.items if isinstance(f, Or) else (f,))
    return False if not out else out[0] if len(out) == 1 else Or(tuple(out))


def negation(f: Formula) -> Formula:
    if isinstance(f, bool):
        return not f
    if isinstance(f, Not):
        return f.item
    return Not(f)


Conjunction = list[Clause | Share]


class Lowering:
    """Lowers formulas to rules; the helper segments it needs are in ``segments`` (in the order to write them:
    each before those naming it), keyed ``{base}--{n}``."""

    def __init__(self, base: str, taken: set[str], *, limit: int = 16, description: str = "") -> None:
        self.base = base
        self.taken = taken
        self.limit = limit
        self.description = description
        self.segments: list[Segment] = []
        self._made: dict[str, str] = {}

    def helper(self, f: Formula, *, negate: bool = False) -> Clause:
        """An ``in_segment`` clause on a segment holding exactly the contexts ``f`` holds (made once per ``f``)."""
        key = self._made.get(repr(f))
        if key is None:
            rules = self.segment_rules(f)
            key = key_for(f"{self.base}--{len(self.segments) + 1}", self.taken)
            self.segments.append(
                Segment(key=key, name=key, description=self.description or f"part of {self.base}", rules=rules)
            )
            self._made[repr(f)] = key
        return Clause(op=Operator.IN_SEGMENT, values=(key,), negate=negate)

    def dnf(self, f: Formula) -> list[Conjunction]:
        if f is True:
            return [[]]
        if f is False:
            return []
        if isinstance(f, Clause | Share):
            return [[f]]
        if isinstance(f, Or):
            out: list[Conjunction] = []
            for item in f.items:
                out += self.dnf(item)
            return out
        if isinstance(f, Not):
            return [[self.helper(f.item, negate=True)]]
        assert isinstance(f, And)
        parts = [self.dnf(item) for item in f.items]
        while _product_size(parts) > self.limit:
            j = max(range(len(parts)), key=lambda i: len(parts[i]))
            parts[j] = [[self.helper(f.items[j])]]
        return [[x for conj in combo for x in conj] for combo in itertools.product(*parts)]

    def segment_rules(self, f: Formula) -> tuple[SegmentRule, ...]:
        """The rules of a segment holding exactly the contexts ``f`` holds."""
        conjunctions = self.dnf(f)
        if len(conjunctions) > 500:
            raise Unmappable("$", f"a condition with {len(conjunctions)} alternatives (at most 500 rules)")
        rules = []
        for i, conj in enumerate(conjunctions):
            clauses = [c for c in conj if isinstance(c, Clause)]
            shares = [s for s in conj if isinstance(s, Share)]
            clauses += [self.helper(s) for s in shares[1:]]
            extra: dict[str, Any] = {}
            if shares:
                s = shares[0]
                extra = {
                    "weight": s.weight,
                    "bucket_by": s.bucket_by,
                    "algorithm": s.algorithm,
                    "hash_prefix": s.hash_prefix,
                    "hash_version": s.hash_version,
                    "ranges": s.ranges,
                }
            rules.append(SegmentRule(id=f"r{i}", clauses=self._few(clauses), **extra))
        return tuple(rules)

    def flag_conditions(self, f: Formula, *, inline: int = 4) -> list[tuple[Clause, ...]]:
        """The clauses of the flag rules (one per alternative) that together hold exactly the contexts ``f``
        holds; more than ``inline`` alternatives go to a helper segment (one rule naming it)."""
        conjunctions = self.dnf(f)
        if len(conjunctions) > inline:
            return [(self.helper(f),)]
        out = []
        for conj in conjunctions:
            clauses = [c if isinstance(c, Clause) else self.helper(c) for c in conj]
            out.append(self._few(clauses))
        return out

    def _few(self, clauses: list[Clause]) -> tuple[Clause, ...]:
        """At most 50 clauses in a rule: the rest in a helper segment."""
        if len(clauses) <= 50:
            return tuple(clauses)
        return (*clauses[:49], self.helper(all_of(*clauses[49:])))


def _product_size(parts: list[list[Conjunction]]) -> int:
    n = 1
    for p in parts:
        n *= len(p)
    return n
