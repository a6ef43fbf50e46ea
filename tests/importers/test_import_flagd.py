"""Importing a flagd flag definition: the imported flags answer, for many contexts, what flagd answers.

Flags imported for today's flagd (fractional v2) are compared with flagd's own in-process evaluator
(openfeature-flagd-core, a test-only dependency). Flags imported with ``fractional="legacy"`` (flagd before
fractional v2) are compared with a small JSON Logic reference written here after that flagd's documented
semantics (``fractional``: ``bucket = abs(int32 murmur3(bucketingKey)) / MaxInt32 * 100`` with the default
bucketing key ``flagKey + targetingKey``, ``bucket < cumulative percentage``), never with the importer's own
mapping.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import mmh3
import pytest

from flagstream.engine import compile_flag, evaluate
from flagstream.services.importers.common import ImportFileError
from flagstream.services.importers.flagd import import_flagd, load_flagd
from tests.importers.peer_documents import engine_answers, flagd_peer, run_importer

DATA = Path(__file__).parent / "data" / "flagd-flags.json"
DOC = json.loads(DATA.read_text())


# -- a reference flagd (documented semantics) ------------------------------------------------------------------


def version(text: Any) -> tuple[Any, ...] | None:
    """golang.org/x/mod/semver after flagd adds the "v": shorthands v1 and v1.2 are valid."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(
        r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?)?)?", text
    )
    if m is None:
        return None
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m[4].split(".")) if m[4] else None
    return (int(m[1]), int(m[2] or 0), int(m[3] or 0), (1,) if pre is None else (0, pre))


def fractional(key: str, flag: str, args: list[Any], data: dict[str, Any]) -> Any:
    if isinstance(args[0], list):
        if not isinstance(data.get("targetingKey"), str):
            return None
        bucketing = flag + data["targetingKey"]
    else:
        bucketing = run(args[0], flag, data)
        if not isinstance(bucketing, str):
            return None
        args = args[1:]
    total = sum(a[1] if len(a) > 1 else 1 for a in args)
    bucket = abs(mmh3.hash(bucketing, 0, signed=True)) / (2**31 - 1) * 100
    end = 0.0
    for a in args:
        end += (a[1] if len(a) > 1 else 1) * 100 / total
        if bucket < end:
            return a[0]
    return None


def run(e: Any, flag: str, data: dict[str, Any]) -> Any:
    if isinstance(e, list):
        return [run(x, flag, data) for x in e]
    if not isinstance(e, dict):
        return e
    ((op, args),) = e.items()
    if op == "$ref":
        return run(DOC["$evaluators"][args], flag, data)
    if op == "var":
        value: Any = data
        for part in args.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    if op == "if":
        for i in range(0, len(args) - 1, 2):
            if run(args[i], flag, data):
                return run(args[i + 1], flag, data)
        return run(args[-1], flag, data) if len(args) % 2 else None
    if op == "fractional":
        return fractional(flag, flag, args, data)
    if op == "and":
        out = True
        for a in args:
            out = run(a, flag, data)
            if not out:
                return out
        return out
    if op == "or":
        return any(run(a, flag, data) for a in args)
    if op == "!":
        return not run(args[0] if isinstance(args, list) else args, flag, data)
    a = [run(x, flag, data) for x in args]
    if op == "==":
        return a[0] == a[1]
    if op == "!=":
        return a[0] != a[1]
    if op == "in":
        return a[0] in a[1] if isinstance(a[1], list | str) and a[0] is not None else False
    if op in ("<", "<=", ">=", ">"):
        x, y = a
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if op == "starts_with":
        return isinstance(a[0], str) and a[0].startswith(a[1])
    if op == "ends_with":
        return isinstance(a[0], str) and a[0].endswith(a[1])
    if op == "sem_ver":
        v, want = version(a[0]), version(a[2])
        if v is None:
            return False
        return {
            "=": v == want, "!=": v != want, "<": v < want, "<=": v <= want, ">": v > want, ">=": v >= want,  # type: ignore[operator]
            "^": v[0] == want[0], "~": v[:2] == want[:2],  # type: ignore[index]
        }[a[1]]  # fmt: skip
    if op == "cat":
        return "".join(str(x) for x in a)
    raise AssertionError(op)


def flagd(name: str, ctx: dict[str, Any]) -> Any:
    """The value flagd serves (the caller's default is not modelled: DISABLED flags are checked apart)."""
    d = DOC["flags"][name]
    targeting = d.get("targeting") or {}
    data = {**{k: v for k, v in ctx.items() if k != "key"}, "targetingKey": ctx["key"], "$flagd": {"flagKey": name}}
    variant = run(targeting, name, data) if targeting else None
    return d["variants"][variant if variant is not None else d["defaultVariant"]]


