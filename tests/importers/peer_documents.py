"""Differential checks of whole importers against each peer's own SDK: hypothesis generates documents in the
peer's own format (a Flagsmith environment document, a GrowthBook features payload) using every construct the
importer claims to map exactly, the importer maps them, and the peer's SDK and Flagstream's engine answer for
many generated contexts. :func:`run_importer` returns how many flags and contexts were compared and the
differences found; ``tests/importers/test_import_flagsmith.py`` and ``test_import_growthbook.py`` run a few
thousand contexts in the suite, ``bench/differential.py`` 100,000 per importer.

Not a test module: helpers shared by the tests and the long run.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstream.engine import compile_flag, compile_segments, evaluate
from flagstream.services.importers import (
    ImportResult,
    import_flagd,
    import_flagsmith,
    import_growthbook,
    import_launchdarkly,
    import_unleash,
)

Context = dict[str, Any]


@dataclass
class Tally:
    importer: str
    documents: int = 0
    flags: int = 0
    skipped: int = 0
    contexts: int = 0
    differences: list[str] = field(default_factory=list)


def engine_answers(result: ImportResult) -> Callable[[str, Context], Any]:
    """``answer(flag key, context)`` of the imported flags and segments, on Flagstream's engine."""
    segments = compile_segments({s.key: s for s in result.segments})
    flags = {f.key: compile_flag(f, segments) for f in result.flags}
    for f in flags.values():
        assert f.error is None or f.error.__class__.__name__ == "_Special", (f.key, f.problems)

    def answer(key: str, context: Context) -> Any:
        # The evaluation time an SDK passes: its clock (generated times are years from it).
        d = evaluate(flags, key, context, "<default>", now=time.time() * 1000)
        assert d.reason.kind != "ERROR", (key, d.reason, context)
        return d.value

    return answer


# -- Flagsmith -------------------------------------------------------------------------------------------------

_FS_TEXT = "abcXYZ019-_.é漢"
_IDENTIFIERS = ["u1", "u2", "7", "007", "1.50", "1.5", "-3", "é漢", "user-42", ""]
_TRAITS = ["plan", "age", "v"]
_FS_VALUES = st.sampled_from(
    ["pro", "free", "5", "5.0", "1e3", "-3", " 7", "true", "False", "", "abc", "1.2.3", "é", "10", "2.5", "007"]
)
_SEMVERS = st.sampled_from(["1.2.3", "2.0.0-rc.1", "1.0.0", "0.9.9", "abc", "1.2"])
_PATTERNS = st.sampled_from(["[0-9]+", "pro", "p.o$", "T", "\\d\\.\\d", "a|b", "^-?1", "é+", "(x|y)$", "[a-f]{2,}"])


@st.composite
def fs_condition(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            [
                "EQUAL",
                "NOT_EQUAL",
                "GREATER_THAN",
                "GREATER_THAN_INCLUSIVE",
                "LESS_THAN",
                "LESS_THAN_INCLUSIVE",
                "CONTAINS",
                "NOT_CONTAINS",
                "REGEX",
                "MODULO",
                "IS_SET",
                "IS_NOT_SET",
                "IN",
                "PERCENTAGE_SPLIT",
                "UNKNOWN_OP",
            ]
        )
    )
    prop = draw(st.sampled_from([*_TRAITS, "$.identity.identifier"]))
    value: Any
    if op == "PERCENTAGE_SPLIT":
        prop = draw(st.sampled_from(["", "", "plan", "age"]))
        value = draw(st.sampled_from(["0", "10", "33.3", "50", "66.666", "99.99", "100", "150", "-1", "x"]))
    elif op == "MODULO":
        value = draw(st.sampled_from(["2|0", "3|1", "2.5|0.5", "x|1", "4"]))
    elif op == "REGEX":
        value = draw(_PATTERNS)
    elif op == "IN":
        items = draw(st.lists(_FS_VALUES | st.sampled_from(_IDENTIFIERS), min_size=0, max_size=4))
        form = draw(st.sampled_from(["list", "csv", "json"]))
        value = items if form == "list" else ",".join(items) if form == "csv" else json.dumps(items)
    elif op in ("IS_SET", "IS_NOT_SET"):
        value = None
    elif op not in ("CONTAINS", "NOT_CONTAINS") and draw(st.integers(0, 2)) == 0:
        value = draw(_SEMVERS) + ":semver"
    else:
        value = draw(_FS_VALUES)
    return {"operator": op, "property_": prop, "value": value}


