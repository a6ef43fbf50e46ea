"""Static check for regular expressions that can backtrack catastrophically: pure, no I/O.

Python's ``re`` is a backtracking engine: a pattern that can match the same text in many ways takes
exponential (or high polynomial) time on a string that almost matches. A clause regex runs inside every
application's evaluation, so such a pattern is refused when the flag is written. The check walks the parse tree
of ``re`` itself; in every repetition that can run more than once (``*``, ``+``, ``{n}`` with n > 1) it refuses
(each a classic ReDoS form):

1. a quantifier of variable count that can also match what follows it, in this pass or at the start of the
   next one: ``(a+)+``, ``(a*)*b``, ``(\\w+\\s?)*``, ``(.*a){12}`` (polynomial of degree 12);
   ``(\\d+\\.){3}`` and ``(\\.\\d+)*`` are fine, the dot stops the digits;
2. alternatives that can start alike, each followed by what follows the alternation: ``(a|a)*``, ``(a|aa)+``,
   ``(.|.a?)*``; ``(a|ab)*c`` and ``(foo|bar)*`` are fine;
3. an unbounded quantifier nested in an unbounded repetition where (1) could not show it unambiguous (inside
   an alternative, say: ``(x|a+)*``).

Character sets are approximated over ASCII (``\\d``, ``\\w``, ``\\s``, ranges); anything wider (``.``,
negated sets, Unicode categories) counts as "any character", which only makes the check stricter.
"""

from __future__ import annotations

import string
from typing import Any

try:
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser as sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as c  # type: ignore[no-redef]
    import sre_parse as sre  # type: ignore[no-redef]

#: Any character (a set too wide to enumerate).
ANY: frozenset[int] | None = None
CharSet = frozenset[int] | None

_REPEATS = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}
_UNBOUNDED = 100  # a counted repeat above this many counts as unbounded
_CATEGORIES: dict[Any, frozenset[int]] = {
    c.CATEGORY_DIGIT: frozenset(map(ord, string.digits)),
    c.CATEGORY_WORD: frozenset(map(ord, string.ascii_letters + string.digits + "_")),
    c.CATEGORY_SPACE: frozenset(map(ord, string.whitespace)),
}


def backtracking_problem(pattern: str) -> str | None:
    """Why ``pattern`` can backtrack catastrophically, or ``None``. ``pattern`` must compile with ``re``."""
    return _walk(list(sre.parse(pattern)), 0)


def _unbounded(hi: int) -> bool:
    return hi == c.MAXREPEAT or hi > _UNBOUNDED


def _walk(items: list[Any], depth: int, safe: frozenset[int] = frozenset()) -> str | None:
    """Check ``items``; ``depth`` counts the unbounded repetitions around them; ``safe`` holds the ids of the
    quantifiers their enclosing repetition showed unambiguous (they cannot match what follows them)."""
    for op, av in items:
        problem: str | None = None
        if op in _REPEATS:
            _lo, hi, sub = av
            sub = list(sub)
            if _unbounded(hi) and depth and id(av) not in safe:
                return "nested quantifiers (like (a+)+) can take exponential time; rewrite the expression"
            inner: frozenset[int] = frozenset()
            if hi > 1:
                problem, inner = _check_body(sub)
            problem = problem or _walk(sub, depth + _unbounded(hi), inner)
        elif op is c.SUBPATTERN:
            problem = _walk(list(av[-1]), depth, safe)
        elif op is c.BRANCH:
            for branch in av[1]:
                problem = problem or _walk(list(branch), depth)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            problem = _walk(list(av[1]), depth)
        if problem:
            return problem
    return None


def _flatten(items: list[Any]) -> list[Any]:
    """``items`` with groups opened up (a group's items are part of the sequence)."""
    out: list[Any] = []
    for op, av in items:
        if op is c.SUBPATTERN:
            out.extend(_flatten(list(av[-1])))
        else:
            out.append((op, av))
    return out


