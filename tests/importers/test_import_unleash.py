"""Importing an Unleash export: the imported flags answer, for many contexts, what an Unleash SDK answers.

The expected answers come from a small reference of Unleash's documented client semantics written here
(strategies OR-ed, constraints AND-ed, ``inverted``, NOT_IN on absent fields, the rollout normalisation
``murmur3("groupId:stickiness") % 100 + 1 <= rollout`` and the variant normalisation with seed 86028157),
never from the importer's own mapping.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

import mmh3
import pytest
from hypothesis import HealthCheck, given, settings

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.services.importers.common import ImportFileError, render
from flagstream.services.importers.unleash import import_unleash, load_unleash
from tests.importers.peer_documents import run_importer, unleash_document, unleash_peer

DATA = Path(__file__).parent / "data" / "unleash-features.json"
EXPORT = json.loads(DATA.read_text())
RANDOM = object()  # Unleash would decide at random


# -- a reference Unleash client (documented semantics) ---------------------------------------------------------


def normalized(group: str, value: str, normalizer: int = 100, seed: int = 0) -> int:
    return mmh3.hash(f"{group}:{value}", seed, signed=False) % normalizer + 1


def semver(text: Any) -> tuple[int, int, int, tuple[Any, ...]] | None:
    # Semver 2.0 as Unleash's engine (yggdrasil, the Rust semver crate) reads it: no leading "v".
    m = re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?", text)
    if m is None:
        return None
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m[4].split(".")) if m[4] else ()
    return (int(m[1]), int(m[2]), int(m[3]), (1,) if not pre else (0, pre))  # type: ignore[return-value]


def constraint_ok(c: dict[str, Any], ctx: dict[str, Any]) -> bool:
    v, op = ctx.get(c["contextName"]), c["operator"]
    values = c.get("values") or [c.get("value")]
    if op in ("IN", "NOT_IN"):
        hit = v in [x.strip() for x in values if x]
        result = hit if op == "IN" else not hit
    elif op.startswith("STR_"):
        if v is None:
            result = False
        else:
            s, vals = (v.lower(), [x.lower() for x in values]) if c.get("caseInsensitive") else (v, values)
            test = {"STR_ENDS_WITH": s.endswith, "STR_STARTS_WITH": s.startswith}.get(op, s.__contains__)
            result = any(test(x) for x in vals)
    elif op.startswith("NUM_"):
        bound = float(c["value"])
        result = isinstance(v, int | float) and {"NUM_LT": v < bound, "NUM_EQ": v == bound}[op]
    elif op.startswith("SEMVER_"):
        a, b = (semver(v) if isinstance(v, str) else None), semver(c["value"])
        result = a is not None and {"SEMVER_GT": a > b, "SEMVER_LT": a < b, "SEMVER_EQ": a == b}[op]  # type: ignore[operator]
    else:
        raise AssertionError(op)
    return not result if c.get("inverted") else result


def stickiness_value(stickiness: str, ctx: dict[str, Any]) -> Any:
    if stickiness == "default":
        return ctx.get("userId") or ctx.get("sessionId") or RANDOM
    return ctx.get(stickiness)


def strategy_ok(s: dict[str, Any], feature: dict[str, Any], ctx: dict[str, Any]) -> Any:
    segments = {seg["id"]: seg for seg in EXPORT["segments"]}
    constraints = list(s.get("constraints") or [])
    for seg in s.get("segments") or []:
        constraints += segments[seg]["constraints"]
    if not all(constraint_ok(c, ctx) for c in constraints):
        return False
    p = s.get("parameters") or {}
    name = s["name"]
    if name == "default":
        return True
    if name == "userWithId":
        return ctx.get("userId") in re.split(r"\s*,\s*", p["userIds"])
    stickiness = {"gradualRolloutSessionId": "sessionId", "gradualRolloutUserId": "userId"}.get(
        name, p.get("stickiness", "default")
    )
    percentage = int(p.get("rollout", p.get("percentage")))
    value = stickiness_value(stickiness, ctx)
    if value is RANDOM:
        return RANDOM if 0 < percentage < 100 else percentage == 100
    if not value:
        return False
    return percentage > 0 and normalized(p.get("groupId") or feature["name"], value) <= percentage


def pick_variant(variants: list[dict[str, Any]], group: str, ctx: dict[str, Any]) -> Any:
    stickiness = variants[0].get("stickiness", "default")
    if stickiness == "default":
        seed = ctx.get("userId") or ctx.get("sessionId") or ctx.get("remoteAddress") or RANDOM
    else:
        seed = ctx.get(stickiness) or RANDOM
    if seed is RANDOM:
        return RANDOM
    target = normalized(group, seed, sum(v["weight"] for v in variants), 86028157)
    counter = 0
    for v in variants:
        counter += v["weight"]
        if v["weight"] and counter >= target:
            out = {"name": v["name"], "enabled": True, "feature_enabled": True}
            return out | ({"payload": v["payload"]} if "payload" in v else {})
    raise AssertionError("weights")


def unleash(name: str, ctx: dict[str, Any]) -> Any:
    """isEnabled (features without variants) or getVariant (with): what an Unleash SDK answers."""
    feature = next(f for f in EXPORT["features"] if f["name"] == name)
    has_variants = feature.get("variants") or any(s.get("variants") for s in feature["strategies"])
    disabled = {"name": "disabled", "enabled": False, "feature_enabled": False}
    enabled, matched = feature["enabled"], None
    for dep in feature.get("dependencies") or []:
        enabled = enabled and unleash(dep["feature"], ctx) is True
    live = [s for s in feature["strategies"] if not s.get("disabled")]
    if enabled and live:
        enabled = False
        for s in live:
            ok = strategy_ok(s, feature, ctx)
            if ok is RANDOM:
                return RANDOM
            if ok:
                enabled, matched = True, s
                break
    if not has_variants:
        return bool(enabled)
    if not enabled:
        return disabled
    if matched is not None and matched.get("variants"):
        return pick_variant(matched["variants"], matched["parameters"].get("groupId") or name, ctx)
    variants = feature.get("variants") or []
    for v in variants:
        for o in v.get("overrides") or []:
            if ctx.get(o["contextName"]) in o["values"]:
                return {"name": v["name"], "enabled": True, "feature_enabled": True}
    if not variants:
        return {"name": "disabled", "enabled": False, "feature_enabled": True}
    return pick_variant(variants, name, ctx)


# -- contexts ----------------------------------------------------------------------------------------------------


def contexts(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(8)
    out = []
    for i in range(n):
        ctx: dict[str, Any] = {"key": f"ctx-{i}"}
        if rnd.random() < 0.8:
            ctx["userId"] = rnd.choice([f"u-{rnd.randrange(3000)}", "u-7", "u-9", "u-11", "vip-1", "vip-2"])
        if rnd.random() < 0.6:
            ctx["sessionId"] = f"s-{rnd.randrange(10**6)}"
        if rnd.random() < 0.3:
            ctx["remoteAddress"] = f"10.0.{rnd.randrange(256)}.{rnd.randrange(256)}"
        for attr, choices in {
            "country": ["NO", "SE", "US", "DK", ""],
            "plan": ["free", "pro", "team"],
            "tier": ["beta", "alpha", "ga"],
            "appVersion": ["2.1.0", "2.1.1", "2.10.0", "1.9.9", "2.1.1-beta.1", "3", "v2.2.0", "junk"],
            "email": ["ann@EXAMPLE.com", "bob@example.com", "eve@other.org"],
            "age": [12, 17, 18, 40],
        }.items():
            if rnd.random() < 0.75:
                ctx[attr] = rnd.choice(choices)
        out.append(ctx)
    return out


def first_variant(name: str) -> str:
    feature = next(f for f in EXPORT["features"] if f["name"] == name)
    variants = feature.get("variants") or next(s["variants"] for s in feature["strategies"] if s.get("variants"))
    return str(variants[0]["name"])


CONTEXTS = contexts(3000)
RESULT = load_unleash(DATA)
COMPILED_SEGMENTS = {s.key: compile_segment(s) for s in RESULT.segments}
COMPILED = {f.key: compile_flag(f, COMPILED_SEGMENTS) for f in RESULT.flags}
KEYS = {f.name: f.key for f in RESULT.flags}


@pytest.mark.parametrize(
    "name",
    ["checkout.v2", "beta-banner", "pricing-test", "new-search", "banner-copy", "staff-tools", "session-sampling",
     "old-feature", "everyone", "beta-child"],
)  # fmt: skip
def test_imported_flags_answer_as_unleash_does(name: str) -> None:
    compiled = COMPILED[KEYS[name]]
    assert compiled.error is None, compiled.problems
    compared = 0
    for ctx in CONTEXTS:
        expected = unleash(name, ctx)
        got = evaluate(COMPILED, KEYS[name], ctx, "default").value
        if expected is RANDOM:  # the documented approximation: never in the percentage / the first variant
            not_in = got is False or got == {"name": "disabled", "enabled": False, "feature_enabled": False}
            assert not_in or got["name"] == first_variant(name), (ctx, got)
            continue
        assert got == expected, (name, ctx)
        compared += 1
    assert compared > 2000


def test_percentages_really_split_the_audience() -> None:
    nordic = [{"key": f"k{i}", "userId": f"user-{i}", "country": "NO"} for i in range(4000)]
    share = sum(1 for c in nordic if evaluate(COMPILED, "checkout-v2", c, None).value) / len(nordic)
    assert 0.27 < share < 0.33  # 30%
    variants = [evaluate(COMPILED, "pricing-test", c, None).value["name"] for c in nordic]
    for name, weight in (("low", 0.5), ("mid", 0.3), ("high", 0.2)):
        assert abs(variants.count(name) / len(variants) - weight) < 0.03


def test_what_cannot_be_mapped_is_reported_and_not_imported() -> None:
    unmapped = {n.subject: n.message for n in RESULT.notes if n.severity == "unmapped"}
    assert set(RESULT.skipped) == {"host-only", "coin-flip"}
    assert "applicationHostname" in unmapped["flag host-only"]
    assert "random" in unmapped["flag coin-flip"]
    assert {f.name for f in RESULT.flags}.isdisjoint(RESULT.skipped)
    approximated = [n for n in RESULT.notes if n.severity == "approximated"]
    assert {n.subject for n in approximated} == {
        "flag checkout.v2",
        "flag pricing-test",
        "flag new-search",
        "flag banner-copy",
    }
    text = render(RESULT)
    for name in RESULT.skipped:
        assert name in text
    assert "3 segment(s)" in text  # Beta testers, Before launch, and the percentage of banner-copy (variants)
    assert "2 flag(s) not imported" in text


def test_generated_exports_answer_as_unleashs_engine() -> None:
    """Hypothesis generates client features (every strategy, every constraint operator with inverted and
    caseInsensitive, IN_CIDR, dates on currentTime, segments, variants with overrides and payloads, dependencies);
    each imported flag answers as yggdrasil (the engine of Unleash's Python SDK), except where Unleash answers at
    random (reported)."""
    tally = run_importer("unleash", 50, 100)
    assert tally.differences == [], "\n\n".join(tally.differences)
    assert tally.flags >= 60, tally
    assert tally.contexts >= 5_000, tally


def export_form(client: dict[str, Any], environment: str = "production") -> dict[str, Any]:
    """The same features as Unleash's admin export writes them (features-batch/export): the strategies, the
    enabled state and variants per environment, and the dependencies, apart; another environment beside."""
    features, strategies, environments, dependencies = [], [], [], []
    for f in client["features"]:
        features.append({"name": f["name"], "type": f.get("type", "release"), "description": "", "project": "default",
                         "stale": False, "impressionData": False, "archived": False})  # fmt: skip
        for order, st in enumerate(reversed(f["strategies"])):  # sortOrder decides, not the list's order
            strategies.append({**st, "featureName": f["name"], "environment": environment,
                               "sortOrder": len(f["strategies"]) - order, "id": f"{f['name']}-{order}"})  # fmt: skip
        strategies.append({"name": "default", "featureName": f["name"], "environment": "other", "sortOrder": 0})
        environments.append({"name": f["name"], "featureName": f["name"], "environment": environment,
                             "enabled": f["enabled"], "variants": f.get("variants") or []})  # fmt: skip
        environments.append({"name": f["name"], "featureName": f["name"], "environment": "other", "enabled": True})
        if f.get("dependencies"):
            dependencies.append({"feature": f["name"], "dependencies": f["dependencies"]})
    return {"features": features, "featureStrategies": strategies, "featureEnvironments": environments,
            "segments": client.get("segments", []), "dependencies": dependencies, "contextFields": [],
            "featureTags": [], "tagTypes": []}  # fmt: skip


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=unleash_document())
def test_the_admin_export_imports_as_the_client_features_of_its_environment(doc: dict[str, Any]) -> None:
    assert import_unleash(export_form(doc), environment="production").flags == import_unleash(doc).flags


def test_an_admin_export_of_several_environments_needs_one_named() -> None:
    export = export_form(EXPORT)
    with pytest.raises(ImportFileError, match="holds environments other, production: name one"):
        import_unleash(export)
    with pytest.raises(ImportFileError, match="no environment 'staging'"):
        import_unleash(export, environment="staging")
    other = import_unleash(export, environment="other")
    assert all(f.on and len(f.rules) == 1 for f in other.flags)  # enabled, one default strategy each


def test_in_cidr_constraints_read_the_field_as_unleash_does() -> None:
    feature = {"name": "office", "enabled": True, "strategies": [{"name": "default", "constraints": [
        {"contextName": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "junk", "2001:db8::/32", "172.16.5.4"]},
    ]}, {"name": "default", "constraints": [
        {"contextName": "ip", "operator": "IN_CIDR", "values": ["192.168.0.0/16"], "inverted": True},
        {"contextName": "plan", "operator": "IN", "values": ["team"]},
    ]}]}  # fmt: skip
    doc = {"version": 2, "features": [feature]}
    result = import_unleash(doc)
    assert result.skipped == []
    peer = unleash_peer(doc)
    compiled = {f.key: compile_flag(f, {}) for f in result.flags}
    addresses = ["10.1.2.3", " 10.1.2.3", "172.16.5.4", "172.16.5.5", "2001:db8::9", "::ffff:10.0.0.1", "192.168.1.1",
                 "fe80::1%eth0", "x", None]  # fmt: skip
    answers = set()
    for ip in addresses:
        for plan in ("team", "free"):
            ctx = {"key": "k", "plan": plan} | ({"ip": ip} if ip is not None else {})
            theirs = peer("office", ctx)
            assert evaluate(compiled, "office", ctx, None).value is theirs, ctx
            answers.add(theirs)
    assert answers == {True, False}


@pytest.mark.parametrize(
    "constraint",
    [{"contextName": "email", "operator": "STR_CONTAINS", "values": []},
     {"contextName": "age", "operator": "NUM_GT", "value": "eighteen"}],
)  # fmt: skip
def test_constraints_that_turn_the_whole_feature_off_in_unleashs_rust_engine_are_reported(
    constraint: dict[str, Any],
) -> None:
    feature = {"name": "f", "enabled": True, "strategies": [
        {"name": "default", "constraints": [constraint]}, {"name": "default", "constraints": []}]}  # fmt: skip
    doc = {"version": 2, "features": [feature]}
    result = import_unleash(doc)
    (note,) = [n for n in result.notes if n.severity == "approximated"]
    assert "Rust engine" in note.message
    assert "whole feature" in note.message
    compiled = {f.key: compile_flag(f, {}) for f in result.flags}
    # As the client spec: the second strategy enables it; yggdrasil says false.
    assert evaluate(compiled, "f", {"key": "k", "email": "a", "age": 20}, None).value is True
    assert unleash_peer(doc)("f", {"key": "k", "email": "a", "age": 20}) is False


@pytest.mark.parametrize("name", ["launch-at-noon", "office", "in-window"])
def test_dates_on_the_current_time_and_cidr_ranges_answer_as_unleashs_engine(name: str) -> None:
    """DATE_AFTER / DATE_BEFORE on currentTime (the context's, else the evaluation time) and remoteAddress with
    CIDR ranges, against yggdrasil (the engine of Unleash's Python SDK)."""
    from tests.importers.differential import _unleash_engine

    engine = _unleash_engine(EXPORT["features"])
    engine.take_state(json.dumps(EXPORT))
    times = [None, "2026-11-30T00:00:00.000Z", "2026-12-24T00:00:00.000Z", "2027-02-01T00:00:00.000Z"]
    for i, ctx in enumerate(CONTEXTS[:400]):
        ctx = dict(ctx)
        if i % 2:
            ctx["remoteAddress"] = ["10.1.2.3", "192.168.4.5", "192.169.0.1", "10.1.2.4"][i % 4]
        when = times[i % len(times)]
        if when is not None:
            ctx["currentTime"] = when
        theirs = {k: v for k, v in ctx.items() if k in ("userId", "sessionId", "remoteAddress", "currentTime")}
        theirs["properties"] = {k: str(v) for k, v in ctx.items() if k not in theirs and k != "key"}
        expected = engine.check_enabled(name, theirs).is_enabled
        now = time.time() * 1000  # the evaluation time an SDK passes (its clock)
        assert evaluate(COMPILED, KEYS[name], ctx, "default", now=now).value is expected, (name, ctx)


def test_the_user_id_can_be_the_targeting_key() -> None:
    result = import_unleash(EXPORT, user_id_attribute="key")
    compiled = {f.key: compile_flag(f, {s.key: compile_segment(s) for s in result.segments}) for f in result.flags}
    for ctx in CONTEXTS[:500]:
        if "userId" not in ctx:
            continue
        as_key = {k: v for k, v in ctx.items() if k != "userId"} | {"key": ctx["userId"]}
        assert evaluate(compiled, "pricing-test", as_key, None).value == unleash("pricing-test", ctx)
        assert evaluate(compiled, "checkout-v2", as_key, None).value == unleash("checkout.v2", ctx)


@pytest.mark.parametrize("doc", [[], {"version": 2}, {"features": "x"}])
def test_a_file_that_is_not_an_export_is_refused_clearly(doc: Any) -> None:
    with pytest.raises(ImportFileError, match="not an Unleash client features export"):
        import_unleash(doc)


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "export.json"
    bad.write_text("{not json")
    with pytest.raises(ImportFileError, match=r"export\.json: cannot read it as JSON"):
        load_unleash(bad)