@st.composite
def fs_rule(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    conditions = draw(st.lists(fs_condition(), min_size=1 - depth, max_size=2))
    rules = draw(st.lists(fs_rule(depth + 1), max_size=1)) if depth < 1 and draw(st.integers(0, 3)) == 0 else []
    return {"type": draw(st.sampled_from(["ALL", "ANY", "NONE"])), "conditions": conditions, "rules": rules}


def _fs_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return []  # contains nobody
    if shape <= 4:  # one condition: each operator decides on its own
        return [{"type": "ALL", "conditions": [draw(fs_condition())], "rules": []}]
    return draw(st.lists(fs_rule(), min_size=1, max_size=2))


def _fs_value(draw: st.DrawFn, toggles: bool) -> Any:
    if toggles:
        return None
    return draw(st.sampled_from([None, "blue", "green", 3, True, "", "x" * 3]))


@st.composite
def fs_state(draw: st.DrawFn, name: str, fid: int, toggles: bool, priority: Any = None) -> dict[str, Any]:
    mv = []
    if not toggles and draw(st.integers(0, 2)) == 0:
        for k in range(draw(st.integers(1, 3))):
            mv_id = draw(st.none() | st.integers(1, 10**6))
            mv.append(
                {
                    "id": mv_id,
                    "mv_fs_value_uuid": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
                    "percentage_allocation": draw(st.integers(0, 6000)) / 100,
                    "multivariate_feature_option": {"value": draw(st.sampled_from(["a", "b", "c", 7, False])), "id": k},
                }
            )
    django_id = draw(st.none() | st.integers(1, 10**6))
    state: dict[str, Any] = {
        "feature": {"id": fid, "name": name, "type": "MULTIVARIATE" if mv else "STANDARD"},
        "enabled": draw(st.booleans()),
        "feature_state_value": _fs_value(draw, toggles),
        "django_id": django_id,
        "featurestate_uuid": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "multivariate_feature_state_values": mv,
        "feature_segment": None if priority is None else {"priority": priority},
    }
    return state


@st.composite
def flagsmith_document(draw: st.DrawFn) -> dict[str, Any]:
    api_key = draw(st.text(alphabet=_FS_TEXT, min_size=1, max_size=8))
    names = draw(st.lists(st.sampled_from(["checkout", "banner", "search", "dark-mode"]), min_size=1, max_size=3,
                          unique=True))  # fmt: skip
    toggles = {n: draw(st.booleans()) for n in names}
    features = [draw(fs_state(n, i + 1, toggles[n])) for i, n in enumerate(names)]
    segments = []
    for s in range(draw(st.integers(1, 4))):
        overrides = []
        for n in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
            priority = draw(st.none() | st.integers(0, 3))
            overrides.append(draw(fs_state(n, names.index(n) + 1, toggles[n], priority)))
        segments.append(
            {
                "id": draw(st.integers(1, 10**6)) * 10 + s,
                "name": f"segment {s}",
                "rules": _fs_rules(draw),
                "feature_states": overrides,
            }
        )
    identities = []
    for identifier in draw(st.lists(st.sampled_from(_IDENTIFIERS), max_size=4)):
        chosen = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
        identities.append(
            {
                "identifier": identifier,
                "identity_features": [
                    {
                        "feature": {"id": names.index(n) + 1, "name": n},
                        "enabled": draw(st.booleans()),
                        "feature_state_value": _fs_value(draw, toggles[n]),
                        "featurestate_uuid": str(uuid.uuid4()),
                        "multivariate_feature_state_values": [],
                    }
                    for n in chosen
                ],
            }
        )
    return {
        "api_key": api_key,
        "name": "Production",
        "feature_states": features,
        "project": {"id": 1, "name": "p", "segments": segments},
        "identity_overrides": identities,
    }


def flagsmith_contexts(seed: int, n: int) -> list[tuple[str, dict[str, Any]]]:
    """(identifier, traits): numeric-looking texts, numbers, booleans, absent traits, the JSONPath-named trait."""
    rnd = random.Random(seed)
    values = ["pro", "free", "5", "5.0", "007", "1.50", "2.5", " 7", "-3", "1e3", "true", "False", "abc", "",
              "1.2.3", "2.0.0-rc.1", "0.9.9", "1.0.0+b", "10", "é", "bp", "proto"]  # fmt: skip
    out = []
    for _ in range(n):
        traits: dict[str, Any] = {}
        for name in _TRAITS:
            r = rnd.random()
            if r < 0.45:
                traits[name] = rnd.choice(values)
            elif r < 0.6:
                traits[name] = rnd.randint(-5, 12)
            elif r < 0.7:
                traits[name] = rnd.choice([2.5, 5.0, -3.0, 0.5, 1000.0])
            elif r < 0.8:
                traits[name] = rnd.choice([True, False])
        if rnd.random() < 0.05:
            traits["$.identity.identifier"] = rnd.choice(_IDENTIFIERS)
        identifier = rnd.choice(_IDENTIFIERS) if rnd.random() < 0.5 else "".join(rnd.choice(_FS_TEXT) for _ in range(6))
        out.append((identifier, traits))
    return out


class _Handler:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def get_environment(self) -> dict[str, Any]:
        return self.doc


def flagsmith_peer(doc: dict[str, Any]) -> Callable[[str, str, dict[str, Any]], tuple[bool, Any]]:
    """Flagsmith's SDK in offline mode on ``doc``: ``answer(feature name, identifier, traits) -> (enabled, value)``."""
    from flagsmith import Flagsmith

    client = Flagsmith(offline_mode=True, offline_handler=_Handler(doc))

    def answer(name: str, identifier: str, traits: dict[str, Any]) -> tuple[bool, Any]:
        flag = client.get_identity_flags(identifier, dict(traits)).get_flag(name)
        return flag.enabled, flag.value

    return answer


def check_flagsmith(doc: dict[str, Any], contexts: list[tuple[str, dict[str, Any]]], tally: Tally, keep: int) -> None:
    result = import_flagsmith(doc)
    approximated = [n for n in result.notes if n.severity == "approximated"]
    assert not approximated, approximated  # the generator uses only what maps exactly
    peer = flagsmith_peer(doc)
    ours = engine_answers(result)
    tally.documents += 1
    tally.skipped += len(result.skipped)
    by_name = {f.description.removeprefix("Flagsmith feature "): f for f in result.flags}
    tally.flags += len(by_name)
    for name, flag in by_name.items():
        for identifier, traits in contexts:
            tally.contexts += 1
            theirs = peer(name, identifier, traits)
            value = ours(flag.key, {"key": identifier, **traits})
            mine = (value, None) if flag.kind == "boolean" else (value["enabled"], value["value"])
            if theirs != mine and len(tally.differences) < keep:
                tally.differences.append(
                    f"{json.dumps(doc)}\n  feature {name} identity {identifier!r} traits {traits!r}:"
                    f" flagsmith {theirs!r}, flagstream {mine!r}"
                )


# -- GrowthBook ------------------------------------------------------------------------------------------------

_GB_ATTRS = ["id", "a", "b", "nested.x", "v"]
_GB_SCALARS = st.sampled_from(["pro", "free", "", "é漢", "10", "2", "abc", 0, 1, 2, 2.5, 10, -1, True, False, 1.0])
_GB_VERSIONS = st.sampled_from(["1.2.3", "1.10.0", "2.0.0-rc.1", "v1.2", "1.2.3+b", "0", ""])
_GB_PATTERNS = st.sampled_from(["^p", "o$", "[0-9]+", "é", "a|b", "^$", "x{2,}", "\\d", "(p|f)r"])


@st.composite
def gb_operator(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            ["$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$exists", "$regex", "$notRegex",
             "$veq", "$vne", "$vlt", "$vgte", "$not", "$inGroup", "$notInGroup"]
        )
    )  # fmt: skip
    if op in ("$in", "$nin"):
        return {op: draw(st.lists(_GB_SCALARS, max_size=3))}
    if op == "$exists":
        return {op: draw(st.sampled_from([True, False, 1, 0]))}
    if op in ("$regex", "$notRegex"):
        return {op: draw(_GB_PATTERNS)}
    if op.startswith("$v"):
        return {op: draw(_GB_VERSIONS)}
    if op == "$not":
        return {op: draw(gb_operator())}
    if op in ("$inGroup", "$notInGroup"):
        return {op: draw(st.sampled_from(["group-a", "missing"]))}
    return {op: draw(_GB_SCALARS | st.none())}


