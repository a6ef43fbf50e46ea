"""GrowthBook -> Flagstream: the features of a GrowthBook SDK payload (``{"features": {key: {"defaultValue",
"rules"}}, "savedGroups": {...}}``, what an SDK connection serves) mapped to flags that answer as GrowthBook's SDK
(growthbook 4, no sticky bucketing; docs/migration.md). Pure: no I/O except :func:`load_growthbook` reading the
file.

The GrowthBook attributes are the context's attributes as they are (``{"key": ..., "id": "u1", "country":
"NO"}``: the key is free, GrowthBook hashes ``id`` by default); a dotted attribute path ``a.b`` is ``/a/b``.
Each rule becomes rules of the flag, in order: its condition (the Mongo-like language, compared as JavaScript
does: ``Clause.cast`` ``js``) as alternatives, its filters and namespace as helper segments hashing with the
``growthbook`` scheme (``SegmentRule.ranges``), a force rule's coverage or range as a partial ``growthbook``
rollout (its ``fallbackAttribute`` in ``Rollout.fallback_by``), an experiment as a ``growthbook`` rollout over
its bucket ranges. A ``null`` value serves the caller's default, as ``get_feature_value`` does. What differs is
reported per flag; what cannot be expressed keeps the flag out of the import.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ...events import (
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
from ...linear_regex import regex_problem
from ...schemes import GROWTHBOOK, growthbook_ranges
from .common import ImportFileError, ImportResult, Unmappable, key_for, nominal_weights, python_regex, read_json
from .formula import Formula, Lowering, Share, all_of, any_of, negation

_ORDER = {"$lt": Operator.LT, "$lte": Operator.LTE, "$gt": Operator.GT, "$gte": Operator.GTE}
_VERSION = {
    "$veq": Operator.SEMVER_EQ,
    "$vlt": Operator.SEMVER_LT,
    "$vlte": Operator.SEMVER_LTE,
    "$vgt": Operator.SEMVER_GT,
    "$vgte": Operator.SEMVER_GTE,
}
_RESERVED = ("key", "kind")


def load_growthbook(path: str | Path) -> ImportResult:
    """Read and map a GrowthBook SDK payload; :class:`ImportFileError` if it is not one."""
    return import_growthbook(read_json(path), source=str(path))


def import_growthbook(doc: Any, *, source: str = "growthbook") -> ImportResult:
    if isinstance(doc, dict) and "encryptedFeatures" in doc and not isinstance(doc.get("features"), dict):
        raise ImportFileError(f"{source}: the features are encrypted; turn encryption off for the export")
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), dict):
        raise ImportFileError(f"{source}: not a GrowthBook SDK payload (no 'features' object)")
    return _Importer(doc, source).run()


def _scalar(v: Any) -> bool:
    return isinstance(v, str | bool) or (isinstance(v, int | float) and math.isfinite(v))


class _Importer:
    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.doc = doc
        self.result = ImportResult(source=source)
        self.saved_groups = doc.get("savedGroups") if isinstance(doc.get("savedGroups"), dict) else {}
        self.flag_taken: set[str] = set()
        self.segment_taken: set[str] = set()

    def note(self, severity: str, subject: str, path: str, message: str) -> None:
        self.result.note(severity, subject, path, message)  # type: ignore[arg-type]

    def run(self) -> ImportResult:
        for key, feature in self.doc["features"].items():
            self.feature(str(key), feature)
        return self.result

    def feature(self, name: str, feature: Any) -> None:
        subject, path = f"flag {name}", f"features.{name}"
        before = len(self.result.notes)
        key = key_for(name, self.flag_taken, "flag")
        lowering = Lowering(key, self.segment_taken, description=f"part of GrowthBook feature {name}")
        try:
            if not isinstance(feature, dict):
                raise Unmappable(path, "a feature must be an object")
            flag = self._feature(key, name, feature, path, subject, lowering)
        except Unmappable as e:
            del self.result.notes[before:]
            self.flag_taken.discard(key)
            self.note("unmapped", subject, e.path, f"{e.message}; flag not imported")
            self.result.skipped.append(name)
            return
        self.result.segments += lowering.segments
        self.result.flags.append(flag)
        renamed = f" (key {flag.key})" if flag.key != name else ""
        helpers = f", {len(lowering.segments)} helper segment(s) {key}--N" if lowering.segments else ""
        self.note("mapped", subject, path, f"{flag.kind.value}, {len(flag.rules)} rule(s){helpers}{renamed}")

    def _feature(
        self, key: str, name: str, feature: dict[str, Any], path: str, subject: str, lowering: Lowering
    ) -> Flag:
        variations = _Variations()
        rules: list[Rule] = []
        for i, rule in enumerate(feature.get("rules") or []):
            rpath = f"{path}.rules[{i}]"
            if not isinstance(rule, dict):
                raise Unmappable(rpath, "a rule must be an object")
            for field in ("parentConditions", "contextualBanditRef", "contextualVariations"):
                if rule.get(field):
                    raise Unmappable(f"{rpath}.{field}", f"{field} (prerequisite features, bandits) do not map")
            serve, gate = self.rule(name, rule, rpath, subject, variations)
            if serve is None:
                self.note("mapped", subject, rpath, "a rule that never applies (as in GrowthBook): left out")
                continue
            condition = all_of(self.condition(rule.get("condition"), f"{rpath}.condition", subject), gate)
            for j, clauses in enumerate(lowering.flag_conditions(condition)):
                rules.append(Rule(id=f"r{i + 1}-{j + 1}" if j else f"r{i + 1}", clauses=clauses, serve=serve))
        if len(rules) > 500:
            raise Unmappable(path, f"{len(rules)} rules (at most 500)")
        default = feature.get("defaultValue")
        fallthrough = Serve(default=True) if default is None else Serve(variation=variations.key(default))
        return Flag(
            key=key,
            name=name[:200],
            description=f"GrowthBook feature {name}",
            kind=variations.kind(),
            tags=("growthbook",),
            on=True,
            variations=variations.all(),
            off_variation=variations.first(),
            fallthrough=fallthrough,
            rules=tuple(rules),
        )

    # -- rules -----------------------------------------------------------------------------------------------

    def rule(
        self, name: str, rule: dict[str, Any], path: str, subject: str, variations: _Variations
    ) -> tuple[Serve | None, Formula]:
        """What a rule serves (``None``: it never applies) and the gate of its filters (or namespace)."""
        version = rule.get("hashVersion") or 1
        version = int(version) if version in (1, 2) else version
        attribute = self.hash_attribute(rule.get("hashAttribute"), f"{path}.hashAttribute")
        gate = self.filters(rule.get("filters"), f"{path}.filters")
        if "force" in rule and rule["force"] is not None:
            fallback = rule.get("fallbackAttribute") if not rule.get("disableStickyBucketing") else None
            return self.force(name, rule, path, variations, version, attribute, fallback), gate
        values = rule.get("variations")
        if not isinstance(values, list) or len(values) < 2:
            return None, False  # GrowthBook skips it
        if version not in (1, 2):
            return None, False  # an unknown hash version: nobody is bucketed
        experiment = rule.get("key") or name
        seed = rule.get("seed") or experiment
        if not isinstance(seed, str):
            raise Unmappable(f"{path}.seed", "a seed must be a text")
        if not rule.get("filters") and rule.get("namespace"):
            gate = all_of(gate, self.namespace(rule["namespace"], attribute, f"{path}.namespace"))
        if rule.get("fallbackAttribute") and not rule.get("disableStickyBucketing"):
            self.note(
                "mapped",
                subject,
                f"{path}.fallbackAttribute",
                "experiments use their fallbackAttribute only with sticky bucketing, off here as in a GrowthBook SDK"
                " without a sticky bucket service",
            )
        ranges = self.experiment_ranges(rule, len(values), path)
        meta = rule.get("meta") if isinstance(rule.get("meta"), list) else []
        keep: list[tuple[str, tuple[float, float]]] = []
        used: set[str] = set()
        for j, (value, r) in enumerate(zip(values, ranges, strict=True)):
            passthrough = j < len(meta) and isinstance(meta[j], dict) and meta[j].get("passthrough")
            if passthrough:
                if rule.get("ranges"):
                    raise Unmappable(f"{path}.meta[{j}]", "a passthrough variation with explicit ranges")
                continue
            if value is None:
                raise Unmappable(f"{path}.variations[{j}]", "a null variation (GrowthBook: the caller's default)")
            k = variations.key(value, avoid=used)
            used.add(k)
            keep.append((k, r))
        if not keep:
            return None, False
        weights = nominal_weights([e - s for _, (s, e) in keep])
        rollout = Rollout(
            variations=tuple(WeightedVariation(variation=k, weight=w) for (k, _), w in zip(keep, weights, strict=True)),
            bucket_by=attribute,
            algorithm=GROWTHBOOK,
            hash_prefix=seed,
            hash_version=version,
            ranges=tuple(r for _, r in keep),
            partial=True,
        )
        return Serve(rollout=rollout), gate

    def force(
        self,
        name: str,
        rule: dict[str, Any],
        path: str,
        variations: _Variations,
        version: Any,
        attribute: str,
        fallback: Any,
    ) -> Serve | None:
        value = rule["force"]
        coverage, span = rule.get("coverage"), rule.get("range")
        if coverage is None and span is None:
            return Serve(variation=variations.key(value))
        if span is None and coverage == 0:
            return None
        if version not in (1, 2):
            return None
        seed = rule.get("seed") or name
        if not isinstance(seed, str):
            raise Unmappable(f"{path}.seed", "a seed must be a text")
        if span is not None:
            r = _range(span, f"{path}.range")
        else:
            if isinstance(coverage, bool) or not isinstance(coverage, int | float) or not math.isfinite(coverage):
                raise Unmappable(f"{path}.coverage", f"coverage {coverage!r} is not a number")
            if coverage < 0:
                return None
            r = (0.0, float(coverage))
        if fallback is not None:
            fallback = self.hash_attribute(fallback, f"{path}.fallbackAttribute")
        share = min(max(r[1], 0.0), 1.0) - min(max(r[0], 0.0), 1.0)
        return Serve(
            rollout=Rollout(
                variations=(
                    WeightedVariation(variation=variations.key(value), weight=round(max(share, 0.0) * 100_000)),
                ),
                bucket_by=attribute,
                algorithm=GROWTHBOOK,
                hash_prefix=seed,
                hash_version=version,
                ranges=(r,),
                partial=True,
                fallback_by=fallback or "",
            )
        )

    def experiment_ranges(self, rule: dict[str, Any], n: int, path: str) -> list[tuple[float, float]]:
        explicit = rule.get("ranges")
        if explicit:
            if not isinstance(explicit, list):
                raise Unmappable(f"{path}.ranges", "ranges must be a list")
            rs = [_range(r, f"{path}.ranges[{j}]") for j, r in enumerate(explicit[:n])]
            return rs + [(0.0, 0.0)] * (n - len(rs))
        coverage = rule.get("coverage")
        if coverage is not None and (
            isinstance(coverage, bool) or not isinstance(coverage, int | float) or not math.isfinite(coverage)
        ):
            raise Unmappable(f"{path}.coverage", f"coverage {coverage!r} is not a number")
        return list(growthbook_ranges(n, coverage, rule.get("weights")))

    def filters(self, filters: Any, path: str) -> Formula:
        if not filters:
            return True
        if not isinstance(filters, list):
            raise Unmappable(path, "filters must be a list")
        gates: list[Formula] = []
        for j, f in enumerate(filters):
            where = f"{path}[{j}]"
            if not isinstance(f, dict) or not isinstance(f.get("ranges"), list):
                raise Unmappable(where, "a filter needs ranges")
            version = f.get("hashVersion", 2)
            version = int(version) if version in (1, 2) else version
            if version not in (1, 2):
                gates.append(False)  # GrowthBook: an unknown hash version filters everyone out
                continue
            seed = f.get("seed", "")
            if not isinstance(seed, str):
                raise Unmappable(f"{where}.seed", "a seed must be a text")
            ranges = tuple(_range(r, f"{where}.ranges[{k}]") for k, r in enumerate(f["ranges"]))
            gates.append(
                self.share(self.hash_attribute(f.get("attribute", "id"), f"{where}.attribute"), seed, version, ranges)
            )
        return all_of(*gates)

    def namespace(self, namespace: Any, attribute: str, path: str) -> Formula:
        if (
            not isinstance(namespace, list)
            or len(namespace) != 3
            or not isinstance(namespace[0], str)
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in namespace[1:])
        ):
            raise Unmappable(path, "a namespace is [id, start, end]")
        return self.share(attribute, f"__{namespace[0]}", 1, (_range(namespace[1:], path),))

    @staticmethod
    def share(attribute: str, seed: str, version: int, ranges: tuple[tuple[float, float], ...]) -> Formula:
        if not any(e > s for s, e in ranges):
            return False
        width = sum(min(e, 1.0) - min(s, 1.0) for s, e in ranges)
        weight = min(100_000, max(0, round(width * 100_000)))
        return Share(
            weight=weight,
            bucket_by=attribute,
            algorithm=GROWTHBOOK,
            hash_prefix=seed,
            hash_version=version,
            ranges=ranges,
        )

    def hash_attribute(self, name: Any, path: str) -> str:
        if name is None:
            return "id"
        if not isinstance(name, str) or not name or name in _RESERVED or name.startswith("/"):
            raise Unmappable(
                path, f"hash attribute {name!r} (Flagstream reserves 'key' and 'kind', reads '/a' as a path)"
            )
        return name

    # -- conditions ------------------------------------------------------------------------------------------

    def condition(self, cond: Any, path: str, subject: str) -> Formula:
        if cond is None or cond == {}:
            return True
        if not isinstance(cond, dict):
            raise Unmappable(path, "a condition must be an object")
        parts: list[Formula] = []
        for k, v in cond.items():
            where = f"{path}.{k}"
            if k in ("$or", "$nor", "$and"):
                if not isinstance(v, list):
                    raise Unmappable(where, f"{k} takes a list")
                items = [self.condition(c, f"{where}[{j}]", subject) for j, c in enumerate(v)]
                if k == "$and":
                    parts.append(all_of(*items))
                else:
                    either = True if not items else any_of(*items)
                    parts.append(negation(either) if k == "$nor" else either)
            elif k == "$not":
                parts.append(negation(self.condition(v, where, subject)))
            elif k.startswith("$"):
                raise Unmappable(where, f"{k} (saved groups and other condition operators) does not map")
            else:
                parts.append(self.value(self.attribute(k, where), v, where, subject))
        return all_of(*parts)

    def attribute(self, path: str, where: str) -> str:
        parts = path.split(".")
        if parts[0] in _RESERVED or (len(parts) == 1 and path.startswith("/")):
            raise Unmappable(where, f"attribute {path!r} (Flagstream reserves 'key' and 'kind')")
        for p in parts[1:]:
            if p == "length" or (p.isascii() and p.isdigit()):
                raise Unmappable(where, f"path {path!r} may index a list (GrowthBook reads lists by index)")
        if len(parts) == 1:
            return path
        return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)

    def value(self, attribute: str, cv: Any, path: str, subject: str) -> Formula:
        if isinstance(cv, dict) and all(isinstance(k, str) and k.startswith("$") for k in cv):
            return all_of(*(self.operator(attribute, op, v, f"{path}.{op}", subject) for op, v in cv.items()))
        return self.equal(attribute, cv, path)

    def equal(self, attribute: str, cv: Any, path: str) -> Formula:
        """GrowthBook's literal equality (same JSON type and value)."""
        if cv is None:
            return Clause(attribute=attribute, op=Operator.EXISTS, negate=True)
        if not _scalar(cv):
            raise Unmappable(path, f"equality with {json.dumps(cv)[:60]} (arrays and objects) does not map")
        return Clause(attribute=attribute, op=Operator.EQUALS, values=(cv,), cast="js")

    def operator(self, attribute: str, op: str, v: Any, path: str, subject: str) -> Formula:
        absent = Clause(attribute=attribute, op=Operator.EXISTS, negate=True)
        if op == "$eq":
            return self.equal(attribute, v, path) if v is None or _scalar(v) else False
        if op == "$ne":
            if v is None:
                return Clause(attribute=attribute, op=Operator.EXISTS)
            if not _scalar(v):
                return True
            return any_of(absent, Clause(attribute=attribute, op=Operator.EQUALS, values=(v,), cast="js", negate=True))
        if op in _ORDER:
            if isinstance(v, bool) or not _scalar(v):
                return False
            return Clause(attribute=attribute, op=_ORDER[op], values=(v,), cast="js")
        if op in _VERSION or op == "$vne":
            if not isinstance(v, str):
                raise Unmappable(path, f"{op} with {v!r} (versions are compared as texts here)")
            if op == "$vne":
                return any_of(
                    absent,
                    Clause(
                        attribute=attribute,
                        op=Operator.SEMVER_EQ,
                        values=(v,),
                        semver="growthbook",
                        cast="js",
                        negate=True,
                    ),
                )
            return Clause(attribute=attribute, op=_VERSION[op], values=(v,), semver="growthbook", cast="js")
        if op in ("$in", "$nin", "$inGroup", "$notInGroup"):
            if op in ("$inGroup", "$notInGroup"):
                if not isinstance(v, str):
                    return False
                # GrowthBook: a group not in the payload is an empty one (nobody in it); a list group is its values
                group = self.saved_groups.get(v, [])
                if isinstance(group, dict) and group.get("type") == "list" and isinstance(group.get("values"), list):
                    group = group["values"]
                if not isinstance(group, list):
                    raise Unmappable(path, f"saved group {v!r} is not a list of values")
                values, op = group, "$in" if op == "$inGroup" else "$nin"
            else:
                if not isinstance(v, list):
                    return False
                values = v
            if not all(_scalar(x) for x in values):
                raise Unmappable(path, f"{op} with null, arrays or objects in its list")
            if not values:
                return op != "$in"
            clause = Clause(attribute=attribute, op=Operator.IN, values=tuple(values), cast="js")
            if op == "$in":
                return clause
            return any_of(
                absent, Clause(attribute=attribute, op=Operator.IN, values=tuple(values), cast="js", negate=True)
            )
        if op in ("$regex", "$regexi", "$notRegex", "$notRegexi"):
            negate = op.startswith("$not")
            insensitive = op.endswith("i")
            try:
                if not isinstance(v, str):
                    raise TypeError
                re.compile(v)
            except (TypeError, re.error):
                return negate  # GrowthBook: an unusable pattern matches nothing ($notRegex: everything)
            pattern, difference = python_regex(v)
            problem = regex_problem(pattern)
            if problem:
                raise Unmappable(path, f"regex {v!r}: {problem} (Flagstream runs RE2)")
            if difference or insensitive:
                said = difference or "case-insensitive: RE2's Unicode case folding here, Python's re there"
                self.note("approximated", subject, path, f"regex {v!r}: {said}")
            clause = Clause(
                attribute=attribute, op=Operator.MATCHES, values=(pattern,), case_insensitive=insensitive, cast="js"
            )
            if not negate:
                return clause
            return any_of(
                absent,
                Clause(
                    attribute=attribute,
                    op=Operator.MATCHES,
                    values=(pattern,),
                    case_insensitive=insensitive,
                    cast="js",
                    negate=True,
                ),
            )
        if op == "$exists":
            return Clause(attribute=attribute, op=Operator.EXISTS, negate=not _truthy(v))
        if op == "$not":
            return negation(self.value(attribute, v, path, subject))
        raise Unmappable(path, f"operator {op} does not map")


