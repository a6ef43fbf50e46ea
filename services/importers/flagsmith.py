"""Flagsmith -> Flagstream: the environment document of Flagsmith's local-evaluation SDKs (``GET
/api/v1/environment-document/``: ``feature_states``, ``project.segments`` with their rules and overrides,
``identity_overrides``) mapped to flags and segments that answer as the Flagsmith SDK evaluating that document
locally (flagsmith 6 on flagsmith-flag-engine 11; docs/migration.md). Pure: no I/O except :func:`load_flagsmith`
reading the file.

A Flagsmith identity is a Flagstream ``user`` context: the identifier is the key, each trait an attribute of
the same name. A feature answers a pair -- enabled, value -- so a feature becomes a ``json`` flag serving
``{"enabled": ..., "value": ...}``; a feature whose every state has no value (a plain on/off toggle) a
``boolean`` flag serving ``enabled``. Its rules, in Flagsmith's order of precedence: identity overrides (the
identifiers compared as Flagsmith compares them), then segment overrides by priority (document order on a tie),
then the environment's state; a multivariate state is a ``flagsmith`` rollout over the identity key
``{environment api key}_{identifier}``. Segments map exactly, through helper segments for ``ANY``/``NONE``
nesting; conditions compare as Flagsmith's engine does (``Clause.cast`` ``python``: numeric texts are numbers,
typed comparison, ``:semver`` values). What differs is reported per flag; what cannot be expressed keeps the
flag (or segment) out of the import.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

from ...events import (
    WEIGHT_TOTAL,
    Clause,
    Flag,
    FlagKind,
    Operator,
    Rollout,
    Rule,
    Segment,
    Serve,
    Variation,
    WeightedVariation,
)
from ...linear_regex import regex_problem
from ...schemes import FLAGSMITH
from ...semver import parse_semver
from .common import ImportFileError, ImportResult, Unmappable, key_for, nominal_weights, python_regex, read_json
from .formula import Formula, Lowering, Share, all_of, any_of, negation

#: Trait names Flagstream contexts reserve (the identifier is ``key``) or read as a path.
_RESERVED = ("key", "kind")
_SEMVER_OPS = {
    "EQUAL": Operator.SEMVER_EQ,
    "GREATER_THAN": Operator.SEMVER_GT,
    "GREATER_THAN_INCLUSIVE": Operator.SEMVER_GTE,
    "LESS_THAN": Operator.SEMVER_LT,
    "LESS_THAN_INCLUSIVE": Operator.SEMVER_LTE,
}
#: The booleans a ``:semver`` condition matches: Flagsmith casts the value to a boolean (true) for them.
_SEMVER_BOOLS = {
    "EQUAL": (True,),
    "NOT_EQUAL": (False,),
    "GREATER_THAN": (),
    "GREATER_THAN_INCLUSIVE": (True,),
    "LESS_THAN": (False,),
    "LESS_THAN_INCLUSIVE": (True, False),
}
_TYPED = {
    "EQUAL": (Operator.EQUALS, False),
    "NOT_EQUAL": (Operator.EQUALS, True),
    "GREATER_THAN": (Operator.GT, False),
    "GREATER_THAN_INCLUSIVE": (Operator.GTE, False),
    "LESS_THAN": (Operator.LT, False),
    "LESS_THAN_INCLUSIVE": (Operator.LTE, False),
    "CONTAINS": (Operator.CONTAINS, False),
    "NOT_CONTAINS": (Operator.CONTAINS, True),
}
_KNOWN_OPS = {*_TYPED, "REGEX", "PERCENTAGE_SPLIT", "MODULO", "IS_SET", "IS_NOT_SET", "IN"}


def load_flagsmith(path: str | Path) -> ImportResult:
    """Read and map a Flagsmith environment document; :class:`ImportFileError` if it is not one."""
    return import_flagsmith(read_json(path), source=str(path))


def import_flagsmith(doc: Any, *, source: str = "flagsmith") -> ImportResult:
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("feature_states"), list)
        or not isinstance(doc.get("api_key"), str)
    ):
        raise ImportFileError(
            f"{source}: not a Flagsmith environment document (needs 'api_key' and 'feature_states';"
            " GET /api/v1/environment-document/ with the environment's server-side key gives it)"
        )
    return _Importer(doc, source).run()


def percentage_of(k: int) -> float:
    """The ``k``-th of the 9,999 percentages Flagsmith's hash gives (``k / 9998 * 100``, k = 9998 re-hashed)."""
    return (k / 9998) * 100


