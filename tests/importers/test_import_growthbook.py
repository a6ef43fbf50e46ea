"""The GrowthBook importer against GrowthBook's own SDK (``growthbook`` 4): generated SDK payloads (force rules with
coverage, ranges and fallback attributes; experiments with weights, coverage, explicit ranges, seeds, hash
versions 1 and 2, namespaces, filters, passthrough variations; conditions in the Mongo-like language with every
operator the importer maps, nested ``$or``/``$and``/``$nor``/``$not``, dotted paths, saved groups) imported, then
both answer the same for attributes of every JSON type; and what cannot be mapped is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flagstream.services.importers import ImportFileError, import_growthbook, load_growthbook
from tests.importers.peer_documents import engine_answers, growthbook_peer, run_importer

DATA = Path(__file__).parent / "data"


def test_generated_payloads_answer_as_growthbook() -> None:
    tally = run_importer("growthbook", 60, 100)
    assert tally.differences == [], "\n\n".join(tally.differences)
    assert tally.flags >= 60, tally
    assert tally.contexts >= 6_000, tally


def test_namespaces_and_filters_are_a_second_hash_gate() -> None:
    payload = {"features": {"f": {"defaultValue": "off", "rules": [
        {"key": "e", "variations": ["a", "b"], "namespace": ["ns", 0.2, 0.7], "hashVersion": 2},
        {"force": "filtered", "filters": [{"seed": "s", "ranges": [[0, 0.3], [0.6, 0.8]]}]},
    ]}}}  # fmt: skip
    result = import_growthbook(payload)
    gates = [s for s in result.segments if s.rules and s.rules[0].ranges]
    assert [(s.rules[0].hash_prefix, s.rules[0].hash_version, s.rules[0].ranges) for s in gates] == [
        ("__ns", 1, ((0.2, 0.7),)),
        ("s", 2, ((0.0, 0.3), (0.6, 0.8))),
    ]
    peer, ours = growthbook_peer(payload), engine_answers(result)
    seen = set()
    for i in range(2_000):
        attributes = {"id": f"user-{i}"}
        answer = ours("f", {"key": "k", **attributes})
        assert peer("f", attributes) == answer, attributes
        seen.add(answer)
    assert seen == {"a", "b", "filtered", "off"}


def test_a_force_rule_falls_back_to_its_fallback_attribute() -> None:
    payload = {"features": {"f": {"defaultValue": 0, "rules": [
        {"force": 1, "coverage": 0.5, "hashAttribute": "id", "fallbackAttribute": "device"}]}}}  # fmt: skip
    result = import_growthbook(payload)
    assert result.flags[0].rules[0].serve.rollout.fallback_by == "device"  # type: ignore[union-attr]
    peer, ours = growthbook_peer(payload), engine_answers(result)
    for i in range(500):
        for attributes in ({"id": f"u{i}"}, {"device": f"d{i}"}, {"id": "", "device": f"d{i}"}, {"id": 0}):
            assert peer("f", attributes) == ours("f", {"key": "k", **attributes}), attributes


@pytest.mark.parametrize("group", ["missing", "listed", "plain"])
@pytest.mark.parametrize("op", ["$inGroup", "$notInGroup"])
def test_saved_groups_missing_or_listed_answer_as_growthbook(op: str, group: str) -> None:
    """A group the payload lacks is an empty one (``$notInGroup`` holds everyone, with or without the attribute);
    a group of type list is its values. make differential found the missing group answered as no match."""
    rule = {"condition": {"plan": {op: group}}, "force": "yes"}
    payload = {"features": {"f": {"defaultValue": "no", "rules": [rule]}},
               "savedGroups": {"listed": {"type": "list", "values": ["pro", 10]}, "plain": ["pro", 10]}}  # fmt: skip
    result = import_growthbook(payload)
    assert result.skipped == []
    peer, ours = growthbook_peer(payload), engine_answers(result)
    seen = set()
    for attributes in ({}, {"plan": "pro"}, {"plan": 10}, {"plan": "free"}, {"plan": ["pro", "x"]}, {"plan": None}):
        answer = peer("f", attributes)
        assert ours("f", {"key": "k", **attributes}) == answer, attributes
        seen.add(answer)
    assert seen == ({"yes", "no"} if group != "missing" else {"yes" if op == "$notInGroup" else "no"})


def test_the_example_payload_and_what_it_reports() -> None:
    result = load_growthbook(DATA / "growthbook-features.json")
    assert [f.key for f in result.flags] == ["dark-mode", "checkout-layout", "max-uploads", "support-chat"]
    assert result.skipped == ["new-search"]
    problems = {(n.severity, n.subject) for n in result.problems()}
    assert problems == {("unmapped", "flag new-search"), ("approximated", "flag support-chat")}
    payload = json.loads((DATA / "growthbook-features.json").read_text())
    peer, ours = growthbook_peer(payload), engine_answers(result)
    for i in range(500):
        attributes = {"id": f"user-{i}", "country": ["NO", "US"][i % 2], "beta": i % 3 == 0,
                      "plan": ["pro", "free"][i % 2], "appVersion": ["2.1.0", "2.0.9", "v2.10.0"][i % 3],
                      "company": {"size": i % 200}}  # fmt: skip
        for key in ("dark-mode", "checkout-layout", "max-uploads"):
            assert peer(key, attributes) == ours(key, {"key": "k", **attributes}), (key, attributes)


def test_what_does_not_map_is_reported_and_left_out() -> None:
    cases = {
        "$elemMatch": {"tags": {"$elemMatch": {"$eq": "x"}}},
        "$size": {"tags": {"$size": 2}},
        "$type": {"a": {"$type": "string"}},
        "an array literal": {"tags": ["a", "b"]},
        "a list index": {"tags.0": "a"},
        "key": {"key": "x"},
        "RE2": {"a": {"$regex": "(?=x)"}},
        "$savedGroup": {"$savedGroup": {"id": "g"}},
    }
    for what, condition in cases.items():
        result = import_growthbook(
            {"features": {"f": {"defaultValue": 1, "rules": [{"condition": condition, "force": 2}]}}}
        )
        assert result.skipped == ["f"], what
        assert [n.severity for n in result.notes] == ["unmapped"], (what, result.notes)


def test_not_a_payload() -> None:
    with pytest.raises(ImportFileError, match="encrypted"):
        import_growthbook({"encryptedFeatures": "abc"})
    with pytest.raises(ImportFileError, match="not a GrowthBook SDK payload"):
        import_growthbook({"flags": {}})
