"""Each bucketing scheme against its home system's own engine (peer SDKs from PyPI, test-only dependencies):
hypothesis generates flags in the peer's format, the same flag is written with the scheme, and both answer for
generated contexts (non-ASCII keys, numbers, booleans, absent values, nested attributes, other context kinds).

In the suite: 50 flags x 200 contexts = 10,000 contexts per scheme (well under a second each). The long run,
``bench/differential.py`` (``make differential``), compares 100,000 per scheme; bench/README.md has its figures.
"""

from __future__ import annotations

import pytest

from tests.importers.differential import SCHEMES, Case, contexts, ours, run_scheme

FLAGS, CONTEXTS = 50, 200


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_scheme_answers_as_its_home_system(scheme: str) -> None:
    tally = run_scheme(scheme, FLAGS, CONTEXTS)
    assert tally.flags == FLAGS
    assert tally.contexts > FLAGS * CONTEXTS * 0.8  # the few contexts the peer answers at random are left out
    assert tally.differences == [], "\n".join(tally.differences)


def test_the_comparison_sees_a_wrong_prefix() -> None:
    """A flag bucketed with another salt than LaunchDarkly's: the harness reports differences."""
    from flagstream.events import Flag, Rollout, Serve, Variation, WeightedVariation
    from tests.importers.differential import _ld_evaluator, _ours_ld

    ld_flag = {"key": "f", "version": 1, "on": True, "salt": "s", "variations": ["v0", "v1"], "offVariation": 0,
               "fallthrough": {"rollout": {"variations": [{"variation": 0, "weight": 50_000},
                                                          {"variation": 1, "weight": 50_000}]}}}  # fmt: skip
    rollout = Rollout(
        variations=(WeightedVariation(variation="v0", weight=50_000), WeightedVariation(variation="v1", weight=50_000)),
        algorithm="launchdarkly",
        hash_prefix="f.other.",
    )
    flag = Flag(key="f", on=True, variations=(Variation(key="v0", value="v0"), Variation(key="v1", value="v1")),
                off_variation="v0", fallthrough=Serve(rollout=rollout))  # fmt: skip
    peer = _ld_evaluator({"f": ld_flag}, {})
    case = Case("wrong salt", lambda c: peer("f", c), _ours_ld(flag))
    same = sum(case.peer(c) == case.ours(c) for c in contexts(1, 1000))
    assert 400 < same < 600  # half agree by chance, half do not
    assert ours(flag)({"key": "u"}) in ("v0", "v1")
