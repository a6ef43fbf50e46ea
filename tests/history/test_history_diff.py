"""Field-level diffs between two states, as the audit log shows them."""

from __future__ import annotations

from flagstream.events import Clause, Flag, Operator, Rollout, Rule, Segment, Serve, Target, WeightedVariation
from flagstream.services.history.diff import diff, lines
from flagstream.services.history.timetravel import revert_steps


def rule(rid: str, country: str) -> Rule:
    return Rule(id=rid, clauses=(Clause(attribute="country", op=Operator.IN, values=(country,)),),
                serve=Serve(variation="on"))  # fmt: skip


def test_reordered_rules_read_as_a_move_not_as_every_rule_changing() -> None:
    old = Flag(key="f", rules=(rule("a", "fr"), rule("b", "de")))
    new = Flag(key="f", rules=(rule("b", "de"), rule("a", "fr")))
    assert lines(diff(old, new)) == [
        "rules[id=b]: moved from position 1 to 0",
        "rules[id=a]: moved from position 0 to 1",
    ]


def test_a_change_inside_a_matched_rule_has_its_path_and_added_and_removed_rules_are_whole() -> None:
    old = Flag(key="f", rules=(rule("a", "fr"), rule("b", "de")))
    new = Flag(key="f", rules=(rule("c", "it"), rule("a", "es")))
    out = lines(diff(old, new))
    assert out[0].startswith('rules[0]: added {"id":"c"')
    assert 'rules[1].clauses[0].values: added "es"; removed "fr"' in out
    assert out[-1].startswith('rules[1]: removed {"id":"b"')


def test_weights_are_percentages_and_scalars_lists_are_sets() -> None:
    def split(on: int) -> Serve:
        return Serve(rollout=Rollout(variations=(WeightedVariation(variation="on", weight=on),
                                                 WeightedVariation(variation="off", weight=100_000 - on))))  # fmt: skip

    old = Flag(key="f", fallthrough=split(12_500), tags=("a", "b"), targets=(Target(variation="on", values=("u1",)),))
    new = Flag(
        key="f", fallthrough=split(33_333), tags=("b", "c"), targets=(Target(variation="on", values=("u1", "u2")),)
    )
    assert lines(diff(old, new)) == [
        'tags: added "c"; removed "a"',
        "fallthrough.rollout.variations[0].weight: 12.5% -> 33.333%",
        "fallthrough.rollout.variations[1].weight: 87.5% -> 66.667%",
        'targets[0].values: added "u2"',
    ]


def test_created_and_unchanged() -> None:
    created = diff(None, Segment(key="s"))
    assert [(c.path, c.op) for c in created] == [("", "added")]
    assert created[0].text.startswith('(state): added {"key":"s"')
    assert diff(Segment(key="s"), Segment(key="s")) == []


def test_revert_steps() -> None:
    on, off = Flag(key="f", on=True), Flag(key="f")
    archived = Flag(key="f", archived=True)
    assert revert_steps(on, off) == ["replace"]
    assert revert_steps(on, on) == []
    assert revert_steps(archived, off) == ["restore"]
    assert revert_steps(Flag(key="f", on=True, archived=True), off) == ["restore", "replace"]
    assert revert_steps(on, archived) == ["replace", "archive"]
    assert revert_steps(Flag(key="f", on=True, archived=True), archived) == ["restore", "replace", "archive"]
    assert revert_steps(on, None) == ["archive"]
    assert revert_steps(archived, None) == []