def _scan(items: list[Any], cont: First, seen: list[Any], ambiguous: list[Any], forks: list[Any]) -> None:
    """Note in ``seen`` every quantifier of ``items`` (followed by ``cont``), in ``ambiguous`` those of variable
    count that can also match what follows them, in ``forks`` the alternations whose branches (each followed
    by what follows the alternation) can start alike."""
    items = list(items)
    for i, (op, av) in enumerate(items):
        follow = _first(items[i + 1 :], cont)
        if op in _REPEATS:
            seen.append(av)
            lo, hi, sub = av
            if hi > lo and _overlap((_chars(list(sub)), False), follow):
                ambiguous.append(av)
            inner = _union(_first(list(sub), _EMPTY), follow) if hi > 1 else follow
            _scan(list(sub), inner, seen, ambiguous, forks)
        elif op is c.SUBPATTERN:
            _scan(list(av[-1]), follow, seen, ambiguous, forks)
        elif op is c.BRANCH:
            starts = [_first(list(branch), follow) for branch in av[1]]
            if any(_overlap(x, y) for j, x in enumerate(starts) for y in starts[j + 1 :]):
                forks.append(av)
            for branch in av[1]:
                _scan(list(branch), follow, seen, ambiguous, forks)


def _check_body(body: list[Any]) -> tuple[str | None, frozenset[int]]:
    """A repeated body: why it can backtrack catastrophically (or None), and the ids of its unambiguous
    quantifiers. A pass is followed by the next pass, which starts with the body again."""
    seen: list[Any] = []
    ambiguous: list[Any] = []
    forks: list[Any] = []
    _scan(body, _first(body, _EMPTY), seen, ambiguous, forks)
    problem = None
    if forks:
        problem = (
            "alternatives that can match the same text inside a repetition (like (a|a)* or (.|ab)*) can take "
            "exponential time; rewrite the expression"
        )
    elif ambiguous:
        problem = (
            "a repeated group whose quantifier can also match what follows it (like (.*a){12} or (a+)+) can "
            "take exponential or polynomial time; rewrite the expression"
        )
    bad = {id(av) for av in ambiguous}
    return problem, frozenset(id(av) for av in seen if id(av) not in bad)


#: The first characters a match can start with, and whether it can match the empty string.
First = tuple[CharSet, bool]
_EMPTY: First = (frozenset(), True)


def _union(a: First, b: First) -> First:
    chars = ANY if a[0] is ANY or b[0] is ANY else a[0] | b[0]  # type: ignore[operator]
    return chars, a[1] or b[1]


def _overlap(a: First, b: First) -> bool:
    """Whether two matches can start alike: a shared first character, or both can be empty."""
    if a[1] and b[1]:
        return True
    if a[0] is ANY:
        return b[0] is ANY or bool(b[0])
    if b[0] is ANY:
        return bool(a[0])
    return bool(a[0] & b[0])


def _first(items: list[Any], cont: First) -> First:
    """What a match of ``items`` followed by something starting with ``cont`` can start with."""
    chars: First = (frozenset(), False)
    for op, av in items:
        here = _item_first(op, av)
        chars = _union(chars, (here[0], False))
        if not here[1]:
            return chars
    return _union(chars, cont)


def _item_first(op: Any, av: Any) -> First:
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
        return _EMPTY
    if op in _REPEATS:
        chars, nullable = _first(list(av[2]), _EMPTY)
        return chars, nullable or av[0] == 0
    if op is c.SUBPATTERN:
        return _first(list(av[-1]), _EMPTY)
    if op is c.BRANCH:
        out: First = (frozenset(), False)
        for branch in av[1]:
            out = _union(out, _first(list(branch), _EMPTY))
        return out
    return _item_chars(op, av), False


def _chars(items: list[Any]) -> CharSet:
    """Every character any part of ``items`` can match."""
    chars: set[int] = set()
    for op, av in _flatten(items):
        if op in _REPEATS:
            here = _chars(list(av[2]))
        elif op is c.BRANCH:
            here = frozenset()
            for branch in av[1]:
                sub = _chars(list(branch))
                if sub is ANY:
                    return ANY
                here = here | sub
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue
        else:
            here = _item_chars(op, av)
        if here is ANY:
            return ANY
        chars |= here  # type: ignore[arg-type]
    return frozenset(chars)


def _item_chars(op: Any, av: Any) -> CharSet:
    if op is c.LITERAL:
        return frozenset((av,))
    if op is c.IN:
        chars: set[int] = set()
        for kind, value in av:
            if kind is c.LITERAL:
                chars.add(value)
            elif kind is c.RANGE and value[1] - value[0] <= 256:
                chars.update(range(value[0], value[1] + 1))
            elif kind is c.CATEGORY and value in _CATEGORIES:
                chars |= _CATEGORIES[value]
            else:  # NEGATE, a wide range, a negated or Unicode category
                return ANY
        return frozenset(chars)
    return ANY  # ANY, NOT_LITERAL, GROUPREF, ...