def split_weight(value: float) -> int | None:
    """The weight (of 100,000) ``w`` such that ``percentage <= w / 1000`` holds for exactly the percentages
    for which ``percentage <= value`` holds (Flagsmith's PERCENTAGE_SPLIT); ``None``: no percentage does."""
    inside = sum(1 for k in range(9998) if percentage_of(k) <= value)
    if inside == 0:
        return None
    if inside == 9998:
        return WEIGHT_TOTAL
    low, high = percentage_of(inside - 1), percentage_of(inside)
    w = math.ceil(low * 1000)
    while w / 1000 < low:
        w += 1
    if not w / 1000 < high:  # pragma: no cover - the percentages are 0.01 apart, weights 0.001
        return None
    return w


class _Importer:
    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.doc = doc
        self.result = ImportResult(source=source)
        self.api_key: str = doc["api_key"]
        project = doc.get("project") if isinstance(doc.get("project"), dict) else {}
        self.segments_in = [s for s in (project.get("segments") or []) if isinstance(s, dict)]
        self.segment_taken: set[str] = set()
        self.segment_keys: dict[str, str] = {}  # Flagsmith segment id (text) -> Flagstream key
        self.unmapped_segments: dict[str, str] = {}
        self.approximated_segments: set[str] = set()
        self.flag_taken: set[str] = set()

    def note(self, severity: str, subject: str, path: str, message: str) -> None:
        self.result.note(severity, subject, path, message)  # type: ignore[arg-type]

    def run(self) -> ImportResult:
        for i, seg in enumerate(self.segments_in):
            self.segment(i, seg)
        features: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, fs in enumerate(self.doc["feature_states"]):
            name = _feature_name(fs)
            if name is None:
                self.note("unmapped", f"feature_states[{i}]", f"feature_states[{i}]", "a feature state without a name")
                continue
            features[name] = (i, fs)  # a name twice: the last one, as the SDK keeps it
        groups = self.identity_groups()
        for name, (i, fs) in features.items():
            self.feature(name, i, fs, groups)
        return self.result

    # -- segments --------------------------------------------------------------------------------------------

    def segment(self, i: int, seg: dict[str, Any]) -> None:
        sid = str(seg.get("id"))
        name = str(seg.get("name") or sid)
        subject, path = f"segment {name}", f"project.segments[{i}]"
        key = key_for(name, self.segment_taken, "segment")
        self.segment_keys[sid] = key
        before = len(self.result.notes)
        lowering = Lowering(key, self.segment_taken, description=f"part of Flagsmith segment {name}")
        try:
            rules = seg.get("rules")
            if not isinstance(rules, list):
                raise Unmappable(f"{path}.rules", "a segment needs a list of rules")
            # Flagsmith: a segment without rules contains nobody; otherwise every rule must match.
            f = (
                False
                if not rules
                else all_of(*(self.rule(r, sid, f"{path}.rules[{j}]", subject) for j, r in enumerate(rules)))
            )
            segment_rules = lowering.segment_rules(f)
        except Unmappable as e:
            del self.result.notes[before:]
            self.unmapped_segments[sid] = e.message
            self.note("unmapped", subject, e.path, f"{e.message}; segment not imported (nor the flags it overrides)")
            return
        if any(n.severity == "approximated" for n in self.result.notes[before:]):
            self.approximated_segments.add(sid)
        self.result.segments += lowering.segments
        self.result.segments.append(
            Segment(key=key, name=name[:200], description=f"Flagsmith segment {sid}", rules=segment_rules)
        )
        helpers = f" (and {len(lowering.segments)} helper segment(s) {key}--N)" if lowering.segments else ""
        self.note("mapped", subject, path, f"segment {key}{helpers}")

    def rule(self, rule: Any, sid: str, path: str, subject: str) -> Formula:
        if not isinstance(rule, dict) or rule.get("type") not in ("ALL", "ANY", "NONE"):
            raise Unmappable(path, "a rule needs a type ALL, ANY or NONE")
        kind = rule["type"]
        conditions = [
            self.condition(c, sid, f"{path}.conditions[{j}]", subject)
            for j, c in enumerate(rule.get("conditions") or [])
        ]
        subrules = [self.rule(r, sid, f"{path}.rules[{j}]", subject) for j, r in enumerate(rule.get("rules") or [])]
        parts = [p for p in (conditions, subrules) if p]  # an empty list is true, whatever the type

        def combine(items: list[Formula]) -> Formula:
            if kind == "ALL":
                return all_of(*items)
            if kind == "ANY":
                return any_of(*items)
            return negation(any_of(*items))

        return all_of(*(combine(p) for p in parts))

    def condition(self, c: Any, sid: str, path: str, subject: str) -> Formula:
        if not isinstance(c, dict):
            raise Unmappable(path, "a condition must be an object")
        op = c.get("operator")
        prop = c.get("property_", c.get("property"))
        prop = "" if prop is None else prop
        value = c.get("value")
        if not isinstance(prop, str):
            raise Unmappable(f"{path}.property_", "the property must be a text")
        if op == "PERCENTAGE_SPLIT":
            return self.split(prop, value, sid, path)
        if op not in _KNOWN_OPS:
            self.note("mapped", subject, path, f"operator {op!r} matches nobody (as in Flagsmith)")
            return False
        attribute = self.attribute(prop, path)
        if attribute is None:  # a JSONPath to the identifier: a trait of that name wins, else the identifier
            return any_of(
                all_of(Clause(attribute=prop, op=Operator.EXISTS), self.test(prop, op, value, path, subject)),
                all_of(
                    Clause(attribute=prop, op=Operator.EXISTS, negate=True), self.test("key", op, value, path, subject)
                ),
            )
        return self.test(attribute, op, value, path, subject)

    def attribute(self, prop: str, path: str) -> str | None:
        """The Flagstream attribute of a Flagsmith property (``None``: ``$.identity.identifier``)."""
        if prop == _IDENTIFIER:
            return None
        if prop.startswith("$."):
            raise Unmappable(f"{path}.property_", f"JSONPath property {prop!r} (only $.identity.identifier maps)")
        if not prop or prop in _RESERVED or prop.startswith("/"):
            raise Unmappable(
                f"{path}.property_",
                f"a trait named {prop!r} (Flagstream's context reserves 'key' for the identifier and 'kind',"
                " reads '/a/b' as a path, and needs a name)",
            )
        return prop

    def split(self, prop: str, value: Any, sid: str, path: str) -> Formula:
        if prop and (prop.startswith("$.") or prop in _RESERVED or prop.startswith("/")):
            raise Unmappable(f"{path}.property_", f"a percentage split on {prop!r}")
        try:
            percent = float(value)
        except (TypeError, ValueError):
            return False  # Flagsmith: not a number, nobody is in
        if math.isnan(percent):
            return False
        weight = split_weight(percent)
        if weight is None:
            return False
        prefix = f"{sid},{self.api_key}_" if not prop else f"{sid},"
        return Share(weight=weight, bucket_by=prop or "key", algorithm=FLAGSMITH, hash_prefix=prefix)

    def test(self, attribute: str, op: str, value: Any, path: str, subject: str) -> Formula:
        """The formula of condition ``op`` ``value`` on ``attribute`` (read as Flagsmith reads a trait)."""
        if op == "IS_SET":
            return Clause(attribute=attribute, op=Operator.EXISTS)
        if op == "IS_NOT_SET":
            return Clause(attribute=attribute, op=Operator.EXISTS, negate=True)
        if op == "IN":
            try:
                strings = _in_values(value)
            except (TypeError, ValueError, RecursionError) as e:
                raise Unmappable(f"{path}.value", f"IN value {value!r} breaks Flagsmith's SDK ({e})") from None
            if not strings:
                return False
            return Clause(
                attribute=attribute, op=Operator.IN, values=tuple(sorted(strings)), cast="python", numeric_strings=True
            )
        if value is None:
            return False  # Flagsmith: a condition without a value matches nobody
        text = value if isinstance(value, str) else str(value)
        if op == "MODULO":
            try:
                divisor, remainder = (float(x) for x in text.split("|"))
            except ValueError:
                return False
            if divisor == 0 or not (math.isfinite(divisor) and math.isfinite(remainder)):
                raise Unmappable(f"{path}.value", f"MODULO {text!r}: Flagsmith's SDK raises or never matches")
            return Clause(attribute=attribute, op=Operator.MODULO, values=(divisor, remainder), numeric_strings=True)
        if op == "REGEX":
            pattern, difference = python_regex(text, anchored=True)
            problem = regex_problem(pattern)
            if problem:
                raise Unmappable(f"{path}.value", f"regex {text!r}: {problem} (Flagstream runs RE2)")
            try:
                import re

                re.compile(text)
            except re.error:
                raise Unmappable(
                    f"{path}.value", f"regex {text!r}: Python refuses it (Flagsmith's SDK raises)"
                ) from None
            if difference:
                self.note("approximated", subject, path, f"regex {text!r}: {difference}")
            return Clause(
                attribute=attribute, op=Operator.MATCHES, values=(pattern,), cast="python", numeric_strings=True
            )
        if text.endswith(":semver"):
            return self.semver(attribute, op, text[:-7], path)
        clause_op, negate = _TYPED[op]
        return Clause(
            attribute=attribute, op=clause_op, values=(text,), negate=negate, cast="python", numeric_strings=True
        )

    def semver(self, attribute: str, op: str, version: str, path: str) -> Formula:
        """A ``:semver`` condition: a text trait read as a strict semantic version; a boolean trait compared with
        ``True`` (Flagsmith casts the condition's value to the trait's type); numbers never."""
        if op in ("CONTAINS", "NOT_CONTAINS"):
            raise Unmappable(f"{path}.value", f"{op} of a :semver value (Flagsmith compares the version's parts)")
        bools = _SEMVER_BOOLS[op]
        parts: list[Formula] = []
        if bools:
            parts.append(Clause(attribute=attribute, op=Operator.IN, values=bools))
        if parse_semver(version, "strict") is not None:
            if op == "NOT_EQUAL":
                for o in (Operator.SEMVER_GT, Operator.SEMVER_LT):
                    parts.append(
                        Clause(attribute=attribute, op=o, values=(version,), semver="strict", numeric_strings=True)
                    )
            else:
                parts.append(
                    Clause(
                        attribute=attribute,
                        op=_SEMVER_OPS[op],
                        values=(version,),
                        semver="strict",
                        numeric_strings=True,
                    )
                )
        return any_of(*parts)

    # -- identity overrides ----------------------------------------------------------------------------------

    def identity_groups(self) -> list[tuple[list[str], dict[str, tuple[bool, Any]]]]:
        """The identity overrides as the SDK groups them: identities with the same overrides share one group,
        groups in the order first seen; per group, the identifiers and feature name -> (enabled, value)."""
        groups: dict[str, tuple[list[str], dict[str, tuple[bool, Any]]]] = {}
        for identity in self.doc.get("identity_overrides") or []:
            features = identity.get("identity_features") if isinstance(identity, dict) else None
            identifier = identity.get("identifier") if isinstance(identity, dict) else None
            if not features or not isinstance(identifier, str):
                continue
            states = sorted((fs for fs in features if _feature_name(fs) is not None), key=_feature_name)
            overrides: dict[str, tuple[bool, Any]] = {}
            for fs in states:
                overrides.setdefault(_feature_name(fs), (bool(fs.get("enabled")), fs.get("feature_state_value")))  # type: ignore[arg-type]
            signature = json.dumps(
                [[_feature_name(fs), bool(fs.get("enabled")), fs.get("feature_state_value")] for fs in states],
                sort_keys=True,
                default=str,
            )
            groups.setdefault(signature, ([], overrides))[0].append(identifier)
        return list(groups.values())

    # -- features --------------------------------------------------------------------------------------------

    def feature(self, name: str, i: int, fs: dict[str, Any], groups: list[Any]) -> None:
        subject, path = f"flag {name}", f"feature_states[{i}]"
        before = len(self.result.notes)
        try:
            flag = self._feature(name, fs, path, subject, groups)
        except Unmappable as e:
            del self.result.notes[before:]
            self.note("unmapped", subject, e.path, f"{e.message}; flag not imported")
            self.result.skipped.append(name)
            return
        self.result.flags.append(flag)
        renamed = f" (key {flag.key})" if flag.key != name else ""
        self.note("mapped", subject, path, f"{flag.kind.value}, {len(flag.rules)} rule(s){renamed}")

    def _feature(self, name: str, fs: dict[str, Any], path: str, subject: str, groups: list[Any]) -> Flag:
        # Segment overrides: (priority, document order, segment id, feature state, where)
        overrides: list[tuple[float, int, str, dict[str, Any], str]] = []
        n = 0
        for i, seg in enumerate(self.segments_in):
            for j, state in enumerate(seg.get("feature_states") or []):
                if _feature_name(state) != name:
                    continue
                where = f"project.segments[{i}].feature_states[{j}]"
                sid = str(seg.get("id"))
                if sid in self.unmapped_segments:
                    raise Unmappable(where, f"overridden in segment {seg.get('name')!r}, not imported")
                if not seg.get("rules"):
                    continue  # contains nobody
                priority = (state.get("feature_segment") or {}).get("priority")
                p = float("inf") if priority is None else priority
                if not isinstance(p, int | float) or isinstance(p, bool):
                    raise Unmappable(f"{where}.feature_segment.priority", f"priority {priority!r} is not a number")
                overrides.append((p, n, sid, state, where))
                n += 1
                if sid in self.approximated_segments:
                    self.note(
                        "approximated",
                        subject,
                        where,
                        f"overridden in segment {seg.get('name')!r}, approximated (above)",
                    )
        overrides.sort(key=lambda o: (o[0], o[1]))
        identity = [(identifiers, features[name]) for identifiers, features in groups if name in features]
        states = [fs, *(o[3] for o in overrides)]
        toggles = all(
            s.get("feature_state_value") is None and not s.get("multivariate_feature_state_values") for s in states
        )
        toggles = toggles and all(value is None for _, (_, value) in identity)
        variations = _Variations(toggles)
        key = key_for(name, self.flag_taken, "flag")
        rules: list[Rule] = []
        for k, (identifiers, (enabled, value)) in enumerate(identity):
            serve = Serve(variation=variations.key(enabled, value))
            for m, clauses in enumerate(_identifier_in(identifiers)):
                rules.append(Rule(id=f"identities-{k + 1}-{m + 1}", clauses=clauses, serve=serve))
        for _, _, sid, state, where in overrides:
            clause = Clause(op=Operator.IN_SEGMENT, values=(self.segment_keys[sid],))
            rid = key_for(f"segment-{self.segment_keys[sid]}", {r.id for r in rules}, "segment")
            rules.append(Rule(id=rid, clauses=(clause,), serve=self.serve(state, variations, where)))
        fallthrough = self.serve(fs, variations, path)
        kind = FlagKind.BOOLEAN if toggles else FlagKind.JSON
        off = variations.key(bool(fs.get("enabled")), fs.get("feature_state_value"))
        return Flag(
            key=key,
            name=name[:200],
            description=f"Flagsmith feature {name}",
            kind=kind,
            tags=("flagsmith",),
            on=True,
            variations=variations.all(),
            off_variation=off,
            fallthrough=fallthrough,
            rules=tuple(rules),
        )

    def serve(self, state: dict[str, Any], variations: _Variations, path: str) -> Serve:
        enabled = bool(state.get("enabled"))
        control = state.get("feature_state_value")
        values = state.get("multivariate_feature_state_values") or []
        if not values:
            return Serve(variation=variations.key(enabled, control))
        key = state.get("django_id") or state.get("featurestate_uuid")
        if key is None:
            raise Unmappable(path, "a multivariate state without django_id or featurestate_uuid")
        options: list[tuple[Any, float, Any]] = []
        for j, mv in enumerate(values):
            where = f"{path}.multivariate_feature_state_values[{j}]"
            try:
                priority = mv.get("id") or uuid.UUID(mv["mv_fs_value_uuid"]).int
                weight = mv["percentage_allocation"]
                option_value = mv["multivariate_feature_option"]["value"]
            except (KeyError, TypeError, ValueError, AttributeError):
                raise Unmappable(
                    where, "needs id or mv_fs_value_uuid, percentage_allocation and an option value"
                ) from None
            if (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not math.isfinite(weight)
                or weight < 0
            ):
                raise Unmappable(f"{where}.percentage_allocation", f"{weight!r} is not a percentage")
            options.append((priority, weight, option_value))
        try:
            options.sort(key=lambda o: o[0])  # stable: document order on a tie, as the engine sorts
        except TypeError:
            raise Unmappable(path, "multivariate ids of different types") from None
        ranges: list[tuple[float, float]] = []
        keys: list[str] = []
        used: set[str] = set()
        start = 0.0
        for _, weight, option_value in options:
            limit = weight + start  # as the engine adds them, in float
            keys.append(variations.key(enabled, option_value, avoid=used))
            used.add(keys[-1])
            ranges.append((start, limit))
            start = limit
        if start < 100:
            keys.append(variations.key(enabled, control, avoid=used))
            ranges.append((start, 100.0))
        weights = nominal_weights([min(e, 100.0) - min(s, 100.0) for s, e in ranges])
        return Serve(
            rollout=Rollout(
                variations=tuple(WeightedVariation(variation=k, weight=w) for k, w in zip(keys, weights, strict=True)),
                algorithm=FLAGSMITH,
                hash_prefix=f"{key},{self.api_key}_",
                ranges=tuple(ranges),
            )
        )