@st.composite
def gb_condition(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    cond: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 2))):
        shape = draw(st.integers(0, 9))
        if shape <= 2:
            cond[draw(st.sampled_from(_GB_ATTRS))] = draw(_GB_SCALARS | st.none())
        elif shape <= 6 or depth >= 1:
            cond[draw(st.sampled_from(_GB_ATTRS))] = draw(gb_operator())
        elif shape <= 8:
            cond[draw(st.sampled_from(["$or", "$and", "$nor"]))] = draw(st.lists(gb_condition(depth + 1), max_size=2))
        else:
            cond["$not"] = draw(gb_condition(depth + 1))
    return cond


@st.composite
def gb_rule(draw: st.DrawFn, name: str, values: list[Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["condition"] = draw(gb_condition())
    rule["hashAttribute"] = draw(st.sampled_from(["id", "id", "a", "b"]))
    rule["hashVersion"] = draw(st.sampled_from([1, 2]))
    if draw(st.booleans()):
        rule["seed"] = draw(st.text(alphabet="abcé-", max_size=5))
    if draw(st.integers(0, 3)) == 0:
        rule["filters"] = [
            {"attribute": draw(st.sampled_from(["id", "a"])), "seed": draw(st.text(alphabet="xyz", max_size=3)),
             "hashVersion": draw(st.sampled_from([1, 2])),
             "ranges": [sorted(draw(st.lists(st.integers(0, 100).map(lambda x: x / 100), min_size=2, max_size=2)))]}
            for _ in range(draw(st.integers(1, 2)))
        ]  # fmt: skip
    if draw(st.booleans()):  # a force rule: everyone, a coverage, or a range
        rule["force"] = draw(st.sampled_from(values))
        reach = draw(st.integers(0, 3))
        if reach == 1:
            rule["coverage"] = draw(st.integers(0, 100)) / 100
        elif reach == 2:
            rule["range"] = sorted(draw(st.lists(st.integers(0, 100).map(lambda x: x / 100), min_size=2, max_size=2)))
        if reach and draw(st.booleans()):
            rule["fallbackAttribute"] = draw(st.sampled_from(["a", "b"]))
        return rule
    n = draw(st.integers(2, 3))
    rule["key"] = draw(st.sampled_from(["", "exp-1", "exp-é"]))
    rule["variations"] = draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))
    shape = draw(st.integers(0, 3))
    if shape == 1:
        raw = draw(st.lists(st.integers(0, 10), min_size=n, max_size=n))
        rule["weights"] = [w / sum(raw) for w in raw] if sum(raw) else raw
    elif shape == 2:
        rule["ranges"] = [sorted(draw(st.lists(st.integers(0, 100).map(lambda x: x / 100), min_size=2, max_size=2)))
                          for _ in range(n)]  # fmt: skip
    if draw(st.booleans()):
        rule["coverage"] = draw(st.integers(0, 100)) / 100
    if draw(st.integers(0, 2)) == 0:
        start = draw(st.integers(0, 100)) / 100
        rule["namespace"] = [
            draw(st.sampled_from(["ns1", "ns2"])),
            start,
            min(1.0, start + draw(st.integers(0, 60)) / 100),
        ]
    if draw(st.integers(0, 4)) == 0 and "ranges" not in rule:
        rule["meta"] = [{"key": str(i), "passthrough": draw(st.booleans())} for i in range(n)]
    return rule


@st.composite
def growthbook_payload(draw: st.DrawFn) -> dict[str, Any]:
    features = {}
    for name in draw(st.lists(st.sampled_from(["checkout", "banner", "search"]), min_size=1, max_size=2, unique=True)):
        kind = draw(st.sampled_from(["bool", "string", "json"]))
        values: list[Any] = {"bool": [True, False], "string": ["blue", "green", "red"],
                             "json": [{"a": 1}, [1, 2], "x", 3]}[kind]  # fmt: skip
        features[name] = {
            "defaultValue": draw(st.sampled_from([*values, None])),
            "rules": draw(st.lists(gb_rule(name, values), max_size=3)),
        }
    return {"features": features, "savedGroups": {"group-a": ["pro", "u1", 10]}}