def _truthy(v: Any) -> bool:
    """Python's truthiness, as GrowthBook's ``$exists`` reads its value."""
    return bool(v)


def _range(r: Any, path: str) -> tuple[float, float]:
    """A ``[start, end)`` bucket range, as GrowthBook's ``inRange`` reads it (buckets are in [0, 1))."""
    if (
        not isinstance(r, list | tuple)
        or len(r) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in r)
    ):
        raise Unmappable(path, f"{r!r} is not a range [start, end]")
    start, end = float(r[0]), float(r[1])
    if end <= max(start, 0.0):
        return (0.0, 0.0)  # holds no bucket
    return (max(start, 0.0), end)


class _Variations:
    """The variations of one flag: one per value served, a copy when a rollout needs a value twice."""

    def __init__(self) -> None:
        self.by_value: dict[str, list[str]] = {}
        self.values: dict[str, Any] = {}

    def key(self, value: Any, avoid: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        ident = json.dumps(value, sort_keys=True)
        for k in self.by_value.get(ident, []):
            if k not in avoid:
                return k
        hint = value if isinstance(value, str) else ident
        k = key_for(hint if len(hint) <= 40 else f"v{len(self.values)}", set(self.values), f"v{len(self.values)}")
        self.by_value.setdefault(ident, []).append(k)
        self.values[k] = value
        return k

    def kind(self) -> FlagKind:
        types = {type(v) for v in self.values.values()}
        if not types or types == {bool}:
            return FlagKind.BOOLEAN
        if types == {str}:
            return FlagKind.STRING
        if types <= {int, float}:
            return FlagKind.NUMBER
        return FlagKind.JSON

    def first(self) -> str:
        if not self.values:
            self.values["off"] = False
        return next(iter(self.values))

    def all(self) -> tuple[Variation, ...]:
        if not self.values:
            self.values["off"] = False
        return tuple(Variation(key=k, value=v) for k, v in self.values.items())