def contexts(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(11)
    out = []
    for i in range(n):
        ctx: dict[str, Any] = {"key": f"user-{i}", "age": rnd.choice([12, 17, 18, 20, 21, 35, 70])}
        for attr, choices in {
            "email": [f"u{i}@faas.com", f"u{i}@example.org", f"U{i}@FAAS.COM"],
            "country": ["NO", "SE", "US", "DE"],
            "plan": ["free", "pro"],
            "version": [
                "2.1.0",
                "2.0.9",
                "1.9.0",
                "1.9.5",
                "1.10.0",
                "1.8.9",
                "2",
                "v2.2",
                "3.0.0-rc.1",
                "x",
                "01.2.3",
            ],
            "name": ["tester", "test-1", "alice", "Test"],
        }.items():
            if rnd.random() < 0.8:
                ctx[attr] = rnd.choice(choices)
        out.append(ctx)
    return out


CONTEXTS = contexts(3000)
RESULT = load_flagd(DATA, fractional="legacy")
COMPILED = {f.key: compile_flag(f, {}) for f in RESULT.flags}
CURRENT = load_flagd(DATA)
COMPILED_CURRENT = {f.key: compile_flag(f, {}) for f in CURRENT.flags}


def test_flags_imported_for_todays_flagd_answer_as_its_own_evaluator() -> None:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(DOC)
    assert set(CURRENT.skipped) == {"truthy"}  # fractional v2 and the evaluation time map exactly
    assert not [n for n in CURRENT.notes if n.severity == "approximated"]
    for flag in CURRENT.flags:
        assert COMPILED_CURRENT[flag.key].error is None or repr(COMPILED_CURRENT[flag.key].error) == "SPECIAL"
        values = list(DOC["flags"][flag.name]["variants"].values())
        resolve = {bool: core.resolve_boolean_value, str: core.resolve_string_value, int: core.resolve_integer_value,
                   float: core.resolve_float_value}.get(type(values[0]), core.resolve_object_value)  # fmt: skip
        for i, ctx in enumerate(CONTEXTS[:1000]):
            if i % 3 == 0:  # a missing attribute compares as null (0) in JSON Logic, here too
                ctx = {k: v for k, v in ctx.items() if k != "age"}
            attrs = {k: v for k, v in ctx.items() if k != "key"}
            theirs = resolve(flag.name, "caller-default", EvaluationContext(ctx["key"], attrs)).value
            assert evaluate(COMPILED_CURRENT, flag.key, ctx, "caller-default").value == theirs, (flag.name, ctx)


@pytest.mark.parametrize(
    "name",
    ["header-color", "beta-access", "search-algo", "custom-bucket", "app-gate", "nested", "flag-key-check",
     "static-on"],
)  # fmt: skip
def test_flags_imported_for_legacy_flagd_answer_as_it_does(name: str) -> None:
    assert COMPILED[name].error is None, COMPILED[name].problems
    for ctx in CONTEXTS:
        assert evaluate(COMPILED, name, ctx, "caller-default").value == flagd(name, ctx), (name, ctx)


def test_fractional_splits_by_the_weights() -> None:
    answers = [evaluate(COMPILED, "search-algo", c, None).value for c in CONTEXTS]
    for value, share in (("bm25", 0.25), ("vector", 0.5), ("hybrid", 0.25)):
        assert abs(answers.count(value) / len(answers) - share) < 0.03


def test_a_missing_custom_bucketing_value_gets_the_default_variant() -> None:
    detail = evaluate(COMPILED, "custom-bucket", {"key": "no-email"}, None)
    assert detail.value == DOC["flags"]["custom-bucket"]["variants"]["x"]


def test_a_disabled_flag_answers_the_callers_default() -> None:
    detail = evaluate(COMPILED, "disabled-flag", {"key": "u", "country": "NO"}, "mine")
    assert detail.value == "mine"
    assert detail.variation is None
    notes = [n for n in RESULT.notes if n.subject == "flag disabled-flag" and "DISABLED" in n.message]
    assert [n.severity for n in notes] == ["mapped"]


def test_what_cannot_be_mapped_is_reported_and_not_imported() -> None:
    assert set(RESULT.skipped) == {"truthy", "thirds"}  # legacy fractional: [1, 1, 1] is not whole 0.001%
    unmapped = {n.subject: n for n in RESULT.notes if n.severity == "unmapped"}
    assert "truthiness" in unmapped["flag truthy"].message
    assert unmapped["flag truthy"].path == "flags.truthy.targeting.if[0].var"
    assert "0.001%" in unmapped["flag thirds"].message
    assert {f.key for f in RESULT.flags}.isdisjoint(RESULT.skipped)
    assert [n for n in RESULT.notes if n.severity == "approximated"] == []


def test_generated_definitions_answer_as_flagds_evaluator() -> None:
    """Hypothesis generates flag definitions (if chains nested, every comparison in both argument orders,
    between, in, starts_with/ends_with, sem_ver with every operator, and/or/!, $ref, $flagd.flagKey and
    $flagd.timestamp, fractional with the shorthand, a var or a cat, DISABLED, no default variant); each imported
    flag answers as flagd's in-process evaluator for contexts of every JSON type."""
    tally = run_importer("flagd", 50, 100)
    assert tally.differences == [], "\n\n".join(tally.differences)
    assert tally.flags >= 80, tally
    assert tally.contexts >= 8_000, tally


@pytest.mark.parametrize(
    ("condition", "attribute"),
    [({"==": [{"var": "a"}, "18"]}, "a"), ({"==": [0, {"var": "a"}]}, "a"), ({"!=": [{"var": "a"}, 1]}, "a"),
     ({"<": [{"var": "a"}, 20]}, "a"), ({">=": [0, {"var": "a"}]}, "a"), ({"<=": [1, {"var": "a"}, 18]}, "a"),
     ({"in": [{"var": "a"}, ["1", 1, "x"]]}, "a"), ({"in": ["1", {"var": "a"}]}, "a"),
     ({"===": [{"var": "a"}, 1]}, "a"), ({"sem_ver": [{"var": "a"}, ">=", "1.2"]}, "a"),
     ({"starts_with": [{"var": "a"}, "1"]}, "a")],
)  # fmt: skip
def test_comparisons_are_json_logics_loose_ones(condition: Any, attribute: str) -> None:
    """JSON Logic compares loosely (``"18" == 18``, ``true == 1``, a missing value is null and null is 0 for
    numbers, a numeric text is a number for ``<``), and reads a list as a whole: imported exactly, not reported."""
    doc = {"flags": {"f": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
                           "targeting": {"if": [condition, "on", "off"]}}}}  # fmt: skip
    result = import_flagd(doc)
    assert [n.severity for n in result.notes] == ["mapped"]
    peer, ours = flagd_peer(doc), engine_answers(result)
    values = [None, 18, 18.0, "18", " 18 ", "1e1", 1, 0, True, False, "1", "", "x", "1_8", [1], ["18"], [], 17.5,
              {"b": 1}, "1.2.0", "v1.3"]  # fmt: skip
    answers = set()
    for v in values:
        ctx = {"key": "k"} | ({attribute: v} if v is not None else {})
        theirs = peer("f", ctx)
        assert ours("f", ctx) == theirs, (condition, v)
        answers.add(theirs)
    assert answers == {True, False}


