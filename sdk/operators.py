"""Clause operators, compiled once into matcher closures: pure, no I/O.

A matcher takes the normalised contexts (``{kind: attributes}``) and returns whether the clause matches.
Semantics (docs/targeting.md has the full table):

* the attribute is looked up in the clause's context kind; ``key`` is the targeting key; an attribute name
  starting with ``/`` is a JSON-pointer-like path into nested objects (``/address/city``);
* a missing attribute (absent kind, absent attribute or ``null``) never matches, negated or not -- except for
  ``exists`` (negated: "absent") and ``in_segment`` (which looks at the whole context);
* a list-valued attribute matches if any element matches; an empty list matches nothing;
* a clause with several values matches if the attribute matches any of them;
* a value of the wrong type for the operator (a number for ``starts_with``, ``"abc"`` for ``lt``, an invalid
  semver or date) simply does not match;
* ``negate`` inverts the result whenever the attribute is present; ``not_in`` is a negated ``in``.

:func:`prepare_values` checks and converts a clause's values; the admin API's validation calls it too, so
what the engine accepts and what the API accepts cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import math
import operator as _pyop
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from .context import Contexts
from .events import Clause, Operator
from .linear_regex import Search, compile_search, regex_problem
from .schemes import js_number_text
from .semver import DIALECTS, parse_semver

Matcher = Callable[[Contexts], bool]
Test = Callable[[Any], bool]

#: Epoch numbers at or above this are milliseconds, below it seconds (1e11 s is the year 5138; 1e11 ms 1973).
EPOCH_MS_THRESHOLD = 1e11


class _Now:
    """The key of the evaluation time in the contexts mapping of a timed evaluation (no kind can equal it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOW"


#: ``contexts[NOW]``: the evaluation time, epoch milliseconds, set by the engine for flags that read it.
NOW: Any = _Now()
#: ``Clause.now`` values.
NOW_MODES = ("", "always", "if_absent")


class SegmentMembership(Protocol):
    def contains(self, contexts: Contexts) -> bool: ...


class ValueProblem(ValueError):
    """A clause value the operator cannot use; ``index`` is its position in ``values`` (None: the list)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


# ---------------------------------------------------------------------------------------------------------
# value parsing shared by clause values and context attributes
# ---------------------------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and not (type(v) is float and math.isnan(v))


@lru_cache(maxsize=4096)
def _parse_iso(text: str) -> float | None:
    try:
        dt = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp() * 1000.0


def parse_date(value: Any) -> float | None:
    """Milliseconds since the epoch (UTC) of an ISO-8601 string or an epoch number, else ``None``.

    Strings without a timezone are UTC. Numbers at or above 1e11 are epoch milliseconds, below it seconds.
    """
    t = type(value)
    if t is str:
        return _parse_iso(value) if len(value) <= 64 else None
    if t is int or t is float:
        try:
            ms = float(value) if abs(value) >= EPOCH_MS_THRESHOLD else float(value) * 1000.0
        except OverflowError:  # an integer too large for a float
            return None
        return ms if math.isfinite(ms) else None
    return None


# ---------------------------------------------------------------------------------------------------------
# values: checked and converted once per clause
# ---------------------------------------------------------------------------------------------------------

_STRING_OPS = {Operator.STARTS_WITH, Operator.ENDS_WITH, Operator.CONTAINS}
_NUMERIC_OPS = {Operator.LT, Operator.LTE, Operator.GT, Operator.GTE}
_SEMVER_OPS = {
    Operator.SEMVER_EQ,
    Operator.SEMVER_LT,
    Operator.SEMVER_LTE,
    Operator.SEMVER_GT,
    Operator.SEMVER_GTE,
}
_DATE_OPS = {Operator.BEFORE, Operator.AFTER}


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if type(value) is not str or len(value) > 64:
        return None
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


#: ``Clause.cast`` values.
CASTS = ("", "python", "js", "jsonlogic")
#: The operators a ``cast`` changes (the others read the attribute whole, as they otherwise would).
_CAST_OPS = {Operator.EQUALS, Operator.IN, Operator.NOT_IN, Operator.LT, Operator.LTE, Operator.GT, Operator.GTE}
_PYTHON_CAST_OPS = {*_CAST_OPS, Operator.CONTAINS, Operator.MATCHES}
_JSONLOGIC_CAST_OPS = {*_CAST_OPS, Operator.CONTAINS}
#: Operators a jsonlogic cast leaves as they are but for reading the attribute whole (a list is not a version).
_JSONLOGIC_WHOLE_OPS = {*_SEMVER_OPS, Operator.STARTS_WITH, Operator.ENDS_WITH}


def _cast_values(op: Operator, values: tuple[Any, ...], cast: str) -> tuple[Any, ...]:
    """The values of a clause with ``cast`` (see ``Clause.cast``); raises :class:`ValueProblem`."""
    if cast == "python":
        if op not in _PYTHON_CAST_OPS:
            raise ValueProblem(f"operator {op.value!r} has no python cast")
        if not all(type(v) is str for v in values):
            raise ValueProblem("a python cast compares text values")
        if op is Operator.MATCHES:
            out = []
            for i, v in enumerate(values):
                problem = regex_problem(v)
                if problem:
                    raise ValueProblem(problem, i)
                out.append(compile_search(v))
            return tuple(out)
    elif cast == "jsonlogic":
        if op not in _JSONLOGIC_CAST_OPS:
            raise ValueProblem(f"operator {op.value!r} has no jsonlogic cast")
        for i, v in enumerate(values):
            if v is None or not isinstance(v, str | int | float) or (type(v) is float and not math.isfinite(v)):
                raise ValueProblem("a jsonlogic cast compares texts, numbers and booleans", i)
        if op in _NUMERIC_OPS and not all(_is_number(v) for v in values):
            raise ValueProblem(f"operator {op.value!r} with a jsonlogic cast compares with a number")
        if op is Operator.CONTAINS and not all(type(v) is str for v in values):
            raise ValueProblem("'contains' with a jsonlogic cast looks for a text")
    elif op in _CAST_OPS:
        for i, v in enumerate(values):
            if v is None or not isinstance(v, str | int | float) or (type(v) is float and not math.isfinite(v)):
                raise ValueProblem("a js cast compares texts, numbers and booleans", i)
        if op in _NUMERIC_OPS and any(type(v) is bool for v in values):
            raise ValueProblem(f"operator {op.value!r} orders numbers or texts")
    if op in (Operator.IN, Operator.NOT_IN):
        return tuple(values)
    if len(values) != 1:
        raise ValueProblem(f"operator {op.value!r} with a cast takes exactly one value")
    return tuple(values)


def prepare_values(
    op: Operator, values: tuple[Any, ...], case_insensitive: bool = False, semver: str = "", cast: str = ""
) -> tuple[Any, ...]:
    """The clause's values converted for ``op``; raises :class:`ValueProblem` for an unusable value."""
    if op is Operator.EXISTS:
        return ()
    if not values:
        raise ValueProblem(f"operator {op.value!r} needs at least one value")
    if cast not in CASTS:
        raise ValueProblem(f"unknown cast {cast!r} (known: python, js, jsonlogic)")
    if cast and (op in _CAST_OPS or cast == "python" or (cast == "jsonlogic" and op not in _JSONLOGIC_WHOLE_OPS)):
        return _cast_values(op, values, cast)
    if op is Operator.EQUALS and len(values) != 1:
        raise ValueProblem("'equals' takes exactly one value (use 'in' for several)")
    if op in (Operator.IN, Operator.NOT_IN, Operator.EQUALS):
        return tuple(values)
    if op is Operator.MODULO:
        if len(values) != 2 or not all(_is_number(v) and math.isfinite(v) for v in values):
            raise ValueProblem("'mod' takes two numbers: [divisor, remainder]")
        if values[0] == 0:
            raise ValueProblem("the divisor of 'mod' cannot be 0", 0)
        return tuple(values)
    if op in _SEMVER_OPS and semver not in DIALECTS:
        raise ValueProblem(f"unknown semver dialect {semver!r} (known: {', '.join(repr(d) for d in DIALECTS)})")
    out: list[Any] = []
    for i, v in enumerate(values):
        if op in _STRING_OPS or op is Operator.IN_SEGMENT:
            if type(v) is not str:
                raise ValueProblem(f"operator {op.value!r} needs string values", i)
            out.append(v.casefold() if case_insensitive and op is not Operator.IN_SEGMENT else v)
        elif op is Operator.MATCHES:
            problem = regex_problem(v)
            if problem:
                raise ValueProblem(problem, i)
            out.append(compile_search(v, ignore_case=case_insensitive))
        elif op in _NUMERIC_OPS:
            if not _is_number(v):
                raise ValueProblem(f"operator {op.value!r} needs numeric values", i)
            out.append(v)
        elif op in _SEMVER_OPS:
            key = parse_semver(v, semver) if type(v) is str or semver == "flagd" else None
            if key is None:
                raise ValueProblem(f"{v!r} is not a semantic version", i)
            out.append(key)
        elif op is Operator.IN_CIDR:
            network = _network(v)
            if network is None:
                raise ValueProblem(f"{v!r} is not an IP address or a CIDR range", i)
            out.append(network)
        elif op in _DATE_OPS:
            ms = parse_date(v)
            if ms is None:
                raise ValueProblem(f"{v!r} is not an ISO-8601 date or an epoch number", i)
            out.append(ms)
        else:  # pragma: no cover - every operator is handled above
            raise ValueProblem(f"unknown operator {op!r}")
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------
# element tests: one attribute value (never None, never a list) -> bool
# ---------------------------------------------------------------------------------------------------------


def _typed_key(v: Any) -> tuple[int, Any]:
    # JSON equality: true is not 1, 1 is 1.0.
    if type(v) is bool:
        return (1, v)
    if type(v) is int or type(v) is float:
        return (2, v)
    return (0, v)


def _in_test(values: tuple[Any, ...], ci: bool) -> Test:
    hashable: list[Any] = []
    others: list[Any] = []
    for v in values:
        if v is None:
            continue
        if ci and type(v) is str:
            v = v.casefold()
        try:
            hash(v)
            hashable.append(v)
        except TypeError:
            others.append(v)
    if not others and all(type(v) is str for v in hashable):
        strings = frozenset(hashable)
        if ci:

            def test_ci(v: Any) -> bool:
                return type(v) is str and v.casefold() in strings

            return test_ci

        def test(v: Any) -> bool:
            return type(v) is str and v in strings

        return test
    keys = frozenset(_typed_key(v) for v in hashable)
    typed_others = tuple((type(v), v) for v in others)

    def test_any(v: Any) -> bool:
        if ci and type(v) is str:
            v = v.casefold()
        try:
            if _typed_key(v) in keys:
                return True
        except TypeError:
            pass
        return any(type(v) is t and v == o for t, o in typed_others)

    return test_any


def _string_test(op: Operator, values: tuple[str, ...], ci: bool) -> Test:
    fold = str.casefold if ci else None
    if op is Operator.STARTS_WITH:

        def starts(v: Any) -> bool:
            return type(v) is str and (fold(v) if fold else v).startswith(values)

        return starts
    if op is Operator.ENDS_WITH:

        def ends(v: Any) -> bool:
            return type(v) is str and (fold(v) if fold else v).endswith(values)

        return ends

    def contains(v: Any) -> bool:
        if type(v) is not str:
            return False
        s = fold(v) if fold else v
        return any(x in s for x in values)

    return contains


def _regex_test(searches: tuple[Search, ...]) -> Test:
    def matches(v: Any) -> bool:
        return type(v) is str and any(search(v) for search in searches)

    return matches


def _numeric_test(op: Operator, values: tuple[float, ...]) -> Test:
    if op in (Operator.LT, Operator.LTE):
        bound = max(values)
        if op is Operator.LT:
            return lambda v: (type(v) is int or type(v) is float) and v < bound
        return lambda v: (type(v) is int or type(v) is float) and v <= bound
    bound = min(values)
    if op is Operator.GT:
        return lambda v: (type(v) is int or type(v) is float) and v > bound
    return lambda v: (type(v) is int or type(v) is float) and v >= bound


def _semver_test(op: Operator, keys: tuple[Any, ...], dialect: str = "") -> Test:
    if dialect == "flagd":  # flagd reads numbers as versions too ("1" is 1.0.0)
        parse = parse_semver
    else:

        def parse(v: Any, dialect: str) -> Any:
            return parse_semver(v, dialect) if type(v) is str else None

    if op is Operator.SEMVER_EQ:
        wanted = frozenset(keys)

        def eq(v: Any) -> bool:
            k = parse(v, dialect)
            return k is not None and k in wanted

        return eq
    hi, lo = max(keys), min(keys)
    compare: Callable[[Any], bool] = {
        Operator.SEMVER_LT: lambda k: k < hi,
        Operator.SEMVER_LTE: lambda k: k <= hi,
        Operator.SEMVER_GT: lambda k: k > lo,
        Operator.SEMVER_GTE: lambda k: k >= lo,
    }[op]

    def cmp(v: Any) -> bool:
        k = parse(v, dialect)
        return k is not None and compare(k)

    return cmp


def _cidr_test(networks: tuple[Any, ...]) -> Test:
    def in_cidr(v: Any) -> bool:
        if type(v) is not str or len(v) > 64:
            return False
        try:
            address = ipaddress.ip_address(v.strip())
        except ValueError:
            return False
        return any(address in n for n in networks if n.version == address.version)

    return in_cidr


def _modulo_test(values: tuple[Any, ...]) -> Test:
    divisor, remainder = values

    def modulo(v: Any) -> bool:
        # As Flagsmith's engine: any Python int or float (booleans too, as 0 and 1), Python's %.
        if not isinstance(v, int | float):
            return False
        try:
            return v % divisor == remainder
        except (OverflowError, ValueError, ZeroDivisionError):
            return False

    return modulo


def _python_text(v: Any) -> Any:
    if type(v) is str:
        return v
    if isinstance(v, bool | int | float):
        try:
            return str(v)
        except ValueError:  # an integer with more digits than Python converts
            return None
    return v


def _js_text(v: Any) -> Any:
    if type(v) is str:
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        try:
            f = float(v)
        except OverflowError:
            return "Infinity" if v > 0 else "-Infinity"
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return js_number_text(f)
    return v


#: ``Clause.stringify``: how the text operators read a number or a boolean.
STRINGIFY: dict[str, Callable[[Any], Any]] = {"python": _python_text, "js": _js_text}


def _date_test(op: Operator, stamps: tuple[float, ...]) -> Test:
    if op is Operator.BEFORE:
        latest = max(stamps)

        def before(v: Any) -> bool:
            t = parse_date(v)
            return t is not None and t < latest

        return before
    earliest = min(stamps)

    def after(v: Any) -> bool:
        t = parse_date(v)
        return t is not None and t > earliest

    return after


_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DECIMAL_TEXT = re.compile(r"-?[0-9]+\.[0-9]+")


def _number_of_text(v: Any) -> Any:
    """Flagsmith's reading of a trait: a text that looks like an integer or a decimal is that number."""
    if type(v) is str and len(v) <= 4300:
        if _INTEGER_TEXT.fullmatch(v):
            return int(v)
        if _DECIMAL_TEXT.fullmatch(v):
            return float(v)
    return v


def clause_test(clause: Clause, op: Operator, values: tuple[Any, ...]) -> Test:
    """The element test of ``clause`` (its operator already resolved to ``op``, its values prepared). With a
    ``cast``, the test of the whole attribute value, ``negate`` included."""
    if clause.cast:
        negate = bool(clause.negate) is not (clause.op == Operator.NOT_IN)
        if clause.cast == "python":
            test = _python_cast_test(op, values, negate)
        elif clause.cast == "jsonlogic" and op in _JSONLOGIC_CAST_OPS:
            test = _jsonlogic_cast_test(op, values, negate)
        elif op in _CAST_OPS and clause.cast != "jsonlogic":
            test = _js_cast_test(op, values, negate)
        else:
            plain = element_test(op, values, clause.case_insensitive, clause.stringify, clause.semver)

            def test(v: Any) -> bool:
                return plain(v) is not negate

    else:
        test = element_test(op, values, clause.case_insensitive, clause.stringify, clause.semver)
    if not clause.numeric_strings:
        return test
    return lambda v: test(_number_of_text(v))


_NOT_COMPARABLE: Any = object()


def _cast_or_not(cast: Callable[[str], Any], text: str) -> Any:
    try:
        return cast(text)
    except (ValueError, TypeError, OverflowError):
        return _NOT_COMPARABLE


def _python_text_of(v: Any) -> Any:
    """Flagsmith's reading of a value that is not a text, number or boolean: its Python ``str()``."""
    if type(v) is list or type(v) is tuple or type(v) is dict:
        try:
            return str(v)
        except (ValueError, RecursionError):
            return None
    return v


def _python_cast_test(op: Operator, values: tuple[Any, ...], negate: bool) -> Test:
    """Flagsmith's typed comparison (flag_engine ``_context_value_typed``, ``IN``, ``NOT_CONTAINS``)."""
    if op in (Operator.IN, Operator.NOT_IN):
        strings = frozenset(values)

        def in_test(v: Any) -> bool:
            v = _python_text_of(v)
            if type(v) is int:
                try:
                    v = str(v)
                except ValueError:
                    return False
            if type(v) is not str:
                return False
            return (v in strings) is not negate

        return in_test
    if op is Operator.MATCHES:

        def matches(v: Any) -> bool:
            v = _python_text(_python_text_of(v))
            return type(v) is str and any(search(v) for search in values) is not negate

        return matches
    text = values[0]
    if op is Operator.CONTAINS:

        def contains(v: Any) -> bool:
            v = _python_text_of(v)
            return type(v) is str and (text in v) is not negate

        return contains
    casts = {
        bool: text not in ("False", "false"),
        int: _cast_or_not(int, text),
        float: _cast_or_not(float, text),
        str: text,
    }
    compare = {
        Operator.EQUALS: _pyop.eq,
        Operator.LT: _pyop.lt,
        Operator.LTE: _pyop.le,
        Operator.GT: _pyop.gt,
        Operator.GTE: _pyop.ge,
    }[op]

    def typed(v: Any) -> bool:
        v = _python_text_of(v)
        c = casts.get(type(v), _NOT_COMPARABLE)
        if c is _NOT_COMPARABLE:
            return False
        try:
            return bool(compare(v, c)) is not negate
        except (TypeError, ValueError):
            return False

    return typed


def _js_type(v: Any) -> int:
    t = type(v)
    if t is str:
        return 1
    if t is bool:
        return 2
    if t is int or t is float:
        return 3
    return 0


def _js_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` between an attribute value and a clause value (a text, number or boolean)."""
    return _js_type(a) == _js_type(b) != 0 and a == b


def _js_compare(a: Any, b: Any) -> int | None:
    """JavaScript's ordering of two numbers or two texts (UTF-16 units), else ``None`` (NaN too)."""
    ta = _js_type(a)
    if ta == 2 or ta == 0 or ta != _js_type(b):
        return None
    if ta == 3 and (a != a or b != b):
        return None
    if ta == 1 and not (a.isascii() and b.isascii()):
        a, b = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
    return (a > b) - (a < b)


def _js_cast_test(op: Operator, values: tuple[Any, ...], negate: bool) -> Test:
    """GrowthBook's comparisons (growthbook ``_js_strict_equal``, ``isIn``, ``compare``), the value whole."""
    if op in (Operator.IN, Operator.NOT_IN, Operator.EQUALS):
        many = op is not Operator.EQUALS

        def equal(v: Any) -> bool:
            if type(v) is list or type(v) is tuple:
                hit = many and any(_js_equal(x, c) for x in v for c in values)
            else:
                hit = any(_js_equal(v, c) for c in values)
            return hit is not negate

        return equal
    c = values[0]
    accept = {
        Operator.LT: lambda r: r < 0,
        Operator.LTE: lambda r: r <= 0,
        Operator.GT: lambda r: r > 0,
        Operator.GTE: lambda r: r >= 0,
    }[op]

    def order(v: Any) -> bool:
        r = _js_compare(v, c)
        return (r is not None and accept(r)) is not negate

    return order


def _jl_number(a: Any) -> Any:
    """``to_number`` of the JSON Logic flagd's Python evaluator runs (panzi-json-logic): Python's ``float()`` of
    a text (``inf`` texts NaN), a one-element list its element's, NaN for the rest."""
    if isinstance(a, int | float):
        return a
    if a is None:
        return 0
    if type(a) is list or type(a) is tuple:
        return 0 if not a else _jl_number(a[0]) if len(a) == 1 else math.nan
    if type(a) is str:
        if a.strip().lower() in ("inf", "-inf", "+inf"):
            return math.nan
        try:
            return float(a)
        except ValueError:
            return math.nan
    return math.nan


def _jl_text(a: Any) -> str:
    """``to_string`` of the same evaluator (JavaScript's ``String()`` for what a context holds)."""
    if type(a) is str:
        return a
    if a is True or a is False:
        return "true" if a else "false"
    if type(a) is float:
        return f"{a:.15g}"
    if type(a) is int:
        return str(a)
    if a is None:
        return "null"
    if type(a) is list or type(a) is tuple:
        return ",".join(_jl_text(x) for x in a)
    if isinstance(a, dict):
        return "[object Object]"
    return str(a)


def _jl_equals(a: Any, b: Any) -> bool:
    """JSON Logic's loose ``==`` as that evaluator computes it (``op_equals``): ``"18" == 18``, ``true == 1``."""
    if type(a) is type(b):
        return a is b if isinstance(a, list | dict) else bool(a == b)
    if isinstance(a, int | float):
        return bool(a == _jl_number(b))
    if isinstance(b, int | float):
        return bool(_jl_number(a) == b)
    if a is None or b is None:
        return False
    if isinstance(a, list | tuple | dict) and type(b) is str:
        return _jl_text(a) == b
    if type(a) is str and isinstance(b, list | tuple | dict):
        return a == _jl_text(b)
    return False


def _jsonlogic_cast_test(op: Operator, values: tuple[Any, ...], negate: bool) -> Test:
    """flagd's comparisons (its Python evaluator's JSON Logic), the attribute value whole: ``equals`` the loose
    ``==``; ``in`` a value among the values (Python's ``in``: ``true`` is ``1``); ``contains`` the text in a text
    attribute or among a list's elements; ``lt``...``gte`` against a number, the value read as one."""
    if op is Operator.EQUALS:
        c = values[0]
        if type(c) is str:  # the common case: a text attribute against a text, without the general rules
            return lambda v: (v == c if type(v) is str else _jl_equals(v, c)) is not negate
        return lambda v: _jl_equals(v, c) is not negate
    if op in (Operator.IN, Operator.NOT_IN):

        def member(v: Any) -> bool:
            hit = not isinstance(v, list | tuple | dict) and any(v == c for c in values)
            return hit is not negate

        return member
    if op is Operator.CONTAINS:
        needle = values[0]

        def contains(v: Any) -> bool:
            many = type(v) is list or type(v) is tuple
            hit = any(x == needle for x in v) if many else type(v) is str and needle in v
            return hit is not negate

        return contains
    c = values[0]
    compare: Callable[[Any, Any], bool] = {
        Operator.LT: lambda x, y: x < y,
        Operator.LTE: lambda x, y: x <= y,
        Operator.GT: lambda x, y: x > y,
        Operator.GTE: lambda x, y: x >= y,
    }[op]

    def order(v: Any) -> bool:
        return compare(_jl_number(v), c) is not negate

    return order


def element_test(
    op: Operator, values: tuple[Any, ...], case_insensitive: bool = False, stringify: str = "", semver: str = ""
) -> Test:
    """The test of one attribute value for ``op`` and already prepared ``values``."""
    if op in (Operator.IN, Operator.NOT_IN, Operator.EQUALS):
        return _in_test(values, case_insensitive)
    if op in _STRING_OPS or op is Operator.MATCHES:
        test = _string_test(op, values, case_insensitive) if op in _STRING_OPS else _regex_test(values)
        text = STRINGIFY.get(stringify)
        if text is None:
            return test
        return lambda v: test(text(v))
    if op in _NUMERIC_OPS:
        return _numeric_test(op, values)
    if op in _SEMVER_OPS:
        return _semver_test(op, values, semver)
    if op in _DATE_OPS:
        return _date_test(op, values)
    if op is Operator.IN_CIDR:
        return _cidr_test(values)
    if op is Operator.MODULO:
        return _modulo_test(values)
    raise ValueProblem(f"operator {op!r} has no element test")


# ---------------------------------------------------------------------------------------------------------
# attribute lookup and clause matchers
# ---------------------------------------------------------------------------------------------------------


def _pointer(attribute: str) -> tuple[str, ...] | None:
    if len(attribute) < 2 or attribute[0] != "/":
        return None
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in attribute[1:].split("/"))


def _walk(attrs: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    v: Any = attrs
    for p in path:
        if not isinstance(v, Mapping):
            return None
        v = v.get(p)
    return v


def _attribute_matcher(kind: str, attribute: str, test: Test, negate: bool) -> Matcher:
    path = _pointer(attribute)

    def match(ctxs: Contexts) -> bool:
        a = ctxs.get(kind)
        if a is None:
            return False
        v = a.get(attribute) if path is None else _walk(a, path)
        if v is None:
            return False
        if type(v) is list or type(v) is tuple:
            return any(map(test, v)) is not negate
        return test(v) is not negate

    return match


def _in_matcher(kind: str, attribute: str, strings: frozenset[str], negate: bool) -> Matcher:
    """The common case, inlined: ``in`` with string values, a plain attribute, case-sensitive."""

    def match(ctxs: Contexts) -> bool:
        a = ctxs.get(kind)
        if a is None:
            return False
        v = a.get(attribute)
        if type(v) is str:
            return (v in strings) is not negate
        if v is None:
            return False
        if type(v) is list or type(v) is tuple:
            return any(type(x) is str and x in strings for x in v) is not negate
        return negate

    return match


_SETS: dict[frozenset[str], frozenset[str]] = {}


def string_in_parts(clause: Clause) -> tuple[str, str, frozenset[str], bool] | None:
    """For the engine to inline the commonest clause -- ``in``/``not_in``/``equals`` with string values on a
    plain attribute, case-sensitive -- return (kind, attribute, values, negate); see :func:`in_other`."""
    try:
        op = Operator(clause.op)
    except ValueError:
        return None
    negate = bool(clause.negate)
    if op is Operator.NOT_IN:
        op, negate = Operator.IN, not negate
    if (
        op not in (Operator.IN, Operator.EQUALS)
        or clause.case_insensitive
        or clause.numeric_strings
        or clause.now
        or clause.cast
        or clause.attribute == "kind"
        or _pointer(clause.attribute) is not None
        or not clause.values
        or not all(type(v) is str for v in clause.values)
    ):
        return None
    # Interned: a flag's ``fast`` holds the set as a code constant, and making a code object interns the strings
    # of its frozenset constants, building a new set when one was not (a copy per flag instead of the shared one).
    strings = frozenset(sys.intern(v) for v in clause.values)
    # Flags often share their lists (["CA"], ["iOS"]...): keep one copy.
    if len(_SETS) >= 65_536:
        _SETS.clear()
    strings = _SETS.setdefault(strings, strings)
    return clause.context_kind, clause.attribute, strings, negate


def in_other(v: Any, strings: frozenset[str], negate: bool) -> bool:
    """An inlined string ``in`` clause, for an attribute value that is not a string."""
    if v is None:
        return False
    if type(v) is list or type(v) is tuple:
        return any(type(x) is str and x in strings for x in v) is not negate
    return negate


def _timed_matcher(kind: str, attribute: str, test: Test, negate: bool, mode: str, as_date: bool) -> Matcher:
    """A clause on the evaluation time (``Clause.now``): as a date (epoch ms) for the date operators, else as
    whole epoch seconds (flagd's ``$flagd.timestamp``). Without an evaluation time it does not match."""
    path = _pointer(attribute)

    def match(ctxs: Contexts) -> bool:
        v = None
        if mode == "if_absent":
            a = ctxs.get(kind)
            if a is not None:
                v = a.get(attribute) if path is None else _walk(a, path)
        if v is None:
            now = ctxs.get(NOW)
            if now is None:
                return False
            v = now if as_date else int(now // 1000)
        if type(v) is list or type(v) is tuple:
            return any(map(test, v)) is not negate
        return test(v) is not negate

    return match


def _whole_matcher(kind: str, attribute: str, test: Test) -> Matcher:
    """A clause with a ``cast``: the attribute value tested whole (a list is one value), ``negate`` in ``test``."""
    path = _pointer(attribute)

    def match(ctxs: Contexts) -> bool:
        a = ctxs.get(kind)
        if a is None:
            return False
        v = a.get(attribute) if path is None else _walk(a, path)
        return v is not None and test(v)

    return match


def _exists_matcher(kind: str, attribute: str, negate: bool) -> Matcher:
    path = _pointer(attribute)

    def match(ctxs: Contexts) -> bool:
        a = ctxs.get(kind)
        present = a is not None and (a.get(attribute) if path is None else _walk(a, path)) is not None
        return present is not negate

    return match


def _segment_matcher(keys: tuple[str, ...], segments: Mapping[str, SegmentMembership] | None, negate: bool) -> Matcher:
    """Segments are looked up when evaluated (a segment's clauses may name segments compiled after it); a key
    the mapping does not hold is an empty segment."""
    if segments is None:
        segments = {}

    def match(ctxs: Contexts) -> bool:
        for k in keys:
            s = segments.get(k)
            if s is not None and s.contains(ctxs):
                return not negate
        return negate

    return match


def _kind_matcher(test: Test, negate: bool) -> Matcher:
    """The attribute ``kind``: the clause tests the kinds of the context (any of a multi-context), as
    LaunchDarkly's ``kind`` clauses do; a plain context is ``user``."""

    def match(ctxs: Contexts) -> bool:
        return any(test(kind) for kind in ctxs) is not negate

    return match


def attribute_parts(clause: Clause) -> tuple[str, str, Test, bool] | None:
    """For the engine to inline an attribute clause: (kind, attribute, element test, negate), or ``None`` for
    ``exists``, ``in_segment`` and path attributes. Raises :class:`ValueProblem` like :func:`compile_clause`."""
    op = Operator(clause.op)
    negate = bool(clause.negate)
    if op is Operator.NOT_IN:
        op, negate = Operator.IN, not negate
    if op in (Operator.EXISTS, Operator.IN_SEGMENT) or clause.attribute == "kind" or _pointer(clause.attribute):
        return None
    if clause.now or clause.cast:
        return None
    values = prepare_values(op, tuple(clause.values), clause.case_insensitive, clause.semver)
    test = clause_test(clause, op, values)
    return clause.context_kind, clause.attribute, test, negate


def any_element(values: Any, test: Test, negate: bool) -> bool:
    """An inlined attribute clause, for a list-valued attribute: any element matches (then negated)."""
    return any(map(test, values)) is not negate


def compile_clause(clause: Clause, segments: Mapping[str, SegmentMembership] | None = None) -> Matcher:
    """A matcher for ``clause``; raises :class:`ValueProblem` if its values are unusable.

    ``segments`` resolves ``in_segment`` keys; a key it does not hold is an empty segment (matches nobody).
    """
    op = Operator(clause.op)
    negate = bool(clause.negate)
    if op is Operator.NOT_IN:
        op, negate = Operator.IN, not negate
    values = prepare_values(op, tuple(clause.values), clause.case_insensitive, clause.semver, clause.cast)
    kind, attribute = clause.context_kind, clause.attribute
    if op is Operator.EXISTS:
        return _exists_matcher(kind, attribute, negate)
    if op is Operator.IN_SEGMENT:
        return _segment_matcher(values, segments, negate)
    if clause.cast:
        return _whole_matcher(kind, attribute, clause_test(clause, op, values))
    if clause.now:
        return _timed_matcher(kind, attribute, clause_test(clause, op, values), negate, clause.now, op in _DATE_OPS)
    if attribute == "kind":
        return _kind_matcher(clause_test(clause, op, values), negate)
    if (
        op in (Operator.IN, Operator.EQUALS)
        and not clause.case_insensitive
        and not clause.numeric_strings
        and _pointer(attribute) is None
        and all(type(v) is str for v in values)
    ):
        return _in_matcher(kind, attribute, frozenset(values), negate)
    test = clause_test(clause, op, values)
    return _attribute_matcher(kind, attribute, test, negate)
