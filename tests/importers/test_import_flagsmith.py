"""The Flagsmith importer against Flagsmith's own SDK (``flagsmith`` 6 in offline mode on the environment document,
over ``flagsmith-flag-engine`` 11): generated environment documents (feature states, multivariate values and their
allocations, segments with nested ALL/ANY/NONE rules and every condition operator, percentage splits, segment
override priorities, identity overrides) imported, then both answer the same for every feature and identity;
and what cannot be mapped is reported."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from flagstream.services.importers import ImportFileError, import_flagsmith, load_flagsmith
from flagstream.services.importers.flagsmith import percentage_of, split_weight
from tests.importers.peer_documents import engine_answers, flagsmith_peer, run_importer

DATA = Path(__file__).parent / "data"


def test_generated_environment_documents_answer_as_flagsmith() -> None:
    tally = run_importer("flagsmith", 60, 100)
    assert tally.differences == [], "\n\n".join(tally.differences)
    assert tally.flags >= 60, tally
    assert tally.contexts >= 6_000, tally


def _doc(*conditions: dict[str, Any], features: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A document with one toggle ``f``, off, turned on by a segment whose one rule holds ``conditions``."""
    state = {"feature": {"id": 1, "name": "f"}, "enabled": False, "feature_state_value": None, "django_id": 1,
             "featurestate_uuid": "a", "multivariate_feature_state_values": []}  # fmt: skip
    on = state | {"enabled": True, "django_id": 2, "feature_segment": {"priority": 0}}
    rule = {"type": "ALL", "conditions": list(conditions), "rules": []}
    return {"api_key": "env-key", "name": "P", "feature_states": features or [state],
            "project": {"segments": [{"id": 9, "name": "s", "rules": [rule], "feature_states": [on]}]},
            "identity_overrides": []}  # fmt: skip


def _both(doc: dict[str, Any]) -> tuple[Any, Any]:
    result = import_flagsmith(doc)
    peer, ours = flagsmith_peer(doc), engine_answers(result)
    flag = result.flags[0]

    def mine(identifier: str, traits: dict[str, Any]) -> Any:
        value = ours(flag.key, {"key": identifier, **traits})
        return (value, None) if flag.kind == "boolean" else (value["enabled"], value["value"])

    return (lambda name, identifier, traits: peer(name, identifier, traits)), mine


def test_a_boolean_trait_matches_a_semver_condition_as_flagsmith_casts_it() -> None:
    peer, mine = _both(_doc({"operator": "EQUAL", "property_": "v", "value": "1.2.3:semver"}))
    for v in (True, False, "1.2.3", "1.2.3+build", "1.2", 1, "v1.2.3"):
        assert peer("f", "u", {"v": v}) == mine("u", {"v": v}), v
    assert mine("u", {"v": True}) == (True, None)  # Flagsmith: True == bool("1.2.3:semver")


def test_numeric_texts_are_numbers_and_the_condition_value_is_cast_to_the_trait() -> None:
    for op, value in [("EQUAL", "5"), ("EQUAL", "5.0"), ("GREATER_THAN", "10"), ("LESS_THAN", "b"), ("IN", "7,x"),
                      ("NOT_EQUAL", "x"), ("CONTAINS", "1"), ("NOT_CONTAINS", "o")]:  # fmt: skip
        peer, mine = _both(_doc({"operator": op, "property_": "n", "value": value}))
        for v in ("5", "007", "5.0", "5.00", "a", "c", 5, 5.0, 7, 12, True, False, "foo", "10"):
            assert peer("f", "u", {"n": v}) == mine("u", {"n": v}), (op, value, v)


def test_identity_overrides_compare_identifiers_as_flagsmith_does() -> None:
    doc = _doc({"operator": "IS_SET", "property_": "never", "value": None})
    doc["identity_overrides"] = [
        {"identifier": "7", "identity_features": [{"feature": {"id": 1, "name": "f"}, "enabled": True,
                                                   "feature_state_value": None, "featurestate_uuid": "x"}]},
        {"identifier": "ada", "identity_features": [{"feature": {"id": 1, "name": "f"}, "enabled": True,
                                                     "feature_state_value": None, "featurestate_uuid": "y"}]},
    ]  # fmt: skip
    peer, mine = _both(doc)
    for identifier in ("7", "007", "ada", "Ada", "1.50"):
        assert peer("f", identifier, {}) == mine(identifier, {}), identifier
    assert mine("007", {}) == (True, None)  # "007" is read as 7, so the override of "7" applies
    shadow = {"$.identity.identifier": "ada"}  # a trait named like the JSONPath wins over the identifier
    assert peer("f", "bob", shadow) == mine("bob", shadow) == (True, None)


def test_a_percentage_split_weight_holds_exactly_the_percentages_flagsmith_lets_in() -> None:
    for value in [0, 0.005, 0.01, 9.99, 10, 33.3, 33.33333, 50, 66.666, 99.99, 99.995, 100, 150, -1]:
        w = split_weight(value)
        inside = {k for k in range(9998) if percentage_of(k) <= value}
        assert inside == ({k for k in range(9998) if percentage_of(k) <= w / 1000} if w is not None else set()), value


def test_the_example_document_and_what_it_reports() -> None:
    result = load_flagsmith(DATA / "flagsmith-environment.json")
    assert [f.key for f in result.flags] == ["checkout", "banner_colour", "search_limit", "staff_tools"]
    kinds = {f.key: f.kind.value for f in result.flags}
    assert kinds == {"checkout": "boolean", "banner_colour": "json", "search_limit": "json", "staff_tools": "boolean"}
    problems = {(n.severity, n.subject) for n in result.problems()}
    assert problems == {("approximated", "segment staff"), ("approximated", "flag staff_tools")}
    doc = json.loads((DATA / "flagsmith-environment.json").read_text())
    peer, ours = flagsmith_peer(doc), engine_answers(result)
    for i in range(300):
        traits = {"plan": ["beta", "free"][i % 2], "app_version": ["2.1.0", "1.9.0"][i % 3 % 2], "country": "NO"}
        for flag in result.flags[:3]:
            value = ours(flag.key, {"key": f"user-{i}", **traits})
            mine = (value, None) if flag.kind == "boolean" else (value["enabled"], value["value"])
            assert peer(flag.name, f"user-{i}", traits) == mine, (flag.key, i)


def test_what_does_not_map_is_reported_and_left_out() -> None:
    base = _doc({"operator": "EQUAL", "property_": "plan", "value": "pro"})
    cases = {
        "$.environment.name": {"operator": "EQUAL", "property_": "$.environment.name", "value": "P"},
        "a trait named 'key'": {"operator": "EQUAL", "property_": "key", "value": "x"},
        "RE2": {"operator": "REGEX", "property_": "plan", "value": "(?=pro)"},
        "MODULO": {"operator": "MODULO", "property_": "n", "value": "0|0"},
    }
    for what, condition in cases.items():
        doc = copy.deepcopy(base)
        doc["project"]["segments"][0]["rules"][0]["conditions"] = [condition]
        result = import_flagsmith(doc)
        assert result.skipped == ["f"], what
        assert not result.flags, what
        unmapped = [n for n in result.notes if n.severity == "unmapped"]
        assert {n.subject for n in unmapped} == {"segment s", "flag f"}, (what, unmapped)


def test_not_an_environment_document() -> None:
    with pytest.raises(ImportFileError, match="not a Flagsmith environment document"):
        import_flagsmith({"flags": []})