class _Variations:
    """The variations of one flag: one per (enabled, value) served, a copy when a rollout needs one twice."""

    def __init__(self, toggles: bool) -> None:
        self.toggles = toggles
        self.by_value: dict[str, list[str]] = {}
        self.values: dict[str, Any] = {}

    def key(self, enabled: bool, value: Any, avoid: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        served: Any = enabled if self.toggles else {"enabled": enabled, "value": value}
        ident = json.dumps(served, sort_keys=True, default=str)
        for k in self.by_value.get(ident, []):
            if k not in avoid:
                return k
        hint = ("on" if enabled else "off") + ("" if self.toggles or value is None else f"-{value}")
        k = key_for(hint if len(hint) <= 40 else f"{'on' if enabled else 'off'}-v", set(self.values), "v")
        self.by_value.setdefault(ident, []).append(k)
        self.values[k] = served
        return k

    def all(self) -> tuple[Variation, ...]:
        return tuple(Variation(key=k, value=v) for k, v in self.values.items())


#: The property identity overrides match on: a trait of this name wins over the identifier (flag_engine reads
#: a trait first for every property).
_IDENTIFIER = "$.identity.identifier"


def _identifier_in(identifiers: list[str]) -> list[tuple[Clause, ...]]:
    """The clauses of the rules matching an identity whose identifier is in ``identifiers`` as Flagsmith's
    identity-override segments compare it (a trait named ``$.identity.identifier`` first; a numeric text is
    a number, an integer compared by its decimal text)."""
    values = tuple(identifiers)
    return [
        (
            Clause(attribute=_IDENTIFIER, op=Operator.EXISTS),
            Clause(attribute=_IDENTIFIER, op=Operator.IN, values=values, cast="python", numeric_strings=True),
        ),
        (
            Clause(attribute=_IDENTIFIER, op=Operator.EXISTS, negate=True),
            Clause(attribute="key", op=Operator.IN, values=values, cast="python", numeric_strings=True),
        ),
    ]


def _feature_name(fs: Any) -> str | None:
    feature = fs.get("feature") if isinstance(fs, dict) else None
    name = feature.get("name") if isinstance(feature, dict) else None
    return name if isinstance(name, str) and name else None


def _in_values(value: Any) -> frozenset[str]:
    """The texts an ``IN`` condition holds, as flag_engine reads them (a list; a JSON list; else comma-split)."""
    if isinstance(value, list):
        return frozenset(v if type(v) is str else str(v) for v in value)
    if not isinstance(value, str):
        raise TypeError("not a list or a text")
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return frozenset(value.split(","))
        return frozenset(v if type(v) is str else str(v) for v in parsed)
    return frozenset(value.split(","))