def test_targeting_that_is_not_an_object_is_reported() -> None:
    doc = {"flags": {"f": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on", "targeting": "on"}}}
    result = import_flagd(doc)
    assert result.skipped == ["f"]
    assert "JSON Logic object" in result.notes[0].message


@pytest.mark.parametrize(
    ("targeting", "why"),
    [
        ({"if": [{"merge": [1]}, "on", "off"]}, "'merge'"),
        ({"if": [{"==": [{"var": "a"}, {"var": "b"}]}, "on", "off"]}, "a var compared with a literal"),
        ({"if": [{"==": [{"var": "a"}, "x"]}, "nope", "off"]}, "'nope', which is not one of the variants"),
        ({"$ref": "missing"}, "unknown evaluator"),
        ({"fractional": [["on", 50], ["other", 50]]}, "'other' is not one of the variants"),
    ],
)
def test_unmappable_targeting_names_the_reason(targeting: Any, why: str) -> None:
    doc = {"flags": {"f": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
                           "targeting": targeting}}}  # fmt: skip
    result = import_flagd(doc)
    assert result.flags == []
    assert result.skipped == ["f"]
    assert why in result.notes[0].message


def test_a_file_that_is_not_a_flag_definition_is_refused_clearly() -> None:
    with pytest.raises(ImportFileError, match="not a flagd flag definition"):
        import_flagd({"features": []})
