"""Unleash -> Flagstream: features and segments of an Unleash client features export (``/api/client/features``,
format version 2) mapped to flags and segments that answer as Unleash does (docs/migration.md). Pure: no I/O
except :func:`load_unleash` reading the file.

The Unleash context maps to one ``user`` context: ``userId`` to the attribute ``user_id_attribute`` (default
``userId``; ``key`` makes it the targeting key), every other field (``sessionId``, ``remoteAddress``,
``appName``, ``environment``, custom properties) to the top-level attribute of the same name.

A feature is enabled when it is enabled and any strategy matches: every strategy becomes rules (one per
combination of its constraints' alternatives), serving ``on`` -- or the variant an Unleash SDK would pick.
Percentages use Unleash's own normalisation (``Rollout.algorithm``), as partial rollouts, so a context outside
one strategy's percentage still reaches the next strategy.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...events import (
    Clause,
    Flag,
    FlagKind,
    Operator,
    Prerequisite,
    Rollout,
    Rule,
    Segment,
    SegmentRule,
    Serve,
    Variation,
    WeightedVariation,
)
from ...linear_regex import regex_problem
from ...operators import parse_date
from ...schemes import UNLEASH, UNLEASH_VARIANT
from ...semver import parse_semver
from .common import ImportFileError, ImportResult, Unmappable, key_for, read_json

#: Most rules one feature may expand to (constraints that also match absent attributes double the rules).
MAX_RULES = 64
_SPLIT = re.compile(r"\s*,\s*")
#: The stickiness of the older percentage strategies.
_GRADUAL = {"gradualRolloutUserId": "userId", "gradualRolloutSessionId": "sessionId", "gradualRolloutRandom": "random"}

Alternatives = list[tuple[Clause, ...]]  # OR of ANDs; [] never matches, [()] always matches
_ALWAYS: Alternatives = [()]


def load_unleash(path: str | Path, *, user_id_attribute: str = "userId", environment: str = "") -> ImportResult:
    """Read and map an Unleash export file; :class:`ImportFileError` if it is not one."""
    doc = read_json(path)
    return import_unleash(doc, user_id_attribute=user_id_attribute, source=str(path), environment=environment)


def import_unleash(
    doc: Any, *, user_id_attribute: str = "userId", source: str = "unleash", environment: str = ""
) -> ImportResult:
    """``doc``: the client features API's answer, or the admin export (``features``, ``featureStrategies``,
    ``featureEnvironments``, ``segments``, ``dependencies``), of which ``environment`` picks one when it holds
    several."""
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise ImportFileError(f"{source}: not an Unleash client features export (no 'features' list)")
    if "featureStrategies" in doc or "featureEnvironments" in doc:
        doc = client_form(doc, environment, source)
    return _Importer(doc, user_id_attribute, source).run()


def client_form(export: dict[str, Any], environment: str, source: str) -> dict[str, Any]:
    """The admin export (Unleash's ``features-batch/export``) as the client features API serves the same
    environment: each feature with its enabled state, strategies (in ``sortOrder``), variants and dependencies."""
    envs = [e for e in export.get("featureEnvironments") or [] if isinstance(e, dict)]
    names = sorted({str(e["environment"]) for e in envs if e.get("environment") is not None})
    if environment and environment not in names and names:
        raise ImportFileError(f"{source}: the export has no environment {environment!r} (it has {', '.join(names)})")
    if not environment and len(names) > 1:
        raise ImportFileError(f"{source}: the export holds environments {', '.join(names)}: name one to import")
    wanted = environment or (names[0] if names else "")

    def here(item: dict[str, Any]) -> bool:
        return item.get("environment") in (None, wanted)

    states = {e.get("featureName"): e for e in envs if here(e)}
    strategies: dict[Any, list[dict[str, Any]]] = {}
    for st in export.get("featureStrategies") or []:
        if isinstance(st, dict) and here(st):
            strategies.setdefault(st.get("featureName"), []).append(st)
    dependencies = {
        d.get("feature"): d.get("dependencies") or [] for d in export.get("dependencies") or [] if isinstance(d, dict)
    }
    features = []
    for f in export["features"]:
        if not isinstance(f, dict):
            features.append(f)
            continue
        name = f.get("name")
        state = states.get(name) or {}
        ordered = sorted(strategies.get(name, []), key=lambda st: st.get("sortOrder") or 0)
        features.append(
            {
                **{k: v for k, v in f.items() if k in ("name", "type", "description", "project", "impressionData")},
                "enabled": bool(state.get("enabled")),
                "strategies": [
                    {k: v for k, v in st.items() if k not in ("featureName", "environment")} for st in ordered
                ],
                "variants": state.get("variants") or f.get("variants") or [],
                "dependencies": dependencies.get(name, []),
            }
        )
    return {"version": 2, "features": features, "segments": export.get("segments") or []}


class _Importer:
    def __init__(self, doc: dict[str, Any], user_id_attribute: str, source: str) -> None:
        self.doc = doc
        self.user_id = user_id_attribute
        self.result = ImportResult(source=source)
        self.segment_keys: dict[Any, str] = {}  # Unleash segment id -> our key (mapped segments only)
        self.segment_taken: set[str] = set()
        self.unmapped_segments: dict[Any, str] = {}  # id -> why
        self.flag_keys: dict[str, str] = {}  # feature name -> our key
        self.flags: dict[str, Flag] = {}  # feature name -> mapped flag
        self.features: dict[str, Any] = {}  # feature name -> its definition
        #: (path, message) of differences found while mapping constraints, said by the flag or segment mapped
        self.pending: list[tuple[str, str]] = []
        self.approximated_segments: dict[Any, str] = {}  # id -> name

    # -- the file ------------------------------------------------------------------------------------------

    def run(self) -> ImportResult:
        for i, seg in enumerate(self.doc.get("segments") or []):
            self._segment(seg, f"segments[{i}]", self.segment_taken)
        features = self.doc["features"]
        taken = set()
        for i, feature in enumerate(features):
            name = feature.get("name") if isinstance(feature, dict) else None
            if isinstance(name, str) and name:
                self.flag_keys[name] = key_for(name, taken, f"feature-{i}")
                self.features[name] = feature
        # Parents first: Unleash dependencies are one level deep, a prerequisite must exist before its child.
        order = sorted(range(len(features)), key=lambda i: bool(_get(features[i], "dependencies")))
        for i in order:
            self._feature(features[i], f"features[{i}]")
        self.result.flags = [self.flags[n] for n in self.flag_keys if n in self.flags]
        return self.result

    def _segment(self, seg: Any, path: str, taken: set[str]) -> None:
        if not isinstance(seg, dict) or "id" not in seg:
            self.result.note("unmapped", "segment ?", path, "a segment needs an id")
            return
        name = str(seg.get("name") or f"segment-{seg['id']}")
        subject = f"segment {name}"
        self.pending = []
        try:
            alternatives = self._constraints(seg.get("constraints") or [], f"{path}.constraints")
        except Unmappable as e:
            self.unmapped_segments[seg["id"]] = e.message
            self.result.note("unmapped", subject, e.path, f"{e.message}; segment not imported")
            return
        if len(alternatives) > MAX_RULES:
            self.unmapped_segments[seg["id"]] = "too many combinations"
            self.result.note("unmapped", subject, path, f"expands to more than {MAX_RULES} rules; not imported")
            return
        key = key_for(name, taken, f"segment-{seg['id']}")
        rules = tuple(SegmentRule(id=f"r{j}", clauses=c) for j, c in enumerate(alternatives))
        self.result.segments.append(Segment(key=key, name=name, description=str(seg.get("description") or ""),
                                            rules=rules))  # fmt: skip
        self.segment_keys[seg["id"]] = key
        for where, message in self.pending:
            self.result.note("approximated", subject, where, message)
            self.approximated_segments[seg["id"]] = name
        self.result.note("mapped", subject, path, f"segment {key}: {len(rules)} rule(s)")

    def _feature(self, feature: Any, path: str) -> None:
        name = _get(feature, "name")
        if not isinstance(name, str) or not name:
            self.result.note("unmapped", "feature ?", path, "a feature needs a name")
            return
        subject = f"flag {name}"
        before = len(self.result.notes)
        mapper = _Feature(self, feature, name, path)
        self.pending = []
        try:
            flag = mapper.flag()
        except Unmappable as e:
            del self.result.notes[before:]  # what was mapped of a flag that is not imported: not worth a line
            self.result.note("unmapped", subject, e.path, f"{e.message}; flag not imported")
            self.result.skipped.append(name)
            return
        self.flags[name] = flag
        for where, message in self.pending:
            self.result.note("approximated", subject, where, message)
        self.result.segments += mapper.segments
        renamed = f" (key {flag.key})" if flag.key != name else ""
        self.result.note("mapped", subject, path, f"{'on' if flag.on else 'off'}, {len(flag.rules)} rule(s){renamed}")

    # -- constraints ---------------------------------------------------------------------------------------

    def attr(self, context_name: str) -> str:
        return self.user_id if context_name == "userId" else context_name

    def _constraints(self, constraints: Any, path: str) -> Alternatives:
        if not isinstance(constraints, list):
            raise Unmappable(path, "constraints must be a list")
        out = _ALWAYS
        for j, c in enumerate(constraints):
            out = _and(out, self._constraint(c, f"{path}[{j}]"))
        return out

    def _constraint(self, c: Any, path: str) -> Alternatives:
        if not isinstance(c, dict) or not isinstance(c.get("contextName"), str) or not c["contextName"]:
            raise Unmappable(path, "a constraint needs a contextName")
        name, op = c["contextName"], c.get("operator")
        inverted, ci = bool(c.get("inverted")), bool(c.get("caseInsensitive"))
        attr = self.attr(name)
        values = c.get("values")
        values = list(values) if isinstance(values, list) else ([c["value"]] if "value" in c else [])
        if op in ("DATE_AFTER", "DATE_BEFORE"):
            value = c.get("value", values[0] if values else None)
            if name != "currentTime":
                raise Unmappable(path, f"{op} on {name}: Unleash compares dates of currentTime only")
            if not isinstance(value, str) or parse_date(value) is None:
                raise Unmappable(path, f"{op} value {value!r} is not a date")
            # currentTime is the context's, else the evaluation time (the SDK's clock; time travel's instant).
            ours = Operator.AFTER if op == "DATE_AFTER" else Operator.BEFORE
            return [(Clause(attribute=attr, op=ours, values=(value,), negate=inverted, now="if_absent"),)]
        if name == "currentTime":
            raise Unmappable(path, f"{op} on currentTime: only DATE_AFTER and DATE_BEFORE are mapped")
        absent = Clause(attribute=attr, op=Operator.EXISTS, negate=True)
        # Unleash answers false for an absent field, then applies `inverted` (NOT_IN is a negated IN): so an
        # inverted constraint, or NOT_IN, matches contexts without the field. Our clauses never match an absent
        # attribute: that case becomes an alternative of its own.
        if op in ("IN", "NOT_IN"):
            cleaned = [v.strip() for v in values if isinstance(v, str) and v]  # Unleash's cleanValues
            if [v for v in values if isinstance(v, str)] != cleaned:
                self.pending.append((path, f"{op} values {values}: spaces trimmed and empty values dropped here, as"
                                     " the client spec and the Node, Java, Go SDKs do; Unleash's Rust engine"
                                     " (Python, Ruby, .NET SDKs) compares them as written"))  # fmt: skip
            negate = (op == "NOT_IN") != inverted
            present: Alternatives = [(Clause(attribute=attr, op=Operator.IN, values=tuple(cleaned), negate=negate),)]
            if not cleaned:
                present = _ALWAYS if negate else []
            return present + ([(absent,)] if negate else [])
        if op in ("STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH"):
            strings = [v for v in values if isinstance(v, str)]
            ours = {"STR_CONTAINS": Operator.CONTAINS, "STR_STARTS_WITH": Operator.STARTS_WITH,
                    "STR_ENDS_WITH": Operator.ENDS_WITH}[op]  # fmt: skip
            if not strings:
                present = _ALWAYS if inverted else []
            else:
                clause = Clause(attribute=attr, op=ours, values=tuple(strings), negate=inverted, case_insensitive=ci)
                present = [(clause,)]
            return present + ([(absent,)] if inverted else [])
        if op in ("NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"):
            number = _js_number(c.get("value", values[0] if values else None))
            if number is None:  # Number(value) is NaN: never matches (inverted: always)
                return _ALWAYS if inverted else []
            ours = {"NUM_EQ": Operator.IN, "NUM_GT": Operator.GT, "NUM_GTE": Operator.GTE, "NUM_LT": Operator.LT,
                    "NUM_LTE": Operator.LTE}[op]  # fmt: skip
            return [(Clause(attribute=attr, op=ours, values=(number,), negate=inverted),)] + (
                [(absent,)] if inverted else []
            )
        if op in _SEMVER_OPS:
            value = c.get("value", values[0] if values else None)
            if not isinstance(value, str) or parse_semver(value, "strict") is None:
                raise Unmappable(path, f"{op} value {value!r} is not a semantic version")
            # Unleash reads versions as semver 2.0 exactly (no "v", three numbers): the strict dialect.
            compare = Clause(attribute=attr, op=_SEMVER_OPS[op], values=(value,), negate=inverted, semver="strict")
            return [(compare,)] + ([(absent,)] if inverted else [])
        if op == "REGEX":
            pattern = c.get("value", values[0] if values else None)
            if not isinstance(pattern, str):
                raise Unmappable(path, f"REGEX value {pattern!r} is not a pattern")
            problem = regex_problem(pattern)
            if problem:
                raise Unmappable(path, f"REGEX {pattern!r}: {problem}")
            translated, difference = _rust_regex(pattern)
            if difference:
                self.pending.append((path, f"REGEX {pattern!r}: {difference}"))
            clause = Clause(
                attribute=attr, op=Operator.MATCHES, values=(translated,), negate=inverted, case_insensitive=ci
            )
            return [(clause,)] + ([(absent,)] if inverted else [])
        if op == "IN_CIDR":
            # Unleash skips the values that are not addresses or ranges, and reads the field as written (no spaces
            # trimmed, no IPv6 zone): the second clause keeps out the texts only Python's parser would read.
            ranges = tuple(v.strip() for v in values if isinstance(v, str) and _cidr(v) and v == v.strip())
            if not ranges:
                return _ALWAYS if inverted else []
            inside = (
                Clause(attribute=attr, op=Operator.IN_CIDR, values=ranges),
                Clause(attribute=attr, op=Operator.MATCHES, values=(_ADDRESS_TEXT,)),
            )
            if not inverted:
                return [inside]
            # not inside: absent, or not an address text, or outside the ranges
            return [
                (absent,),
                (Clause(attribute=attr, op=Operator.MATCHES, values=(_ADDRESS_TEXT,), negate=True),),
                (Clause(attribute=attr, op=Operator.IN_CIDR, values=ranges, negate=True),),
            ]
        raise Unmappable(path, f"unknown constraint operator {op!r}")


class _Feature:
    """One feature -> one flag (raises :class:`Unmappable` for anything that cannot be expressed exactly)."""

    def __init__(self, imp: _Importer, feature: dict[str, Any], name: str, path: str) -> None:
        self.imp = imp
        self.feature = feature
        self.name = name
        self.path = path
        self.subject = f"flag {name}"
        self.values: dict[str, Any] = {}  # variation key -> value
        self.by_value: dict[str, str] = {}  # canonical JSON of a value -> variation key
        self.segments: list[Segment] = []  # segments this flag needs (written only if the flag is imported)

    def note(self, severity: str, path: str, message: str) -> None:
        self.imp.result.note(severity, self.subject, path, message)  # type: ignore[arg-type]

    def variation(self, value: Any, hint: str) -> str:
        canonical = json.dumps(value, sort_keys=True)
        if canonical not in self.by_value:
            key = key_for(hint, set(self.values), "variant")
            self.values[key] = value
            self.by_value[canonical] = key
        return self.by_value[canonical]

    def flag(self) -> Flag:
        f, path = self.feature, self.path
        strategies = f.get("strategies") or []
        if not isinstance(strategies, list):
            raise Unmappable(f"{path}.strategies", "strategies must be a list")
        feature_variants = f.get("variants") or []
        has_variants = bool(feature_variants) or any(isinstance(s, dict) and s.get("variants") for s in strategies)
        if has_variants:
            off = self.variation({"name": "disabled", "enabled": False, "feature_enabled": False}, "disabled")
            on = self.variation({"name": "disabled", "enabled": False, "feature_enabled": True}, "enabled")
        else:
            on, off = self.variation(True, "on"), self.variation(False, "off")
        self.empty_text_constraints(strategies)
        rules: list[Rule] = []
        live = [(j, s) for j, s in enumerate(strategies) if not (isinstance(s, dict) and s.get("disabled"))]
        for j, s in enumerate(strategies):
            if isinstance(s, dict) and s.get("disabled"):
                self.note("mapped", f"{path}.strategies[{j}]", "disabled strategy: ignored, as Unleash does")
        if not live:  # Unleash: an enabled feature without strategies is enabled for everyone
            serves = self.feature_serve(on, f"{path}.variants", ())
            rules = [Rule(id=f"all-{i}", clauses=c, serve=v) for i, (c, v) in enumerate(serves)]
        for j, s in live:
            rules += self.strategy(s, f"{path}.strategies[{j}]", j, on)
        if len(rules) > MAX_RULES:
            raise Unmappable(path, f"expands to {len(rules)} rules (more than {MAX_RULES})")
        return Flag(
            key=self.imp.flag_keys[self.name],
            name=self.name,
            description=str(f.get("description") or ""),
            kind=FlagKind.JSON if has_variants else FlagKind.BOOLEAN,
            tags=tuple(t for t in ("unleash", str(f.get("type") or "")) if t),
            on=bool(f.get("enabled")),
            variations=tuple(Variation(key=k, value=v) for k, v in self.values.items()),
            off_variation=off,
            fallthrough=Serve(variation=off),
            rules=tuple(rules),
            prerequisites=self.dependencies(),
        )

    def empty_text_constraints(self, strategies: list[Any]) -> None:
        """A STR_* constraint without values, a NUM_* one whose value is not a number: Unleash's Rust engine
        (yggdrasil: the Python, Ruby, .NET SDKs) answers false for the whole feature, even from a segment; the
        client spec and the Node, Java, Go SDKs (and this import): the constraint never matches (inverted:
        always). Reported."""
        segments = {seg.get("id"): seg for seg in self.imp.doc.get("segments") or [] if isinstance(seg, dict)}
        for j, s in enumerate(strategies):
            if not isinstance(s, dict) or s.get("disabled"):  # the server does not serve those to SDKs
                continue
            constraints = [(f"{self.path}.strategies[{j}].constraints", s.get("constraints"))]
            constraints += [(f"segment {k}", _get(segments.get(k), "constraints")) for k in s.get("segments") or []]
            for where, cs in constraints:
                for c in cs if isinstance(cs, list) else []:
                    op, value = _get(c, "operator"), _get(c, "value")
                    if (
                        isinstance(op, str)
                        and op.startswith("STR_")
                        and not [v for v in _get(c, "values") or [] if isinstance(v, str)]
                    ):
                        what = f"{op} without values: never matches here (inverted: always)"
                    elif (
                        isinstance(op, str)
                        and op.startswith("NUM_")
                        and (_js_number(value) is None or (isinstance(value, str) and not value.strip()))
                    ):
                        what = f"{op} {value!r} is not a number: Number() decides here (NaN never matches, inverted"
                        " always)"
                    else:
                        continue
                    self.note(
                        "approximated",
                        where,
                        f"{what}, as the client spec and the Node, Java, Go SDKs answer; Unleash's Rust engine"
                        " (Python, Ruby, .NET SDKs) answers false for the whole feature",
                    )
                    return

    def dependencies(self) -> tuple[Prerequisite, ...]:
        out: list[Prerequisite] = []
        for i, d in enumerate(self.feature.get("dependencies") or []):
            path = f"{self.path}.dependencies[{i}]"
            parent = d.get("feature") if isinstance(d, dict) else None
            if parent not in self.imp.flags:
                raise Unmappable(path, f"depends on feature {parent!r}, which is not imported")
            if d.get("variants"):
                raise Unmappable(path, "a dependency on the parent's variants has no Flagstream equivalent")
            flag = self.imp.flags[parent]
            wanted = d.get("enabled", True) is not False
            if _ungrouped_percentage(self.imp.features.get(parent)):
                self.note(
                    "approximated",
                    path,
                    f"parent {parent!r} has a percentage without groupId: it is hashed with the parent's name here,"
                    " as the client spec and the Node, Java, Go SDKs do; Unleash's Rust engine (Python, Ruby, .NET"
                    " SDKs) hashes it with this feature's name when it checks the dependency",
                )
            if flag.kind is FlagKind.BOOLEAN:
                variation = "on" if wanted else "off"
            elif not wanted:
                variation = flag.off_variation
            else:
                raise Unmappable(path, "depends on a parent with variants being enabled (any of several variations)")
            out.append(Prerequisite(flag=flag.key, variation=variation))
        return tuple(out)

    # -- strategies ----------------------------------------------------------------------------------------

    def strategy(self, s: Any, path: str, index: int, on: str) -> list[Rule]:
        if not isinstance(s, dict):
            raise Unmappable(path, "a strategy must be an object")
        name, params = s.get("name"), s.get("parameters") or {}
        imp = self.imp
        conditions = imp._constraints(s.get("constraints") or [], f"{path}.constraints")
        for k, seg in enumerate(s.get("segments") or []):
            if seg in imp.unmapped_segments:
                raise Unmappable(f"{path}.segments[{k}]", f"uses segment {seg} ({imp.unmapped_segments[seg]})")
            if seg not in imp.segment_keys:
                raise Unmappable(f"{path}.segments[{k}]", f"uses segment {seg}, which is not in the file")
            conditions = _and(conditions, [(Clause(op=Operator.IN_SEGMENT, values=(imp.segment_keys[seg],)),)])
            if seg in imp.approximated_segments:
                self.note("approximated", f"{path}.segments[{k}]",
                          f"uses segment {imp.approximated_segments[seg]!r}, imported with a difference")  # fmt: skip
        percentage: list[tuple[tuple[Clause, ...], str | None]] = [((), None)]
        rollout, group = 100, str(params.get("groupId") or self.name)
        if '"' in group or group.endswith("\\"):
            self.note(
                "approximated",
                f"{path}.parameters.groupId",
                "a groupId with '\"' or a final backslash: hashed as written (the client spec, Node, Java, Go SDKs);"
                " Unleash's Rust engine (the Python, Ruby, .NET SDKs) matches nobody with it",
            )
        if name == "default":
            pass
        elif name == "userWithId":
            ids = _SPLIT.split(str(params.get("userIds", "")))
            conditions = _and(conditions, [(Clause(attribute=imp.attr("userId"), op=Operator.IN, values=tuple(ids)),)])
        elif name == "remoteAddress":
            ips = _SPLIT.split(str(params.get("IPs", "")))
            if any("/" in ip for ip in ips):  # CIDR ranges (and addresses): in_cidr
                ranges = tuple(ip for ip in ips if _cidr(ip))
                if len(ranges) != len(ips):
                    raise Unmappable(f"{path}.parameters.IPs", f"{ips} are not all IP addresses or CIDR ranges")
                clauses: tuple[Clause, ...] = (
                    Clause(attribute="remoteAddress", op=Operator.IN_CIDR, values=ranges),
                    Clause(attribute="remoteAddress", op=Operator.MATCHES, values=(_ADDRESS_TEXT,)),
                )
            else:
                clauses = (Clause(attribute="remoteAddress", op=Operator.IN, values=tuple(ips)),)
            conditions = _and(conditions, [clauses])
        elif name in ("flexibleRollout", "gradualRolloutUserId", "gradualRolloutSessionId", "gradualRolloutRandom"):
            key = "rollout" if name == "flexibleRollout" else "percentage"
            number = _js_number(params.get(key))
            if number is None:
                raise Unmappable(f"{path}.parameters.{key}", f"{params.get(key)!r} is not a percentage")
            rollout = max(0, min(100, math.floor(number)))  # normalizedValue (an integer) <= percentage
            stickiness = _GRADUAL.get(name, str(params.get("stickiness") or "default"))
            percentage = self.stickiness(stickiness, rollout, f"{path}.parameters")
        else:
            raise Unmappable(path, f"strategy {name!r} has no Flagstream equivalent")
        if rollout == 0:
            self.note("mapped", path, "0% rollout: matches nobody, as in Unleash")
            return []
        variants = s.get("variants") or []
        if (variants or self.feature.get("variants")) and any(b is not None for _, b in percentage):
            # Two hashes (who is in, then which variant): the percentage becomes a segment to be in.
            percentage = [((self.rollout_segment(percentage, rollout, group, index),), None)]
        rules: list[Rule] = []
        for cond in conditions:
            for extra, bucket_by in percentage:
                clauses = cond + extra
                if bucket_by is not None:
                    weighted = (WeightedVariation(variation=on, weight=rollout * 1000),)
                    r = Rollout(variations=weighted, bucket_by=bucket_by, algorithm=UNLEASH,
                                hash_prefix=f"{group}:", partial=True)  # fmt: skip
                    rules.append(Rule(id=f"s{index}-{len(rules)}", clauses=clauses, serve=Serve(rollout=r)))
                    continue
                if variants:
                    # Strategy variants are bucketed by the strategy's stickiness (their own is not read).
                    sticky = str(params.get("stickiness") or "default")
                    serves = self.variants_serve(variants, group, f"{path}.variants", (), sticky)
                else:
                    serves = self.feature_serve(on, f"{self.path}.variants", ())
                for more, serve in serves:
                    rules.append(Rule(id=f"s{index}-{len(rules)}", clauses=clauses + more, serve=serve))
        self.note("mapped", path, f"strategy {name}: {len(rules)} rule(s)")
        return rules

    def rollout_segment(
        self, percentage: list[tuple[tuple[Clause, ...], str | None]], rollout: int, group: str, index: int
    ) -> Clause:
        """A segment holding the strategy's percentage (Unleash's normalisation), and the clause to be in it."""
        key = key_for(f"{self.imp.flag_keys[self.name]}-s{index}-rollout", self.imp.segment_taken, "rollout")
        rules = tuple(
            SegmentRule(
                id=f"r{k}",
                clauses=extra,
                weight=rollout * 1000,
                bucket_by=bucket_by or "key",
                algorithm=UNLEASH,
                hash_prefix=f"{group}:",
            )
            for k, (extra, bucket_by) in enumerate(percentage)
        )
        name = f"{rollout}% of feature {self.name}, strategy {index} (Unleash)"
        self.segments.append(Segment(key=key, name=name, rules=rules, description="imported from Unleash"))
        return Clause(op=Operator.IN_SEGMENT, values=(key,))

    def stickiness(self, stickiness: str, rollout: int, path: str) -> list[tuple[tuple[Clause, ...], str | None]]:
        """(clauses, attribute to bucket by or None for "no percentage") alternatives for a percentage."""
        if stickiness == "random":
            if rollout in (0, 100):
                return [((), None)]
            raise Unmappable(f"{path}.stickiness", "random stickiness answers differently on every call")
        if rollout == 100:  # still needs a stickiness value (Unleash answers false without one)
            if stickiness == "default":
                return [((), None)]
            return [((Clause(attribute=self.imp.attr(stickiness), op=Operator.EXISTS),), None)]
        if stickiness != "default":
            return [((), self.imp.attr(stickiness))]
        user, session = self.imp.attr("userId"), "sessionId"
        self.note(
            "approximated",
            f"{path}.stickiness",
            f"default stickiness: contexts with neither {user} nor {session} are never in the {rollout}% here;"
            " Unleash puts them in at random on each evaluation",
        )
        return [((), user), ((Clause(attribute=user, op=Operator.EXISTS, negate=True),), session)]

    # -- variants ------------------------------------------------------------------------------------------

    def feature_serve(self, on: str, path: str, extra: tuple[Clause, ...]) -> list[tuple[tuple[Clause, ...], Serve]]:
        """What the feature serves when enabled by a strategy without variants: its variants (with overrides)
        or ``on``."""
        variants = self.feature.get("variants") or []
        if not variants:
            return [((), Serve(variation=on))]
        out: list[tuple[tuple[Clause, ...], Serve]] = []
        for i, v in enumerate(variants):
            for k, o in enumerate(v.get("overrides") or []):
                if not isinstance(o, dict) or not isinstance(o.get("contextName"), str):
                    raise Unmappable(f"{path}[{i}].overrides[{k}]", "an override needs a contextName")
                clause = Clause(attribute=self.imp.attr(o["contextName"]), op=Operator.IN,
                                values=tuple(o.get("values") or ()))  # fmt: skip
                if clause.values:
                    out.append(((clause,), Serve(variation=self.variant_key(v, f"{path}[{i}]"))))
        return out + self.variants_serve(variants, self.name, path, extra)

    def variant_key(self, v: Any, path: str) -> str:
        if not isinstance(v, dict) or not isinstance(v.get("name"), str):
            raise Unmappable(path, "a variant needs a name")
        value: dict[str, Any] = {"name": v["name"], "enabled": True, "feature_enabled": True}
        if v.get("payload") is not None:
            value["payload"] = v["payload"]
        return self.variation(value, v["name"])

    def variants_serve(
        self, variants: Sequence[Any], group: str, path: str, extra: tuple[Clause, ...], stickiness: str = ""
    ) -> list[tuple[tuple[Clause, ...], Serve]]:
        keys = [self.variant_key(v, f"{path}[{i}]") for i, v in enumerate(variants)]
        weights = [v.get("weight", 0) for v in variants]
        if not all(type(w) is int and w >= 0 for w in weights) or sum(weights) <= 0:
            raise Unmappable(path, f"variant weights {weights} are not whole numbers with a sum above 0")
        merged: dict[str, int] = {}
        for i, (k, w) in enumerate(zip(keys, weights, strict=True)):
            if k in merged and keys[i - 1] != k:
                raise Unmappable(f"{path}[{i}]", f"variant {k!r} appears twice, apart")
            merged[k] = merged.get(k, 0) + w  # the same variant twice in a row: one range
        # Unleash divides by the actual sum of the weights (not 1000): the ranges carry them exactly.
        ends = list(itertools.accumulate(merged.values()))
        ranges = tuple(zip((0, *ends[:-1]), ends, strict=True))
        nominal = _nominal(list(merged.values()))
        weighted = tuple(WeightedVariation(variation=k, weight=w) for k, w in zip(merged, nominal, strict=True))
        stickiness = stickiness or str(variants[0].get("stickiness") or "default")
        fields = ["userId", "sessionId", "remoteAddress"] if stickiness == "default" else [stickiness]
        out: list[tuple[tuple[Clause, ...], Serve]] = []
        absent: tuple[Clause, ...] = ()
        for name in fields:
            attr = self.imp.attr(name)
            r = Rollout(variations=weighted, bucket_by=attr, algorithm=UNLEASH_VARIANT, hash_prefix=f"{group}:",
                        ranges=ranges)  # fmt: skip
            out.append((extra + absent, Serve(rollout=r)))
            absent += (Clause(attribute=attr, op=Operator.EXISTS, negate=True),)
        first = next(k for k, w in merged.items() if w > 0)
        out.append((extra + absent, Serve(variation=first)))
        rust = (
            f"; a context with {self.imp.attr('remoteAddress')} but neither of the others is bucketed by it here"
            " (the client spec, Node, Java, Go SDKs), at random by Unleash's Rust engine (Python, Ruby, .NET SDKs)"
            if stickiness == "default"
            else ""
        )
        self.note(
            "approximated",
            path,
            f"contexts without {' or '.join(self.imp.attr(f) for f in fields)} get variant {first!r} here;"
            f" Unleash picks one at random on each evaluation{rust}",
        )
        return out


_SEMVER_OPS = {
    "SEMVER_EQ": Operator.SEMVER_EQ,
    "SEMVER_GT": Operator.SEMVER_GT,
    "SEMVER_GTE": Operator.SEMVER_GTE,
    "SEMVER_LT": Operator.SEMVER_LT,
    "SEMVER_LTE": Operator.SEMVER_LTE,
}


#: The characters of an IPv4 or IPv6 address as Unleash's engine reads it (Rust's ``IpAddr``: no spaces, no zone).
_ADDRESS_TEXT = "^[0-9A-Fa-f:.]+$"


#: Rust regex's ``\d`` is Unicode's decimal digits, as RE2's ``\p{Nd}``.
_RUST_CLASS_ESCAPES = {"d": r"\p{Nd}", "D": r"\P{Nd}"}


def _rust_regex(pattern: str) -> tuple[str, str | None]:
    r"""The RE2 pattern that matches as the regex of Unleash's Rust engine (yggdrasil: the Python, Ruby, .NET
    SDKs) does, and the difference when it cannot be exact. The syntaxes agree (``$`` is the end of the text in
    both) but for Unicode classes: ``\d`` becomes ``\p{Nd}``; ``\w``, ``\s``, ``\b`` (Unicode in Rust, ASCII
    in RE2) are the differences said. (The Node SDK's JavaScript regexes read ``\d`` as ASCII.)"""
    out: list[str] = []
    differences: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in _RUST_CLASS_ESCAPES:
                out.append(_RUST_CLASS_ESCAPES[nxt])
            else:
                if nxt in "wWsSbB":
                    differences.append(f"\\{nxt} is ASCII here, Unicode in Unleash's Rust engine")
                out.append(ch + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), ("; ".join(dict.fromkeys(differences)) or None)


def _cidr(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return False
    return True


def _nominal(weights: list[int]) -> list[int]:
    """Shares of 100,000 summing to exactly 100,000 (largest remainder): shown; the ranges decide."""
    total = sum(weights)
    raw = [w * 100_000 / total for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: 100_000 - sum(out)]:
        out[i] += 1
    return out


def _ungrouped_percentage(feature: Any) -> bool:
    """Whether a live strategy of ``feature`` takes a percentage strictly between 0 and 100 without a groupId."""
    for s in _get(feature, "strategies") or []:
        if not isinstance(s, dict) or s.get("disabled") or s.get("name") not in ("flexibleRollout", *_GRADUAL):
            continue
        params = s.get("parameters") or {}
        number = _js_number(params.get("rollout" if s["name"] == "flexibleRollout" else "percentage"))
        if number is not None and 0 < number < 100 and not params.get("groupId"):
            return True
    return False


def _and(left: Alternatives, right: Alternatives) -> Alternatives:
    return [a + b for a, b in itertools.product(left, right)]


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _js_number(value: Any) -> float | int | None:
    """JavaScript's ``Number(value)`` for the strings and numbers Unleash stores, ``None`` for NaN."""
    if type(value) is int or type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text) if text else 0.0
        except ValueError:
            return None
        return int(number) if number.is_integer() else number
    return None