def growthbook_contexts(seed: int, n: int) -> list[dict[str, Any]]:
    """GrowthBook attributes: ids and values of every JSON type, lists, nested objects, versions, absences."""
    rnd = random.Random(seed)
    scalars = ["pro", "free", "", "é漢", "10", "2", "abc", "u1", 0, 1, 2, 2.5, 10, -1, True, False, 1.0, "ox"]
    versions = ["1.2.3", "1.10.0", "2.0.0-rc.1", "v1.2", "1.2.3+b", "0", "", "1.2.3-beta", 3]
    out = []
    for i in range(n):
        attrs: dict[str, Any] = {}
        if rnd.random() < 0.9:
            attrs["id"] = rnd.choice(["u1", "", 7, f"user-{i}", f"é{i}", 0, True]) if rnd.random() < 0.3 else f"u{i}"
        for name in ("a", "b"):
            r = rnd.random()
            if r < 0.75:
                attrs[name] = rnd.choice(scalars)
            elif r < 0.85:
                attrs[name] = rnd.sample(scalars, rnd.randint(0, 3))
            elif r < 0.9:
                attrs[name] = None
        if rnd.random() < 0.6:
            attrs["nested"] = {"x": rnd.choice(scalars)} if rnd.random() < 0.9 else rnd.choice(scalars)
        if rnd.random() < 0.7:
            attrs["v"] = rnd.choice(versions)
        out.append(attrs)
    return out


def growthbook_peer(payload: dict[str, Any]) -> Callable[[str, dict[str, Any]], Any]:
    from growthbook import GrowthBook

    def answer(name: str, attributes: dict[str, Any]) -> Any:
        gb = GrowthBook(attributes=attributes, features=payload["features"], savedGroups=payload.get("savedGroups"))
        return gb.get_feature_value(name, "<default>")

    return answer


def check_growthbook(doc: dict[str, Any], contexts: list[dict[str, Any]], tally: Tally, keep: int) -> None:
    result = import_growthbook(doc)
    approximated = [n for n in result.notes if n.severity == "approximated"]
    assert not approximated, approximated  # the generator uses only what maps exactly
    peer = growthbook_peer(doc)
    ours = engine_answers(result)
    tally.documents += 1
    tally.skipped += len(result.skipped)
    by_name = {f.description.removeprefix("GrowthBook feature "): f for f in result.flags}
    tally.flags += len(by_name)
    for name, flag in by_name.items():
        for attributes in contexts:
            tally.contexts += 1
            theirs = peer(name, attributes)
            mine = ours(flag.key, {"key": "k", **attributes})
            if theirs != mine and len(tally.differences) < keep:
                tally.differences.append(
                    f"{json.dumps(doc)}\n  feature {name} attributes {attributes!r}: growthbook {theirs!r},"
                    f" flagstream {mine!r}"
                )


# -- Unleash ---------------------------------------------------------------------------------------------------

_UN_TEXT = ["pro", "free", "team", " pro ", "", "NO", "se", "é漢", "ann@EXAMPLE.com", "bob@example.com", "10", "٣"]
_UN_VERSIONS = ["1.2.3", "2.0.0", "2.0.0-rc.1", "1.10.0", "0.0.1", "2.0.0+build"]
_UN_PATTERNS = ["^p", "o$", "[0-9]+", "\\d", "[\\d]$", "\\D", "@example\\.com$", "é", "a|b", "^$", "(?i)PRO", "x{2,}"]
_UN_RANGES = ["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "10.1.2.3/16", "172.16.5.4", "junk", " 10.0.0.0/8"]
_UN_DATES = ["2020-01-01T00:00:00.000Z", "2026-01-01T00:00:00Z", "2031-06-01T12:00:00.000Z"]


@st.composite
def un_constraint(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            ["IN", "NOT_IN", "STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH", "NUM_EQ", "NUM_GT", "NUM_GTE",
             "NUM_LT", "NUM_LTE", "SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE", "REGEX",
             "IN_CIDR", "DATE_AFTER", "DATE_BEFORE"]
        )
    )  # fmt: skip
    c: dict[str, Any] = {"operator": op, "inverted": draw(st.booleans())}
    if op in ("IN", "NOT_IN"):
        c["contextName"] = draw(st.sampled_from(["userId", "plan", "country", "sessionId"]))
        # Without spaces around or empty values: those are trimmed and dropped here, as the client spec says,
        # compared as written by Unleash's Rust engine (reported).
        c["values"] = draw(st.lists(st.sampled_from([v for v in [*_UN_TEXT, "u1", "u2"] if v and v == v.strip()]),
                                    max_size=3))  # fmt: skip
    elif op.startswith("STR_"):
        c["contextName"] = draw(st.sampled_from(["email", "plan", "userId"]))
        # At least one value: without, Unleash's Rust engine turns the whole feature off (reported as approximated).
        values = st.sampled_from(["pro", "PRO", "@example.com", "u", "", "é", "EX"])
        c["values"] = draw(st.lists(values, min_size=1, max_size=2))
        c["caseInsensitive"] = draw(st.booleans())
    elif op.startswith("NUM_"):
        c["contextName"] = "age"
        # A number: a value that is not one turns the whole feature off in Unleash's Rust engine (reported).
        c["value"] = draw(st.sampled_from(["18", "17.5", "0", "-2", " 18", "1e1", "-0"]))
    elif op.startswith("SEMVER_"):
        c["contextName"] = "appVersion"
        c["value"] = draw(st.sampled_from(_UN_VERSIONS))
    elif op == "REGEX":
        c["contextName"] = draw(st.sampled_from(["email", "plan", "userId"]))
        c["value"] = draw(st.sampled_from(_UN_PATTERNS))
        c["caseInsensitive"] = draw(st.booleans())
    elif op == "IN_CIDR":
        c["contextName"] = draw(st.sampled_from(["remoteAddress", "ip"]))
        c["values"] = draw(st.lists(st.sampled_from(_UN_RANGES), min_size=1, max_size=3))
    else:
        c["contextName"] = "currentTime"
        c["value"] = draw(st.sampled_from(_UN_DATES))
    return c


