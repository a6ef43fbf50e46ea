"""flagd -> Flagstream: the flags of a flagd flag definition file mapped to flags that answer as flagd does
(docs/migration.md). Pure: no I/O except :func:`load_flagd` reading the file.

The evaluation context maps to one ``user`` context: ``targetingKey`` is the targeting key (``key``), other
fields are attributes of the same name (``a.b`` in ``var`` is the path ``/a/b``).

``targeting`` (JSON Logic, ``$ref`` to ``$evaluators`` resolved) maps when it is an ``if`` chain -- nested or
not -- whose conditions combine ``==``, ``!=``, ``in``, ``<``, ``<=``, ``>``, ``>=``, ``starts_with``,
``ends_with``, ``sem_ver``, ``!``, ``and`` and ``or`` over ``var`` and literals, and whose results are
variant names, ``null`` (the default variant) or ``fractional`` (bucketed with flagd's own hashing). Each
branch becomes rules (one per alternative of its condition), in order. Anything else is reported and the
flag is not imported.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import msgspec

from ...events import (
    WEIGHT_TOTAL,
    Clause,
    Flag,
    FlagKind,
    Operator,
    Rollout,
    Rule,
    Serve,
    Variation,
    WeightedVariation,
)
from ...schemes import FLAGD, FLAGD_V2, FLAGD_V2_CAT, FLAGD_V2_PAIR
from ...semver import parse_semver
from .common import ImportFileError, ImportResult, Unmappable, key_for, read_json

MAX_RULES = 64
MAX_INT32 = 2**31 - 1

#: A condition: ("atom", clause, matches_when_absent) | ("const", bool) | ("and"|"or", [conds]) | ("not", cond)
Cond = tuple[Any, ...]
TRUE: Cond = ("const", True)
Alternatives = list[tuple[Clause, ...]]

_COMPARE = {"<": Operator.LT, "<=": Operator.LTE, ">": Operator.GT, ">=": Operator.GTE}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDER = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
#: Clauses compare as flagd's JSON Logic does (``Clause.cast``).
JL = "jsonlogic"
_SEMVER = {"=": Operator.SEMVER_EQ, "<": Operator.SEMVER_LT, "<=": Operator.SEMVER_LTE, ">": Operator.SEMVER_GT,
           ">=": Operator.SEMVER_GTE}  # fmt: skip


#: How ``fractional`` buckets: ``v2``, flagd's current fractional (CBOR of the bucketing value, integer weights);
#: ``legacy``, the fractional of flagd before it (murmur3 of the text, percentages).
FRACTIONAL = ("v2", "legacy")


def load_flagd(path: str | Path, *, fractional: str = "v2") -> ImportResult:
    """Read and map a flagd flag definition file; :class:`ImportFileError` if it is not one."""
    doc = read_json(path)
    return import_flagd(doc, source=str(path), fractional=fractional)


def import_flagd(doc: Any, *, source: str = "flagd", fractional: str = "v2") -> ImportResult:
    """``fractional``: the flagd the flags come from buckets with its current fractional (``v2``, default) or
    the older one (``legacy``)."""
    if fractional not in FRACTIONAL:
        raise ValueError(f"fractional must be one of {FRACTIONAL}")
    if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
        raise ImportFileError(f"{source}: not a flagd flag definition (no 'flags' object)")
    evaluators = doc.get("$evaluators") or {}
    result = ImportResult(source=source)
    taken: set[str] = set()
    for name, definition in doc["flags"].items():
        subject, path = f"flag {name}", f"flags.{name}"
        before = len(result.notes)
        try:
            mapper = _FlagMapper(name, definition, evaluators, path, result, fractional)
            flag = mapper.flag(key_for(name, taken, "flag"))
        except Unmappable as e:
            del result.notes[before:]
            result.note("unmapped", subject, e.path, f"{e.message}; flag not imported")
            result.skipped.append(name)
            continue
        result.flags.append(flag)
        renamed = f" (key {flag.key})" if flag.key != name else ""
        result.note("mapped", subject, path, f"{'on' if flag.on else 'off'}, {len(flag.rules)} rule(s){renamed}")
    return result


class _FlagMapper:
    def __init__(self, name: str, d: Any, evaluators: Any, path: str, result: ImportResult, fractional: str) -> None:
        self.name, self.d, self.evaluators, self.path, self.result = name, d, evaluators, path, result
        self.keys: dict[str, str] = {}  # flagd variant name -> variation key
        self.fractional_mode = fractional
        self.cat = False  # the fractional's bucketing key is a cat
        #: What flagd serves for the default variant: it, or the caller's default when there is none.
        self.default = Serve(default=True)

    def note(self, severity: str, path: str, message: str) -> None:
        self.result.note(severity, f"flag {self.name}", path, message)  # type: ignore[arg-type]

    def flag(self, key: str) -> Flag:
        d, path = self.d, self.path
        if not isinstance(d, dict) or not isinstance(d.get("variants"), dict) or not d["variants"]:
            raise Unmappable(path, "a flag needs a variants object")
        taken: set[str] = set()
        for name in d["variants"]:
            self.keys[name] = key_for(str(name), taken, "variant")
        default = d.get("defaultVariant")
        if default is not None and default not in self.keys:
            raise Unmappable(f"{path}.defaultVariant", f"{default!r} is not one of the variants")
        if default is not None:
            self.default = Serve(variation=self.keys[default])
        state = d.get("state", "ENABLED")
        if state not in ("ENABLED", "DISABLED"):
            raise Unmappable(f"{path}.state", f"unknown state {state!r}")
        if not isinstance(d.get("targeting") or {}, dict):
            raise Unmappable(f"{path}.targeting", "targeting must be a JSON Logic object (flagd refuses it)")
        targeting = self.resolve(d.get("targeting") or {}, f"{path}.targeting", ())
        branches = [] if targeting == {} else self.branches(targeting, f"{path}.targeting")
        if not branches:
            branches = [(TRUE, self.default)]
        rules: list[Rule] = []
        *ruled, (last_cond, last_serve) = branches
        assert last_cond == TRUE
        for cond, serve in ruled:
            for clauses in dnf(cond):
                rules.append(Rule(id=f"r{len(rules)}", clauses=clauses, serve=serve))
        if len(rules) > MAX_RULES:
            raise Unmappable(f"{path}.targeting", f"expands to {len(rules)} rules (more than {MAX_RULES})")
        if state == "DISABLED":
            self.note("mapped", f"{path}.state", "DISABLED: off, serving the caller's default as flagd does")
        values = list(d["variants"].values())
        kind = (
            FlagKind.BOOLEAN if all(type(v) is bool for v in values)
            else FlagKind.STRING if all(type(v) is str for v in values)
            else FlagKind.NUMBER if all(type(v) in (int, float) for v in values)
            else FlagKind.JSON
        )  # fmt: skip
        return Flag(
            key=key,
            name=self.name,
            kind=kind,
            tags=("flagd",),
            on=state == "ENABLED",
            variations=tuple(Variation(key=k, value=d["variants"][n], name=str(n)) for n, k in self.keys.items()),
            off_variation=self.keys[default] if default is not None else next(iter(self.keys.values())),
            off_default=state == "DISABLED" or default is None,
            fallthrough=last_serve,
            rules=tuple(rules),
        )

    # -- $ref ----------------------------------------------------------------------------------------------

    def resolve(self, expr: Any, path: str, seen: tuple[str, ...]) -> Any:
        if isinstance(expr, list):
            return [self.resolve(x, path, seen) for x in expr]
        if not isinstance(expr, dict):
            return expr
        if set(expr) == {"$ref"}:
            ref = expr["$ref"]
            if ref in seen:
                raise Unmappable(path, f"$ref cycle: {' -> '.join((*seen, ref))}")
            if not isinstance(self.evaluators, dict) or ref not in self.evaluators:
                raise Unmappable(path, f"$ref to unknown evaluator {ref!r}")
            return self.resolve(self.evaluators[ref], f"$evaluators.{ref}", (*seen, ref))
        return {k: self.resolve(v, path, seen) for k, v in expr.items()}

    # -- results -------------------------------------------------------------------------------------------

    def branches(self, expr: Any, path: str) -> list[tuple[Cond, Serve]]:
        """Ordered (condition, serve) pairs covering every context: the last condition is TRUE."""
        if isinstance(expr, dict) and set(expr) == {"if"} and isinstance(expr["if"], list):
            args = expr["if"]
            out: list[tuple[Cond, Serve]] = []
            pairs, rest = len(args) // 2, args[-1] if len(args) % 2 else None
            for i in range(pairs):
                cond = self.cond(args[2 * i], f"{path}.if[{2 * i}]")
                for sub, serve in self.branches(args[2 * i + 1], f"{path}.if[{2 * i + 1}]"):
                    out.append((_and(cond, sub), serve))
            return out + self.branches(rest, f"{path}.if[{len(args) - 1}]")
        if expr is None:
            return [(TRUE, self.default)]
        if isinstance(expr, str):
            if expr not in self.keys:
                raise Unmappable(path, f"targeting returns {expr!r}, which is not one of the variants")
            return [(TRUE, Serve(variation=self.keys[expr]))]
        if isinstance(expr, dict) and set(expr) == {"fractional"}:
            serve = Serve(rollout=self.fractional(expr["fractional"], f"{path}.fractional"))
            # A context that cannot be bucketed (no bucketing value): flagd answers the default variant, while a
            # rule that cannot bucket does not apply here -- so the default variant follows, under the same
            # condition.
            return [(TRUE, serve), (TRUE, self.default)]
        raise Unmappable(path, f"targeting result {json.dumps(expr)[:80]} is not a variant, null, if or fractional")

    def fractional(self, args: Any, path: str) -> Rollout:
        if not isinstance(args, list) or not args:
            raise Unmappable(path, "fractional needs a list of [variant, weight]")
        prefix, bucket_by = self.name, "key"  # default bucketing key: flag key + targetingKey
        if not isinstance(args[0], list):
            prefix, bucket_by = self.bucketing_key(args[0], f"{path}[0]")
            args = args[1:]
        pairs: list[tuple[str, int]] = []
        for i, a in enumerate(args):
            if not (isinstance(a, list) and 1 <= len(a) <= 2 and isinstance(a[0], str)):
                raise Unmappable(f"{path}[{i}]", "a fractional bucket is [variant, weight]")
            weight = a[1] if len(a) == 2 else 1
            if a[0] not in self.keys:
                raise Unmappable(f"{path}[{i}]", f"{a[0]!r} is not one of the variants")
            if type(weight) is not int or weight < 0:
                raise Unmappable(f"{path}[{i}]", f"weight {weight!r} is not a whole number")
            pairs.append((a[0], weight))
        total = sum(w for _, w in pairs)
        if total <= 0:
            raise Unmappable(path, "fractional weights sum to 0")
        if len({n for n, _ in pairs}) != len(pairs):
            raise Unmappable(path, "a variant appears twice")
        if self.fractional_mode == "v2":
            return self.fractional_v2(pairs, total, prefix, bucket_by, path)
        if any(w * WEIGHT_TOTAL % total for _, w in pairs):
            raise Unmappable(path, f"weights {[w for _, w in pairs]} are not whole multiples of 0.001% (of {total})")
        merged: dict[str, int] = {}
        for name, w in pairs:
            if name in merged:
                raise Unmappable(path, f"variant {name!r} appears twice")
            merged[name] = w * WEIGHT_TOTAL // total
        weighted = tuple(WeightedVariation(variation=self.keys[n], weight=w) for n, w in merged.items())
        return Rollout(variations=weighted, bucket_by=bucket_by, algorithm=FLAGD, hash_prefix=prefix)

    def fractional_v2(
        self, pairs: list[tuple[str, int]], total: int, prefix: str, bucket_by: str, path: str
    ) -> Rollout:
        """flagd's current fractional: ``(murmur3(CBOR(value)) * total) >> 32`` against the running weights;
        the shorthand hashes ``[flagKey, targetingKey]``, a ``var`` its value itself."""
        if total > MAX_INT32:
            raise Unmappable(path, "fractional weights sum to more than 2^31 - 1 (flagd answers no variant)")
        ends = list(itertools.accumulate(w for _, w in pairs))
        ranges = tuple(zip((0, *ends[:-1]), ends, strict=True))
        weights = _nominal([w for _, w in pairs])
        weighted = tuple(
            WeightedVariation(variation=self.keys[n], weight=w) for (n, _), w in zip(pairs, weights, strict=True)
        )
        shorthand = not self.cat and prefix == self.name and bucket_by == "key"
        if self.cat:  # flagd hashes the text cat makes
            return Rollout(variations=weighted, bucket_by=bucket_by, algorithm=FLAGD_V2_CAT, hash_prefix=prefix,
                           ranges=ranges)  # fmt: skip
        return Rollout(variations=weighted, bucket_by=bucket_by, algorithm=FLAGD_V2_PAIR if shorthand else FLAGD_V2,
                       hash_prefix=self.name if shorthand else "", ranges=ranges)  # fmt: skip

    def bucketing_key(self, expr: Any, path: str) -> tuple[str, str]:
        """(prefix, attribute) of a custom bucketing key: ``{"var": x}`` or ``{"cat": [literals..., {"var": x}]}``."""
        self.cat = isinstance(expr, dict) and set(expr) == {"cat"}
        if isinstance(expr, dict) and set(expr) == {"cat"} and isinstance(expr["cat"], list) and expr["cat"]:
            *head, last = expr["cat"]
            prefix = ""
            for part in head:
                if isinstance(part, str):
                    prefix += part
                elif part == {"var": "$flagd.flagKey"}:
                    prefix += self.name
                else:
                    raise Unmappable(path, "cat: only text and $flagd.flagKey can come before the last part")
            return prefix, self.attribute(last, path)
        return "", self.attribute(expr, path)

    # -- conditions ----------------------------------------------------------------------------------------

    def attribute(self, expr: Any, path: str) -> str:
        if not (isinstance(expr, dict) and set(expr) == {"var"}):
            raise Unmappable(path, f"expected a var, got {json.dumps(expr)[:60]}")
        name = expr["var"]
        if isinstance(name, list) and len(name) == 1:
            name = name[0]
        if not isinstance(name, str) or not name:
            raise Unmappable(path, "var with a default value or a non-text name has no Flagstream equivalent")
        if name == "targetingKey":
            return "key"
        if name.startswith("$flagd."):
            raise Unmappable(path, f"{name}: the engine has no clock and no flag metadata in the context")
        return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in name.split(".")) if "." in name else name

    def cond(self, expr: Any, path: str) -> Cond:
        if isinstance(expr, bool):
            return ("const", expr)
        if not (isinstance(expr, dict) and len(expr) == 1):
            raise Unmappable(path, f"condition {json.dumps(expr)[:60]} is not an operation")
        ((op, args),) = expr.items()
        args = args if isinstance(args, list) else [args]
        where = f"{path}.{op}"
        if op == "var":
            raise Unmappable(where, "a bare var as a condition (JSON Logic truthiness) has no Flagstream equivalent")
        if op in ("and", "or"):
            return (op, [self.cond(a, f"{where}[{i}]") for i, a in enumerate(args)])
        if op == "!":
            return ("not", self.cond(args[0], f"{where}[0]"))
        if op in ("==", "===", "!=", "!=="):
            if len(args) != 2:
                raise Unmappable(where, f"{op} takes two arguments")
            flag_key = self.flag_key_compare(args)
            if flag_key is not None:
                return ("const", flag_key == (op in ("==", "===")))
            attr, literal = self.var_and_literal(args, where)
            if literal is None or isinstance(literal, list | dict):
                raise Unmappable(where, f"{op} with {json.dumps(literal)} has no Flagstream equivalent")
            if op in ("===", "!=="):  # strict: Python's == (true is 1 there too)
                atom: Cond = ("atom", Clause(attribute=attr, op=Operator.IN, values=(literal,), cast=JL), False)
            else:  # JSON Logic's loose ==: "18" == 18, true == 1; a missing attribute is null, == 0
                clause = Clause(attribute=attr, op=Operator.EQUALS, values=(literal,), cast=JL)
                atom = ("atom", clause, isinstance(literal, int | float) and literal == 0)
            return atom if op in ("==", "===") else ("not", atom)
        if op == "in":
            if len(args) != 2:
                raise Unmappable(where, "in takes two arguments")
            needle, haystack = args
            if isinstance(haystack, list) and all(isinstance(x, str | int | float) for x in haystack) and haystack:
                return ("atom", Clause(attribute=self.attribute(needle, where), op=Operator.IN,
                                       values=tuple(haystack), cast=JL), False)  # fmt: skip
            if isinstance(needle, str):
                attr = self.attribute(haystack, where)
                return ("atom", Clause(attribute=attr, op=Operator.CONTAINS, values=(needle,), cast=JL), False)
            raise Unmappable(where, "in: only a var in a list of literals, or a text in a var, can be mapped")
        if op in _COMPARE:
            if len(args) == 3 and op in ("<", "<="):  # between: a < x < b
                low, mid, high = args
                return ("and", [self.cond({op: [low, mid]}, where), self.cond({op: [mid, high]}, where)])
            if len(args) != 2:
                raise Unmappable(where, f"{op} takes two or three arguments")
            if _is_var(args[1]):
                args, op = [args[1], args[0]], _FLIP[op]
            number = args[1]
            if type(number) not in (int, float):
                raise Unmappable(where, f"{op} compares with {json.dumps(number)}: only numbers can be mapped")
            if args[0] == {"var": "$flagd.timestamp"}:  # the evaluation time, in whole seconds
                clause = Clause(attribute="$flagd.timestamp", op=_COMPARE[op], values=(number,), now="always")
                return ("atom", clause, False)
            # JSON Logic reads the value as a number (a missing attribute is null: 0), as flagd does.
            clause = Clause(attribute=self.attribute(args[0], where), op=_COMPARE[op], values=(number,), cast=JL)
            return ("atom", clause, _ORDER[op](0, number))
        if op in ("starts_with", "ends_with"):
            if len(args) != 2 or not isinstance(args[1], str):
                raise Unmappable(where, f"{op} takes a var and a text")
            ours = Operator.STARTS_WITH if op == "starts_with" else Operator.ENDS_WITH
            return (
                "atom",
                Clause(attribute=self.attribute(args[0], where), op=ours, values=(args[1],), cast=JL),
                False,
            )
        if op == "sem_ver":
            return self.sem_ver(args, where)
        raise Unmappable(where, f"JSON Logic operation {op!r} has no Flagstream equivalent")

    def sem_ver(self, args: list[Any], where: str) -> Cond:
        if len(args) != 3 or not isinstance(args[1], str) or not isinstance(args[2], str):
            raise Unmappable(where, "sem_ver takes a var, an operator and a version")
        attr, op, version = self.attribute(args[0], where), args[1], args[2]
        key = parse_semver(version, "flagd")
        if key is None:
            raise Unmappable(where, f"{version!r} is not a semantic version")

        def atom(operator: Operator, value: str) -> Cond:
            return ("atom", Clause(attribute=attr, op=operator, values=(value,), semver="flagd", cast=JL), False)

        if op in _SEMVER:
            return atom(_SEMVER[op], version)
        if op == "!=":  # flagd answers false for an invalid or missing version: valid and different
            return ("or", [atom(Operator.SEMVER_LT, version), atom(Operator.SEMVER_GT, version)])
        major, minor = key[0], key[1]
        if op == "^":  # same major version
            return (
                "and",
                [atom(Operator.SEMVER_GTE, f"{major}.0.0-0"), atom(Operator.SEMVER_LT, f"{major + 1}.0.0-0")],
            )
        if op == "~":  # same major and minor
            return (
                "and",
                [
                    atom(Operator.SEMVER_GTE, f"{major}.{minor}.0-0"),
                    atom(Operator.SEMVER_LT, f"{major}.{minor + 1}.0-0"),
                ],
            )
        raise Unmappable(where, f"unknown sem_ver operator {op!r}")

    def flag_key_compare(self, args: list[Any]) -> bool | None:
        """``$flagd.flagKey`` compared with a text: known now (True if equal), else None."""
        for a, b in (args, args[::-1]):
            if a == {"var": "$flagd.flagKey"} and isinstance(b, str):
                return b == self.name
        return None

    def var_and_literal(self, args: list[Any], where: str) -> tuple[str, Any]:
        if _is_var(args[0]) and not _is_var(args[1]):
            return self.attribute(args[0], where), args[1]
        if _is_var(args[1]) and not _is_var(args[0]):
            return self.attribute(args[1], where), args[0]
        raise Unmappable(where, "only a var compared with a literal can be mapped")


def _nominal(weights: list[int]) -> list[int]:
    """Shares of 100,000 summing to exactly 100,000 (largest remainder): the weights shown; ranges decide."""
    total = sum(weights)
    raw = [w * WEIGHT_TOTAL / total for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: WEIGHT_TOTAL - sum(out)]:
        out[i] += 1
    return out


def _is_var(expr: Any) -> bool:
    return isinstance(expr, dict) and set(expr) == {"var"}


def _and(a: Cond, b: Cond) -> Cond:
    if a == TRUE:
        return b
    if b == TRUE:
        return a
    return ("and", [a, b])


def dnf(cond: Cond) -> Alternatives:
    """The condition as alternatives (OR) of clause conjunctions (AND); absent attributes handled exactly."""
    tag = cond[0]
    if tag == "const":
        return [()] if cond[1] else []
    if tag == "atom":
        clause, absent = cond[1], cond[2]
        return [(clause,)] + (
            [(Clause(attribute=clause.attribute, op=Operator.EXISTS, negate=True),)] if absent else []
        )
    if tag == "or":
        return [alt for c in cond[1] for alt in dnf(c)]
    if tag == "and":
        out: Alternatives = [()]
        for c in cond[1]:
            out = [a + b for a, b in itertools.product(out, dnf(c))]
        return out
    return dnf(_negate(cond[1]))


def _negate(cond: Cond) -> Cond:
    tag = cond[0]
    if tag == "const":
        return ("const", not cond[1])
    if tag == "atom":
        clause = cond[1]
        return ("atom", msgspec.structs.replace(clause, negate=not clause.negate), not cond[2])
    if tag == "and":
        return ("or", [_negate(c) for c in cond[1]])
    if tag == "or":
        return ("and", [_negate(c) for c in cond[1]])
    return cond[1]
