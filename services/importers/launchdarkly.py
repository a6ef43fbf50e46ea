"""LaunchDarkly -> Flagstream: the flags and segments of a LaunchDarkly flag data file (the SDKs' file data source
and the Relay Proxy's format: ``{"flags": {key: flag}, "segments": {key: segment}, "flagValues": {key: value}}``)
mapped to flags and segments that answer as LaunchDarkly's server-side SDKs do (docs/migration.md). Pure: no I/O
except :func:`load_launchdarkly` reading the file.

LaunchDarkly contexts are Flagstream contexts as they are (``{"kind": ..., "key": ...}``, multi-contexts). Rollouts
and segment percentages bucket with LaunchDarkly's own scheme (SHA-1 of ``key.salt`` or the seed, bucket-by,
context kind, experiments); clauses map one to one (``kind`` clauses, ``segmentMatch`` of segments that name
segments, semver in LaunchDarkly's dialect); an off prerequisite fails whatever it serves; a flag without an off
variation serves the caller's default. What differs is reported per flag; what cannot be expressed keeps the flag
out of the import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...events import (
    WEIGHT_TOTAL,
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
    Target,
    Variation,
    WeightedVariation,
)
from ...linear_regex import regex_problem
from ...schemes import LAUNCHDARKLY
from ...semver import parse_semver
from ...validation import segment_references
from .common import ImportFileError, ImportResult, Unmappable, key_for, read_json

_OPS = {
    "in": Operator.IN,
    "startsWith": Operator.STARTS_WITH,
    "endsWith": Operator.ENDS_WITH,
    "contains": Operator.CONTAINS,
    "matches": Operator.MATCHES,
    "lessThan": Operator.LT,
    "lessThanOrEqual": Operator.LTE,
    "greaterThan": Operator.GT,
    "greaterThanOrEqual": Operator.GTE,
    "before": Operator.BEFORE,
    "after": Operator.AFTER,
    "semVerEqual": Operator.SEMVER_EQ,
    "semVerLessThan": Operator.SEMVER_LT,
    "semVerGreaterThan": Operator.SEMVER_GT,
    "segmentMatch": Operator.IN_SEGMENT,
}
_TEXT_OPS = ("startsWith", "endsWith", "contains", "matches")
_NUMBER_OPS = ("lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual")


def load_launchdarkly(path: str | Path) -> ImportResult:
    """Read and map a LaunchDarkly flag data file; :class:`ImportFileError` if it is not one."""
    return import_launchdarkly(read_json(path), source=str(path))


def import_launchdarkly(doc: Any, *, source: str = "launchdarkly") -> ImportResult:
    if not isinstance(doc, dict) or not any(isinstance(doc.get(k), dict) for k in ("flags", "segments", "flagValues")):
        raise ImportFileError(f"{source}: not a LaunchDarkly flag data file (no 'flags', 'segments' or 'flagValues')")
    return _Importer(doc, source).run()


def _variation_keys(values: list[Any]) -> list[str]:
    taken: set[str] = set()
    out = []
    for i, v in enumerate(values):
        hint = json.dumps(v) if not isinstance(v, str) else v
        out.append(key_for(hint if len(hint) <= 40 else f"v{i}", taken, f"v{i}"))
    return out


class _Importer:
    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.doc = doc
        self.result = ImportResult(source=source)
        self.flags_in: dict[str, Any] = {
            k: v for k, v in (doc.get("flags") or {}).items() if isinstance(v, dict) and not v.get("deleted")
        }
        self.segments_in: dict[str, Any] = {
            k: v for k, v in (doc.get("segments") or {}).items() if isinstance(v, dict) and not v.get("deleted")
        }
        taken: set[str] = set()
        self.flag_keys = {k: key_for(k, taken, "flag") for k in [*self.flags_in, *(doc.get("flagValues") or {})]}
        seg_taken: set[str] = set()
        self.segment_keys = {k: key_for(k, seg_taken, "segment") for k in self.segments_in}
        self.variations = {
            k: _variation_keys(list(f.get("variations") or []))
            for k, f in self.flags_in.items()
            if isinstance(f.get("variations"), list)
        }
        self.unmapped_segments: dict[str, str] = {}

    def note(self, severity: str, subject: str, path: str, message: str) -> None:
        self.result.note(severity, subject, path, message)  # type: ignore[arg-type]

    def run(self) -> ImportResult:
        for key, seg in self.segments_in.items():
            self.segment(key, seg)
        for key, flag in self.flags_in.items():
            self.flag(key, flag)
        for key, value in (self.doc.get("flagValues") or {}).items():
            self.flag_value(key, value)
        self.result.segments = _referenced_first(self.result.segments, lambda s: segment_references(s))
        self.result.flags = _referenced_first(self.result.flags, lambda f: [p.flag for p in f.prerequisites])
        return self.result

    # -- segments --------------------------------------------------------------------------------------------

    def segment(self, key: str, seg: dict[str, Any]) -> None:
        subject, path = f"segment {key}", f"segments.{key}"
        before = len(self.result.notes)
        try:
            segment = self._segment(key, seg, path, subject)
        except Unmappable as e:
            del self.result.notes[before:]
            self.unmapped_segments[key] = e.message
            self.note("unmapped", subject, e.path, f"{e.message}; segment not imported")
            return
        self.result.segments.append(segment)
        self.note("mapped", subject, path, f"segment {segment.key}: {len(segment.rules)} rule(s)")

    def _segment(self, key: str, seg: dict[str, Any], path: str, subject: str) -> Segment:
        if seg.get("unbounded"):
            raise Unmappable(path, "a big segment (its members live in LaunchDarkly's store, not in the file)")
        included = [k for k in seg.get("included") or [] if isinstance(k, str)]
        excluded = [k for k in seg.get("excluded") or [] if isinstance(k, str) and k not in set(included)]
        if seg.get("excludedContexts"):
            raise Unmappable(f"{path}.excludedContexts", "excluded keys of other context kinds have no equivalent")
        rules: list[SegmentRule] = []
        for i, target in enumerate(seg.get("includedContexts") or []):
            kind = target.get("contextKind") or "user"
            values = tuple(v for v in target.get("values") or [] if isinstance(v, str))
            if excluded:
                raise Unmappable(
                    f"{path}.includedContexts[{i}]",
                    "included keys of another kind next to excluded"
                    " user keys (LaunchDarkly checks inclusion first, Flagstream exclusion)",
                )
            if values:
                clause = Clause(attribute="key", op=Operator.IN, values=values, context_kind=kind)
                rules.append(SegmentRule(id=f"included-{i}", clauses=(clause,)))
        salt = seg.get("salt") or ""
        for i, rule in enumerate(seg.get("rules") or []):
            rpath = f"{path}.rules[{i}]"
            clauses = self.clauses(rule.get("clauses") or [], rpath, subject)
            if clauses is None:
                continue  # no context can match it
            weight = rule.get("weight")
            extra: dict[str, Any] = {}
            if weight is not None:
                if type(weight) is not int or not 0 <= weight <= WEIGHT_TOTAL:
                    raise Unmappable(f"{rpath}.weight", f"weight {weight!r} is not 0 to 100,000")
                kind = rule.get("rolloutContextKind") or ""
                extra = {
                    "weight": weight,
                    "bucket_by": self.attribute(rule.get("bucketBy") or "key", bool(kind), f"{rpath}.bucketBy"),
                    "algorithm": LAUNCHDARKLY,
                    "hash_prefix": f"{key}.{salt}.",
                    "context_kind": kind,
                }
            rules.append(
                SegmentRule(id=key_for(str(rule.get("id") or f"r{i}"), {r.id for r in rules}), clauses=clauses, **extra)
            )
        return Segment(
            key=self.segment_keys[key],
            name=str(seg.get("name") or key),
            description=str(seg.get("description") or ""),
            included=tuple(included),
            excluded=tuple(excluded),
            rules=tuple(rules),
        )

    # -- flags -----------------------------------------------------------------------------------------------

    def flag(self, key: str, f: dict[str, Any]) -> None:
        subject, path = f"flag {key}", f"flags.{key}"
        before = len(self.result.notes)
        try:
            flag = self._flag(key, f, path, subject)
        except Unmappable as e:
            del self.result.notes[before:]
            self.note("unmapped", subject, e.path, f"{e.message}; flag not imported")
            self.result.skipped.append(key)
            return
        self.result.flags.append(flag)
        renamed = f" (key {flag.key})" if flag.key != key else ""
        self.note("mapped", subject, path, f"{'on' if flag.on else 'off'}, {len(flag.rules)} rule(s){renamed}")

    def _flag(self, key: str, f: dict[str, Any], path: str, subject: str) -> Flag:
        values = f.get("variations")
        if not isinstance(values, list) or not values:
            raise Unmappable(f"{path}.variations", "a flag needs a list of variations")
        keys = self.variations[key]

        def var(index: Any, where: str) -> str:
            if type(index) is not int or not 0 <= index < len(keys):
                raise Unmappable(where, f"variation {index!r} is not one of the {len(keys)} variations")
            return keys[index]

        off = f.get("offVariation")
        targets: list[Target] = []
        seen: set[tuple[str, str]] = set()
        user_targets = {t.get("variation"): t.get("values") or [] for t in f.get("targets") or []}
        order = f.get("contextTargets") or [
            {"contextKind": "user", "variation": t.get("variation"), "values": []} for t in f.get("targets") or []
        ]
        kinds_done: list[str] = []
        for i, t in enumerate(order):
            kind = t.get("contextKind") or "user"
            if kinds_done and kinds_done[-1] != kind and kind in kinds_done:
                raise Unmappable(f"{path}.contextTargets[{i}]", "targets of different context kinds interleave")
            if not kinds_done or kinds_done[-1] != kind:
                kinds_done.append(kind)
            variation = var(t.get("variation"), f"{path}.contextTargets[{i}].variation")
            listed = user_targets.get(t.get("variation"), []) if kind == "user" else t.get("values") or []
            fresh = [v for v in listed if isinstance(v, str) and (kind, v) not in seen]  # the first target wins
            seen.update((kind, v) for v in fresh)
            if fresh:
                targets.append(Target(variation=variation, values=tuple(fresh), context_kind=kind))
        rules = []
        for i, rule in enumerate(f.get("rules") or []):
            rpath = f"{path}.rules[{i}]"
            clauses = self.clauses(rule.get("clauses") or [], rpath, subject)
            serve = self.serve(rule, key, f, var, rpath)
            if clauses is None:
                self.note("mapped", subject, rpath, "a rule no context can match: left out, as it never applies")
                continue
            rid = key_for(str(rule.get("id") or f"rule-{i}"), {r.id for r in rules}, f"rule-{i}")
            rules.append(Rule(id=rid, description=str(rule.get("description") or ""), clauses=clauses, serve=serve))
        prerequisites = []
        for i, p in enumerate(f.get("prerequisites") or []):
            ppath = f"{path}.prerequisites[{i}]"
            other = p.get("key")
            if other not in self.flags_in:
                raise Unmappable(ppath, f"prerequisite {other!r} is not a flag of the file")
            other_keys = self.variations.get(other, [])
            index = p.get("variation")
            if type(index) is not int or not 0 <= index < len(other_keys):
                raise Unmappable(ppath, f"variation {index!r} of {other!r} does not exist")
            prerequisites.append(Prerequisite(flag=self.flag_keys[other], variation=other_keys[index], require_on=True))
        kinds = {type(v) for v in values}
        kind = (
            FlagKind.BOOLEAN
            if kinds == {bool}
            else FlagKind.STRING
            if kinds == {str}
            else FlagKind.NUMBER
            if kinds <= {int, float}
            else FlagKind.JSON
        )
        return Flag(
            key=self.flag_keys[key],
            name=str(f.get("name") or key),
            description=str(f.get("description") or ""),
            kind=kind,
            tags=("launchdarkly",),
            on=bool(f.get("on")),
            variations=tuple(Variation(key=k, value=v) for k, v in zip(keys, values, strict=True)),
            off_variation=keys[0] if off is None else var(off, f"{path}.offVariation"),
            off_default=off is None,
            fallthrough=self.serve(f.get("fallthrough") or {}, key, f, var, f"{path}.fallthrough"),
            targets=tuple(targets),
            rules=tuple(rules),
            prerequisites=tuple(prerequisites),
            salt=str(f.get("salt") or ""),
        )

    def flag_value(self, key: str, value: Any) -> None:
        """``flagValues``: a flag that serves one value to everyone (the file data source's short form)."""
        kind = {bool: FlagKind.BOOLEAN, str: FlagKind.STRING, int: FlagKind.NUMBER, float: FlagKind.NUMBER}
        flag = Flag(
            key=self.flag_keys[key],
            name=key,
            kind=kind.get(type(value), FlagKind.JSON),
            on=True,
            tags=("launchdarkly",),
            variations=(Variation(key="value", value=value),),
            off_variation="value",
            fallthrough=Serve(variation="value"),
        )
        self.result.flags.append(flag)
        self.note("mapped", f"flag {key}", f"flagValues.{key}", "serves its one value to everyone")

    def serve(self, vr: dict[str, Any], key: str, f: dict[str, Any], var: Any, path: str) -> Serve:
        if vr.get("variation") is not None:
            return Serve(variation=var(vr["variation"], f"{path}.variation"))
        r = vr.get("rollout")
        if not isinstance(r, dict) or not r.get("variations"):
            raise Unmappable(path, "serves neither a variation nor a rollout (LaunchDarkly answers an error)")
        weighted = []
        for i, wv in enumerate(r["variations"]):
            weight = wv.get("weight")
            if type(weight) is not int or not 0 <= weight <= WEIGHT_TOTAL:
                raise Unmappable(f"{path}.rollout.variations[{i}].weight", f"weight {weight!r} is not 0 to 100,000")
            weighted.append(
                WeightedVariation(variation=var(wv.get("variation"), f"{path}.rollout.variations[{i}]"), weight=weight)
            )
        total = sum(w.weight for w in weighted)
        if total > WEIGHT_TOTAL:
            raise Unmappable(f"{path}.rollout", f"weights sum to {total}, more than 100,000")
        if len({w.variation for w in weighted}) != len(weighted):
            raise Unmappable(f"{path}.rollout", "a variation appears twice in the rollout")
        experiment = r.get("kind") == "experiment"
        kind = r.get("contextKind") or ""
        bucket_by = "key" if experiment else self.attribute(r.get("bucketBy") or "key", bool(kind), f"{path}.rollout")
        seed = r.get("seed")
        prefix = f"{seed}." if type(seed) is int else f"{key}.{f.get('salt') or ''}."
        return Serve(
            rollout=Rollout(
                variations=tuple(weighted),
                bucket_by=bucket_by,
                context_kind=kind or "user",
                algorithm=LAUNCHDARKLY,
                hash_prefix=prefix,
                partial=total < WEIGHT_TOTAL,
            )
        )

    # -- clauses ---------------------------------------------------------------------------------------------

    def attribute(self, name: Any, is_ref: bool, path: str) -> str:
        """A clause's or rollout's attribute: a reference (``/a/b``) when the clause names a context kind, else a
        plain attribute name (LaunchDarkly's older data)."""
        if not isinstance(name, str) or not name:
            raise Unmappable(path, "an attribute must be a name")
        if is_ref:
            return name
        if name.startswith("/"):
            raise Unmappable(path, f"the plain attribute name {name!r} starts with '/' (a path in Flagstream)")
        return name

    def clauses(self, clauses: list[Any], path: str, subject: str) -> tuple[Clause, ...] | None:
        """The clauses of a rule, or ``None`` if one can never match (the rule is then left out: it never
        applies in LaunchDarkly either). A clause that always matches is left out."""
        out = []
        for j, c in enumerate(clauses):
            cpath = f"{path}.clauses[{j}]"
            if not isinstance(c, dict):
                raise Unmappable(cpath, "a clause must be an object")
            clause = self.clause(c, cpath, subject)
            if clause is False:
                return None
            if clause is not True:
                out.append(clause)
        return tuple(out)

    def clause(self, c: dict[str, Any], path: str, subject: str) -> Clause | bool:
        op_name = c.get("op")
        if op_name not in _OPS:
            raise Unmappable(f"{path}.op", f"unknown operator {op_name!r} (LaunchDarkly: never matches)")
        op = _OPS[op_name]
        values = list(c.get("values") or [])
        negate = bool(c.get("negate"))
        if op is Operator.IN_SEGMENT:
            keys = []
            for v in values:
                if v in self.unmapped_segments:
                    raise Unmappable(path, f"segment {v!r} is not imported ({self.unmapped_segments[v]})")
                if v in self.segment_keys:
                    keys.append(self.segment_keys[v])
            if not keys:  # LaunchDarkly: no such segment contains anybody
                return negate
            return Clause(op=Operator.IN_SEGMENT, values=tuple(keys), negate=negate)
        kind = c.get("contextKind") or ""
        attribute = self.attribute(c.get("attribute"), bool(kind), f"{path}.attribute")
        extra: dict[str, Any] = {}
        if op_name in _TEXT_OPS:
            values = [v for v in values if isinstance(v, str)]
        elif op_name in _NUMBER_OPS:
            values = [v for v in values if type(v) in (int, float)]
        elif op_name.startswith("semVer"):
            values = [v for v in values if isinstance(v, str) and parse_semver(v, "launchdarkly") is not None]
            extra["semver"] = "launchdarkly"
        elif op_name in ("before", "after"):
            values = [v for v in values if type(v) in (int, float) or isinstance(v, str)]
            self.note(
                "approximated",
                subject,
                path,
                "dates in the context: a number below 1e11 is read as seconds"
                " here (LaunchDarkly: always milliseconds), and ISO-8601 text without a time or zone is a date"
                " here (LaunchDarkly refuses it); RFC 3339 text and millisecond numbers read the same",
            )
            values = [_iso(v) if type(v) in (int, float) else v for v in values]
        if op is Operator.MATCHES:
            for v in values:
                problem = regex_problem(v)
                if problem:
                    raise Unmappable(f"{path}.values", f"regex {v!r}: {problem} (Flagstream runs RE2)")
            self.note(
                "approximated",
                subject,
                path,
                "regexes run on RE2 here, Python's re there: \\d, \\w and \\s match ASCII only here",
            )
        if not values:  # no value a context can match: false, or negated, true when the attribute is there
            if not negate:
                return False
            return Clause(attribute=attribute, op=Operator.EXISTS, context_kind=kind or "user")
        return Clause(
            attribute=attribute, op=op, values=tuple(values), negate=negate, context_kind=kind or "user", **extra
        )


def _referenced_first(items: list[Any], references: Any) -> list[Any]:
    """``items`` (flags or segments) ordered so that each comes after those it names: the API checks that a
    prerequisite or a named segment exists when it is written."""
    by_key = {i.key: i for i in items}
    out: list[Any] = []
    done: set[str] = set()

    def visit(item: Any, active: frozenset[str]) -> None:
        if item.key in done or item.key in active:
            return
        for k in references(item):
            if k in by_key:
                visit(by_key[k], active | {item.key})
        done.add(item.key)
        out.append(item)

    for item in items:
        visit(item, frozenset())
    return out


def _iso(ms: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
