"""The seed's two examples in docs/targeting.md are data the engine accepts and that behave as described."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.evaluation import ReasonKind
from flagstream.events import Flag, Segment
from flagstream.validation import validate_flag, validate_segment

DOC = Path(__file__).resolve().parents[2] / "docs" / "targeting.md"


def documented() -> tuple[dict[str, Flag], dict[str, Segment]]:
    flags: dict[str, Flag] = {}
    segments: dict[str, Segment] = {}
    for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S):
        raw = msgspec.json.decode(block.encode())
        if "variations" in raw:
            flag = msgspec.convert(raw, Flag)
            flags[flag.key] = flag
        else:
            segment = msgspec.convert(raw, Segment)
            segments[segment.key] = segment
    return flags, segments


FLAGS, SEGMENTS = documented()
COMPILED_SEGMENTS = {k: compile_segment(s) for k, s in SEGMENTS.items()}
COMPILED = {k: compile_flag(f, COMPILED_SEGMENTS) for k, f in FLAGS.items()}


def test_the_examples_are_valid() -> None:
    assert set(FLAGS) == {"new-checkout", "premium-welcome"}
    for flag in FLAGS.values():
        assert validate_flag(flag, segments=SEGMENTS, flags=FLAGS) == []
    for segment in SEGMENTS.values():
        assert validate_segment(segment) == []


def test_ten_percent_of_californian_ios_users() -> None:
    users = [{"key": f"user-{i}", "state": "CA", "os": "iOS"} for i in range(20_000)]
    on = sum(evaluate(COMPILED, "new-checkout", u, None).value for u in users)
    assert abs(on / len(users) - 0.10) < 0.01
    for other in ({"state": "CA", "os": "Android"}, {"state": "NY", "os": "iOS"}, {}):
        assert not any(evaluate(COMPILED, "new-checkout", {"key": f"u{i}", **other}, None).value for i in range(2_000))


@pytest.mark.parametrize(
    ("attributes", "shown"),
    [
        ({"plan": "premium", "signed_up_at": "2024-03-05T10:00:00Z"}, True),
        ({"plan": "premium-annual", "signed_up_at": 1_717_200_000}, True),
        ({"plan": "premium", "signed_up_at": "2023-12-31"}, False),
        ({"plan": "free", "signed_up_at": "2024-03-05"}, False),
        ({"plan": "premium"}, False),
        ({"plan": "premium", "signed_up_at": "not a date"}, False),
    ],
)
def test_premium_subscribers_who_signed_up_after_january_2024(attributes: dict, shown: bool) -> None:
    d = evaluate(COMPILED, "premium-welcome", {"key": "user-42", **attributes}, None)
    assert d.value is shown
    assert d.reason.kind is (ReasonKind.RULE_MATCH if shown else ReasonKind.FALLTHROUGH)