@st.composite
def un_strategy(draw: st.DrawFn, variants: bool) -> dict[str, Any]:
    name = draw(
        st.sampled_from(
            ["default", "flexibleRollout", "flexibleRollout", "userWithId", "remoteAddress", "gradualRolloutUserId",
             "gradualRolloutSessionId"]
        )
    )  # fmt: skip
    params: dict[str, Any] = {}
    if name == "flexibleRollout":
        params["rollout"] = str(draw(st.sampled_from([0, 1, 25, 50, 99, 100])))
        params["stickiness"] = draw(st.sampled_from(["default", "userId", "sessionId", "plan"]))
        if draw(st.booleans()):
            params["groupId"] = draw(st.sampled_from(["g1", "grp-é", "x"]))
    elif name.startswith("gradual"):
        params["percentage"] = str(draw(st.sampled_from([0, 10, 50, 100])))
        params["groupId"] = draw(st.sampled_from(["g1", "g2"]))
    elif name == "userWithId":
        params["userIds"] = ", ".join(
            draw(st.lists(st.sampled_from(["u1", "u2", "u3", "vip"]), min_size=1, max_size=3))
        )
    elif name == "remoteAddress":
        ips = st.sampled_from(["10.1.2.3", "192.168.1.7", "10.0.0.0/8", "2001:db8::1"])
        params["IPs"] = ",".join(draw(st.lists(ips, min_size=1, max_size=2)))
    s: dict[str, Any] = {
        "name": name,
        "parameters": params,
        "constraints": draw(st.lists(un_constraint(), max_size=2)),
        "disabled": draw(st.integers(0, 9)) == 0,
    }
    if draw(st.integers(0, 3)) == 0:
        s["segments"] = draw(st.lists(st.sampled_from([1, 2]), min_size=1, max_size=2, unique=True))
    if variants and draw(st.booleans()):
        s["variants"] = un_variants(draw)
    return s


def un_variants(draw: st.DrawFn) -> list[dict[str, Any]]:
    stickiness = draw(st.sampled_from(["default", "userId", "default"]))
    weights = draw(st.lists(st.integers(0, 700), min_size=1, max_size=3).filter(lambda ws: sum(ws) > 0))
    out = []
    for i, w in enumerate(weights):
        v: dict[str, Any] = {"name": f"v{i}", "weight": w, "weightType": "variable", "stickiness": stickiness}
        if draw(st.booleans()):
            v["payload"] = {"type": "string", "value": f"p{i}"}
        out.append(v)
    return out


@st.composite
def unleash_document(draw: st.DrawFn) -> dict[str, Any]:
    features = []
    names = draw(st.lists(st.sampled_from(["parent", "checkout", "banner"]), min_size=1, max_size=3, unique=True))
    for name in names:
        variants = draw(st.booleans())
        f: dict[str, Any] = {"name": name, "enabled": draw(st.integers(0, 5)) > 0, "type": "release"}
        f["strategies"] = draw(st.lists(un_strategy(variants), max_size=3))
        if variants and (not f["strategies"] or draw(st.booleans())):
            f["variants"] = un_variants(draw)
            if draw(st.booleans()):
                f["variants"][0]["overrides"] = [{"contextName": "userId", "values": ["u2", "vip"]}]
        if name != "parent" and "parent" in names and draw(st.integers(0, 3)) == 0:
            f["dependencies"] = [{"feature": "parent", "enabled": draw(st.booleans())}]
        features.append(f)
    segments = [{"id": i, "name": f"seg-{i}", "constraints": draw(st.lists(un_constraint(), max_size=2))}
                for i in (1, 2)]  # fmt: skip
    return {"version": 2, "features": features, "segments": segments}


