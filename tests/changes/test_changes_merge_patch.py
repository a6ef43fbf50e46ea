"""JSON Merge Patch (RFC 7386), the pure part: the RFC's own examples, and a patch applied to a domain value and
read back as a whole (unknown fields, wrong types and removed required fields named by their JSON path)."""

from __future__ import annotations

from typing import Any

import pytest

from flagstream.events import Flag, Rollout, Serve, WeightedVariation
from flagstream.services.changes import InvalidInput, apply_merge_patch, merge_patch

# RFC 7386, Appendix A: (original, patch, result).
RFC_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_EXAMPLES)
def test_the_rfc_examples(original: Any, patch: Any, result: Any) -> None:
    assert merge_patch(original, patch) == result


def test_the_target_is_not_modified() -> None:
    original = {"a": {"b": 1}}
    merge_patch(original, {"a": {"b": 2, "c": 3}})
    assert original == {"a": {"b": 1}}


FLAG = Flag(key="checkout", name="New checkout", description="one page", tags=("web",), on=True)


def test_a_patch_changes_what_it_names_and_keeps_the_rest() -> None:
    patched = apply_merge_patch(FLAG, {"description": "two pages", "tags": ["web", "beta"]})
    assert patched == Flag(key="checkout", name="New checkout", description="two pages", tags=("web", "beta"), on=True)


def test_null_removes_a_member_which_then_has_its_default() -> None:
    assert apply_merge_patch(FLAG, {"description": None}).description == ""


def test_nested_objects_merge() -> None:
    half = {"variations": [{"variation": "on", "weight": 50_000}, {"variation": "off", "weight": 50_000}]}
    patched = apply_merge_patch(FLAG, {"fallthrough": {"variation": None, "rollout": half}})
    rollout = Rollout(variations=(WeightedVariation(variation="on", weight=50_000),
                                  WeightedVariation(variation="off", weight=50_000)))  # fmt: skip
    assert patched.fallthrough == Serve(rollout=rollout)
    bucketed = apply_merge_patch(patched, {"fallthrough": {"rollout": {"bucket_by": "account"}}})
    assert bucketed.fallthrough.rollout is not None
    assert bucketed.fallthrough.rollout.bucket_by == "account"
    assert bucketed.fallthrough.rollout.variations == rollout.variations, "the rest of the rollout is kept"


@pytest.mark.parametrize(
    ("patch", "path", "words"),
    [
        ({"fallthrough": {"rolout": {}}}, "$.fallthrough.rolout", "unknown field"),
        ({"tags": "web"}, "$.tags", "Expected `array`"),
        ({"key": None}, "$", "missing required field `key`"),
        ({"variations": [{"key": "on"}]}, "$.variations[0]", "missing required field `value`"),
        (["not", "an", "object"], "$", "a JSON object"),
    ],
)
def test_a_patch_that_does_not_give_a_valid_whole_is_refused_naming_the_path(patch: Any, path: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        apply_merge_patch(FLAG, patch)
    assert refused.value.problems[0].path == path, refused.value.problems
    assert words in refused.value.message
