"""Events written before bucketing schemes had parameters (``hash_version``, ``ranges``, a segment rule's
``context_kind``) and before the Flagsmith and GrowthBook importers' fields (``Clause.cast``, ``Rollout.fallback_by``,
``SegmentRule.ranges``) still decode with those fields' defaults, and their flags answer as they did: the formulas
of the engine of that time, written out here with mmh3, for thousands of contexts."""

from __future__ import annotations

import json
from bisect import bisect_right

import mmh3

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.events import decode_event

# A flag event exactly as the release before wrote it (every field it had, none of the new ones).
OLD_FLAG_EVENT = {
    "type": "flag.updated", "project": "default", "environment": "production", "actor": "import", "version": 7,
    "at": "2026-11-01T00:00:00Z", "comment": "imported from unleash",
    "flag": {
        "key": "checkout", "name": "checkout", "description": "", "kind": "string", "tags": ["unleash"], "on": True,
        "variations": [{"key": k, "value": k, "name": "", "description": ""} for k in ("a", "b", "c", "off")],
        "off_variation": "off", "targets": [], "prerequisites": [], "salt": "", "archived": False,
        "rules": [
            {"id": "pct", "description": "", "clauses": [{"attribute": "country", "op": "in", "values": ["NO"],
                                                           "negate": False, "case_insensitive": False,
                                                           "context_kind": "user"}],
             "serve": {"variation": None, "rollout": {
                 "variations": [{"variation": "a", "weight": 30000}], "bucket_by": "userId", "context_kind": "user",
                 "algorithm": "unleash", "hash_prefix": "grp:", "partial": True}}},
            {"id": "fd", "description": "", "clauses": [{"attribute": "country", "op": "in", "values": ["SE"],
                                                          "negate": False, "case_insensitive": False,
                                                          "context_kind": "user"}],
             "serve": {"variation": None, "rollout": {
                 "variations": [{"variation": "a", "weight": 25000}, {"variation": "b", "weight": 75000}],
                 "bucket_by": "key", "context_kind": "user", "algorithm": "flagd", "hash_prefix": "checkout",
                 "partial": False}}},
            {"id": "seg", "description": "", "clauses": [{"attribute": "key", "op": "in_segment", "values": ["beta"],
                                                           "negate": False, "case_insensitive": False,
                                                           "context_kind": "user"}],
             "serve": {"variation": "c", "rollout": None}},
        ],
        "fallthrough": {"variation": None, "rollout": {
            "variations": [{"variation": "a", "weight": 20000}, {"variation": "b", "weight": 30000},
                           {"variation": "c", "weight": 50000}],
            "bucket_by": "key", "context_kind": "user", "algorithm": "unleash_variant", "hash_prefix": "checkout:",
            "partial": False}},
    },
}  # fmt: skip
OLD_SEGMENT_EVENT = {
    "type": "segment.updated", "project": "default", "environment": "production", "actor": "import", "version": 3,
    "at": "2026-11-01T00:00:00Z", "comment": "",
    "segment": {"key": "beta", "name": "", "description": "", "context_kind": "user", "included": [], "excluded": [],
                "salt": "", "archived": False,
                "rules": [{"id": "r0", "clauses": [], "weight": 12000, "bucket_by": "key", "algorithm": "unleash",
                           "hash_prefix": "beta:"}]},
}  # fmt: skip


def old_engine(user: dict[str, str]) -> str:
    """What the engine of the release before answered (its formulas, from its bucketing module)."""
    t = user["key"]
    if user.get("country") == "NO" and "userId" in user and mmh3.hash("grp:" + user["userId"], 0, False) % 100 < 30:
        return "a"
    if user.get("country") == "SE":
        bucket = abs(mmh3.hash("checkout" + t, 0, True)) / (2**31 - 1) * 100
        return ["a", "b", "b"][bisect_right((25.0, 100.0), bucket)]
    if mmh3.hash("beta:" + t, 0, False) % 100 * 1000 < 12000:
        return "c"
    return ["a", "b", "c"][
        bisect_right((20000, 50000, 100000), mmh3.hash("checkout:" + t, 86028157, False) % 1000 * 100)
    ]


def test_old_imported_flags_decode_and_answer_as_before() -> None:
    flag_event = decode_event(json.dumps(OLD_FLAG_EVENT).encode())
    segment_event = decode_event(json.dumps(OLD_SEGMENT_EVENT).encode())
    rollout = flag_event.flag.fallthrough.rollout
    assert rollout.hash_version == 0  # the new fields take their defaults
    assert rollout.ranges == ()
    assert rollout.fallback_by == ""
    assert segment_event.segment.rules[0].context_kind == ""
    assert segment_event.segment.rules[0].ranges == ()
    assert {c.cast for r in flag_event.flag.rules for c in r.clauses} == {""}
    segments = {"beta": compile_segment(segment_event.segment)}
    compiled = {"checkout": compile_flag(flag_event.flag, segments)}
    assert compiled["checkout"].error is None
    users = [
        {"key": f"user-{i}", "country": ("NO", "SE", "DK")[i % 3], **({"userId": f"id-{i}"} if i % 5 else {})}
        for i in range(6000)
    ]
    got = [evaluate(compiled, "checkout", u, "default").value for u in users]
    assert got == [old_engine(u) for u in users]
    assert {"a", "b", "c"} <= set(got)