def unleash_contexts(seed: int, n: int) -> list[dict[str, Any]]:
    """Unleash contexts as Flagstream contexts (``userId`` an attribute, ``age`` a number): ids, sessions, addresses
    (IPv4, IPv6, spaces, junk), texts with case and non-ASCII, versions, numbers, the current time or not."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ctx: dict[str, Any] = {"key": f"k{i}"}
        if rnd.random() < 0.8:
            ctx["userId"] = (
                rnd.choice(["u1", "u2", "u3", "vip", f"user-{i}", "é漢", "٣"]) if rnd.random() < 0.3 else f"u{i}"
            )
        if rnd.random() < 0.5:
            ctx["sessionId"] = f"s{rnd.randrange(10**6)}"
        for name, choices in {
            "remoteAddress": [
                "10.1.2.3",
                "10.200.0.1",
                "192.168.1.7",
                "172.16.5.4",
                "2001:db8::1",
                "2001:db9::1",
                " 10.1.2.3",
                "::ffff:10.0.0.1",
                "x",
                "010.1.2.3",
                "fe80::1%eth0",
            ],
            "ip": ["10.1.2.3", "172.16.5.4", "11.0.0.1", "2001:db8::5"],
            "plan": _UN_TEXT,
            "country": ["NO", "SE", " NO", "se", ""],
            "email": ["ann@EXAMPLE.com", "bob@example.com", "eve@other.org", "pro@x.io", "é@example.com", "a1b2"],
            "appVersion": ["1.2.3", "2.0.0", "2.0.0-rc.1", "2.0.0-rc.2", "1.10.0", "v2.0.0", "2", "junk", "2.0.0+b"],
            "age": [0, 17, 17.5, 18, 10, -2, 40],
            "currentTime": ["2019-06-01T00:00:00.000Z", "2026-06-01T00:00:00.000Z", "2035-01-01T00:00:00Z"],
        }.items():
            if rnd.random() < (0.3 if name == "currentTime" else 0.7):
                ctx[name] = rnd.choice(choices)
        out.append(ctx)
    return out


_UN_FIELDS = ("userId", "sessionId", "remoteAddress", "currentTime")


def unleash_peer(doc: dict[str, Any]) -> Callable[[str, dict[str, Any]], Any]:
    """Unleash's engine (yggdrasil, behind the Python SDK) on ``doc``: ``answer(feature, context)`` is what
    ``is_enabled`` answers for a feature without variants, what ``get_variant`` answers for one with them."""
    from yggdrasil_engine.engine import UnleashEngine

    # The Unleash server leaves disabled strategies out of what it serves SDKs (yggdrasil would evaluate them).
    served = [f | {"strategies": [s for s in f["strategies"] if not s.get("disabled")]} for f in doc["features"]]
    engine = UnleashEngine()
    engine.take_state(json.dumps(doc | {"features": served}))
    with_variants = {f["name"] for f in doc["features"]
                     if f.get("variants") or any(s.get("variants") for s in f["strategies"])}  # fmt: skip

    def answer(name: str, ctx: dict[str, Any]) -> Any:
        theirs: dict[str, Any] = {k: ctx[k] for k in _UN_FIELDS if k in ctx}
        theirs["properties"] = {k: str(v) for k, v in ctx.items() if k not in _UN_FIELDS and k != "key"}
        if name not in with_variants:
            return engine.check_enabled(name, theirs).is_enabled
        v = engine.check_variant(name, theirs).variant
        out = {"name": v.name, "enabled": v.enabled, "feature_enabled": v.feature_enabled}
        return out | ({"payload": v.payload} if v.payload else {})

    return answer


def _unleash_random(doc: dict[str, Any], name: str, ctx: dict[str, Any]) -> bool:
    """Whether Unleash may answer ``name`` at random for ``ctx`` (reported as approximated by the importer):
    a default-stickiness percentage or variants without userId or sessionId (yggdrasil does not fall back to
    remoteAddress), variants without their stickiness value."""
    features = {f["name"]: f for f in doc["features"]}
    f = features[name]
    sticky = ctx.get("userId") or ctx.get("sessionId")
    # Strategy variants are bucketed by the strategy's stickiness, feature variants by their own.
    stickiness = [v["stickiness"] for v in f.get("variants") or []]
    for s in f["strategies"]:
        p = s.get("parameters") or {}
        if s["name"] == "flexibleRollout" and p.get("stickiness") == "default" and not sticky:
            return True
        if s.get("variants"):
            stickiness.append(p.get("stickiness") or "default")
    for by in stickiness:
        if not (sticky if by == "default" else ctx.get(by)):
            return True
    return any(_unleash_random(doc, d["feature"], ctx) for d in f.get("dependencies") or [])


def check_unleash(doc: dict[str, Any], contexts: list[dict[str, Any]], tally: Tally, keep: int) -> None:
    result = import_unleash(doc)
    peer = unleash_peer(doc)
    segments = compile_segments({s.key: s for s in result.segments})
    flags = {f.key: compile_flag(f, segments) for f in result.flags}
    tally.documents += 1
    tally.skipped += len(result.skipped)
    tally.flags += len(result.flags)
    now = time.time() * 1000  # the evaluation time an SDK passes: its clock (the generated dates are years apart)
    ungrouped = {n.subject.removeprefix("flag ") for n in result.notes if "without groupId" in n.message}
    for flag in result.flags:
        if flag.name in ungrouped:
            continue  # yggdrasil hashes the parent's percentage with the child's name (reported)
        error = flags[flag.key].error
        assert error is None or error.__class__.__name__ == "_Special", (flag.key, flags[flag.key].problems)
        for ctx in contexts:
            if _unleash_random(doc, flag.name, ctx):
                continue  # Unleash answers at random here, on each call (the report says so)
            tally.contexts += 1
            theirs = peer(flag.name, ctx)
            mine = evaluate(flags, flag.key, ctx, "<default>", now=now).value
            if theirs != mine and len(tally.differences) < keep:
                tally.differences.append(
                    f"{json.dumps(doc)}\n  feature {flag.name} context {ctx!r}: unleash {theirs!r}, flagstream {mine!r}"
                )


# -- flagd -------------------------------------------------------------------------------------------------------

_FD_VARS = ["email", "age", "plan", "user.name", "tags"]
_FD_LITERALS = st.sampled_from(["pro", "18", 18, 0, 1, 17.5, True, False, "", "1", "x", "1e1", " 18"])
_FD_VERSIONS = st.sampled_from(["1.2.3", "2.0.0", "1.2", "v1.0.0", "1", "2.0.0-rc.1", "V2.1.0"])


def _var(draw: st.DrawFn) -> dict[str, Any]:
    return {"var": draw(st.sampled_from(_FD_VARS))}


def _ordered(draw: st.DrawFn, a: Any, b: Any) -> list[Any]:
    return [a, b] if draw(st.booleans()) else [b, a]


@st.composite
def fd_condition(draw: st.DrawFn, depth: int = 0) -> Any:
    shape = draw(st.integers(0, 13 if depth < 2 else 10))
    if shape == 0:
        op = draw(st.sampled_from(["==", "!=", "===", "!=="]))
        return {op: _ordered(draw, _var(draw), draw(_FD_LITERALS))}
    if shape == 1:
        return {"in": [_var(draw), draw(st.lists(_FD_LITERALS, min_size=1, max_size=3))]}
    if shape == 2:
        return {"in": [draw(st.sampled_from(["pro", "@", "a", "1", "é"])), _var(draw)]}
    if shape in (3, 4):
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        number = draw(st.sampled_from([0, 1, 17.5, 18, -1, 100]))
        if op in ("<", "<=") and draw(st.integers(0, 3)) == 0:  # between
            return {op: [number, _var(draw), number + draw(st.sampled_from([1, 10, 0.5]))]}
        return {op: _ordered(draw, _var(draw), number)}
    if shape == 5:
        op = draw(st.sampled_from(["starts_with", "ends_with"]))
        return {op: [_var(draw), draw(st.sampled_from(["pro", "@example.com", "a", "1", ""]))]}
    if shape in (6, 7):
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "^", "~"]))
        return {"sem_ver": [{"var": draw(st.sampled_from(["version", "version", "plan"]))}, op, draw(_FD_VERSIONS)]}
    if shape == 8:
        return {draw(st.sampled_from(["==", "!="])): _ordered(draw, {"var": "$flagd.flagKey"},
                                                              draw(st.sampled_from(["f1", "f2", "x"])))}  # fmt: skip
    if shape == 9:  # the evaluation time, in seconds: far from now either way
        return {
            draw(st.sampled_from([">", "<"])): [{"var": "$flagd.timestamp"}, draw(st.sampled_from([10**9, 4 * 10**9]))]
        }
    if shape == 10:
        return {"$ref": draw(st.sampled_from(["adults", "pros"]))}
    if shape == 11:
        return {"!": draw(fd_condition(depth + 1))}
    return {draw(st.sampled_from(["and", "or"])): draw(st.lists(fd_condition(depth + 1), min_size=1, max_size=3))}


@st.composite
def fd_result(draw: st.DrawFn, variants: list[str], depth: int = 0) -> Any:
    shape = draw(st.integers(0, 5 if depth < 2 else 2))
    if shape == 0:
        return None
    if shape <= 2:
        return draw(st.sampled_from(variants))
    if shape == 3:
        pairs: list[Any] = [
            [v, draw(st.integers(0, 50))] if draw(st.integers(0, 4)) else [v]
            for v in draw(st.lists(st.sampled_from(variants), min_size=1, max_size=len(variants), unique=True))
        ]
        if sum(p[1] if len(p) > 1 else 1 for p in pairs) == 0:
            pairs[0] = [pairs[0][0]]
        key = draw(st.integers(0, 3))
        if key == 1:
            return {"fractional": [{"var": draw(st.sampled_from(["email", "targetingKey", "age"]))}, *pairs]}
        if key == 2:
            return {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, "-", {"var": "email"}]}, *pairs]}
        return {"fractional": pairs}
    args: list[Any] = []
    for _ in range(draw(st.integers(1, 2))):
        args += [draw(fd_condition()), draw(fd_result(variants, depth + 1))]
    if draw(st.booleans()):
        args.append(draw(fd_result(variants, depth + 1)))
    return {"if": args}


@st.composite
def flagd_document(draw: st.DrawFn) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(["f1", "f2", "f3"]), min_size=1, max_size=3, unique=True)):
        variants = draw(st.sampled_from([
            {"on": True, "off": False}, {"red": "red", "blue": "blue", "green": "green"},
            {"one": 1, "two": 2, "three": 3}, {"a": {"x": 1}, "b": {"x": [2]}},
        ]))  # fmt: skip
        d: dict[str, Any] = {"variants": variants, "state": "DISABLED" if draw(st.integers(0, 9)) == 0 else "ENABLED"}
        if draw(st.integers(0, 6)):
            d["defaultVariant"] = draw(st.sampled_from(list(variants)))
        if draw(st.integers(0, 5)):
            targeting = draw(fd_result(list(variants)))
            d["targeting"] = targeting if isinstance(targeting, dict) else {"if": [True, targeting]}
        flags[name] = d
    evaluators = {"adults": {">=": [{"var": "age"}, 18]}, "pros": {"in": [{"var": "plan"}, ["pro", "team"]]}}
    return {"flags": flags, "$evaluators": evaluators}


def flagd_contexts(seed: int, n: int) -> list[dict[str, Any]]:
    """flagd evaluation contexts (``key`` the targeting key): texts, numbers, booleans, numeric texts, lists, nested
    objects, versions as texts and numbers, absent attributes."""
    rnd = random.Random(seed)
    scalars = ["pro", "team", "18", 18, 0, 1, 17.5, True, False, "", "1", "x", "1e1", " 18", 18.0, "1_8", "nan", -1]
    out = []
    for i in range(n):
        ctx: dict[str, Any] = {"key": f"user-{i}" if rnd.random() < 0.8 else rnd.choice(["", "é漢", "1", "pro"])}
        for name in ("email", "age", "plan"):
            r = rnd.random()
            if r < 0.5:
                ctx[name] = rnd.choice(scalars)
            elif r < 0.75:
                ctx[name] = (
                    rnd.choice([f"u{i}@example.com", f"pro{i}@x.io", "a@b", "ana"])
                    if name == "email"
                    else (rnd.choice([12, 17, 18, 20, 40, 17.5]))
                )
            elif r < 0.82 and name == "plan":  # not a bucketing value: flagd reads a list there as a bucket
                ctx[name] = rnd.sample(scalars, rnd.randint(0, 2))
        if rnd.random() < 0.6:
            ctx["user"] = {"name": rnd.choice(scalars)} if rnd.random() < 0.9 else rnd.choice(scalars)
        if rnd.random() < 0.4:
            ctx["tags"] = rnd.sample(["pro", "a", "1", 1, True], rnd.randint(0, 3))
        if rnd.random() < 0.7:
            ctx["version"] = rnd.choice(["1.2.3", "2.0.0", "1.2", "v1.0.0", "1", "2.0.0-rc.1", "V2.1.0", "2.1", "junk",
                                         "01.2.3", 2, 1.5, ""])  # fmt: skip
        out.append(ctx)
    return out


def flagd_peer(doc: dict[str, Any]) -> Callable[[str, dict[str, Any]], Any]:
    """flagd's in-process evaluator (openfeature-flagd-core) on ``doc``: ``answer(flag, context)``, the caller's
    default ``"<default>"``."""
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(doc)

    def answer(name: str, ctx: dict[str, Any]) -> Any:
        values = list(doc["flags"][name]["variants"].values())
        resolve = {bool: core.resolve_boolean_value, str: core.resolve_string_value, int: core.resolve_integer_value,
                   float: core.resolve_float_value}.get(type(values[0]), core.resolve_object_value)  # fmt: skip
        attrs = {k: v for k, v in ctx.items() if k != "key"}
        return resolve(name, "<default>", EvaluationContext(ctx["key"], attrs)).value

    return answer


def check_flagd(doc: dict[str, Any], contexts: list[dict[str, Any]], tally: Tally, keep: int) -> None:
    result = import_flagd(doc)
    approximated = [n for n in result.notes if n.severity == "approximated"]
    assert not approximated, approximated  # the generator uses only what maps exactly
    peer = flagd_peer(doc)
    ours = engine_answers(result)
    tally.documents += 1
    tally.skipped += len(result.skipped)
    tally.flags += len(result.flags)
    for flag in result.flags:
        for ctx in contexts:
            tally.contexts += 1
            theirs = peer(flag.name, ctx)
            mine = ours(flag.key, ctx)
            if theirs != mine and len(tally.differences) < keep:
                tally.differences.append(
                    f"{json.dumps(doc)}\n  flag {flag.name} context {ctx!r}: flagd {theirs!r}, flagstream {mine!r}"
                )


# -- LaunchDarkly --------------------------------------------------------------------------------------------

KINDS_LD = ["user", "org"]


def launchdarkly_document() -> st.SearchStrategy[dict[str, Any]]:
    """Flag data files as ``test_import_launchdarkly.py`` generates them (targets, rules of every operator,
    rollouts and experiments, prerequisites, segments naming segments)."""
    from tests.importers.test_import_launchdarkly import data_file

    return data_file()


def launchdarkly_contexts(seed: int, n: int) -> list[dict[str, Any]]:
    """User, org and multi-contexts: the generator's target keys and many others (rollouts see new keys),
    attributes of the types its clauses compare, absent ones."""
    from tests.importers.test_import_launchdarkly import COUNTRIES, DATES, KEYS, VERSIONS

    rnd = random.Random(seed)

    def one(kind: str, i: int) -> dict[str, Any]:
        key = rnd.choice(KEYS) if rnd.random() < 0.3 else rnd.choice([f"k{i}", f"é{i}", f"{kind}-{i}", str(i)])
        attrs: dict[str, Any] = {"kind": kind, "key": key}
        for name, choices in {
            "country": COUNTRIES, "age": [17, 30.5, 65, 70, "40", 18, True], "email": ["ada@x.com", "b1@y.org", "zed"],
            "version": VERSIONS, "joined": DATES, "nested": [{"tier": "gold"}, {"tier": "silver"}, {"tier": 1}, "x"],
        }.items():  # fmt: skip
            if rnd.random() < 0.8:
                attrs[name] = rnd.choice(choices)
        return attrs

    out = []
    for i in range(n):
        shape = rnd.randrange(3)
        if shape < 2:
            out.append(one(KINDS_LD[shape], i))
        else:
            user, org = one("user", i), one("org", i)
            out.append({"kind": "multi", "user": {k: v for k, v in user.items() if k != "kind"},
                        "org": {k: v for k, v in org.items() if k != "kind"}})  # fmt: skip
    return out


def check_launchdarkly(doc: dict[str, Any], contexts: list[dict[str, Any]], tally: Tally, keep: int) -> None:
    from ldclient.context import Context as LDContext
    from ldclient.impl.evaluator import Evaluator
    from ldclient.impl.events.types import EventFactory
    from ldclient.impl.model import FeatureFlag
    from ldclient.impl.model import Segment as LDSegment

    result = import_launchdarkly(json.loads(json.dumps(doc)))
    ours = engine_answers(result)
    ld_flags = {k: FeatureFlag(v) for k, v in doc["flags"].items()}
    ld_segments = {k: LDSegment(v) for k, v in doc["segments"].items()}
    evaluator = Evaluator(ld_flags.get, ld_segments.get, lambda key: (None, "NOT_CONFIGURED"))
    tally.documents += 1
    tally.skipped += len(result.skipped)
    tally.flags += len(result.flags)
    for flag in result.flags:
        for ctx in contexts:
            tally.contexts += 1
            detail = evaluator.evaluate(ld_flags[flag.key], LDContext.from_dict(ctx), EventFactory(False)).detail
            theirs = "<default>" if detail.value is None else detail.value
            mine = ours(flag.key, ctx)
            if theirs != mine and len(tally.differences) < keep:
                tally.differences.append(
                    f"{json.dumps(doc)}\n  flag {flag.key} context {ctx!r}: launchdarkly {theirs!r},"
                    f" flagstream {mine!r}"
                )


#: importer -> (document strategy, contexts(seed, n), check(doc, contexts, tally, keep))
IMPORTERS: dict[str, tuple[st.SearchStrategy[Any], Callable[[int, int], Any], Any]] = {
    "flagsmith": (flagsmith_document(), flagsmith_contexts, check_flagsmith),
    "growthbook": (growthbook_payload(), growthbook_contexts, check_growthbook),
    "unleash": (unleash_document(), unleash_contexts, check_unleash),
    "flagd": (flagd_document(), flagd_contexts, check_flagd),
    "launchdarkly": (st.deferred(launchdarkly_document), launchdarkly_contexts, check_launchdarkly),
}


def run_importer(importer: str, documents: int, contexts_per_document: int, *, keep: int = 5) -> Tally:
    """Generate ``documents`` documents and compare every imported flag on ``contexts_per_document`` contexts."""
    strategy, make_contexts, check = IMPORTERS[importer]
    tally = Tally(importer)

    @settings(max_examples=documents, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(doc=strategy, seed=st.integers(0, 2**32))
    def run(doc: Any, seed: int) -> None:
        check(doc, make_contexts(seed, contexts_per_document), tally, keep)

    run()
    return tally
