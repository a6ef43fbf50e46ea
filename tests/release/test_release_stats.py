"""The guardian's statistics, on simulated data (seeded NumPy generators: the same numbers every run, so these tests
cannot flake): the interval holds the truth at every look at once, A/A plans rarely roll back, a real harm is found
quickly, the sample ratio test tells a broken split from a fair one, and what a window counts per user."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np

from flagstream.events.release import Plan
from flagstream.events.tracking import Exposed, MetricsBatch, Tracked, Unexposed
from flagstream.services.release import FlagWindow, judge, shares, split_by_step, srm_mismatch
from flagstream.services.release.stats import Arm, Shares, confidence_sequence

AT = datetime(2026, 1, 1, tzinfo=UTC)


def step(seed: int, p_control: float, p_treatment: float, weight: float, seconds: int, share: Shares,
         rate: int = 1_000, users: int = 10_000, min_users: int = 100) -> tuple[int | None, str | None]:  # fmt: skip
    """One step of the bench's simulated app, looked at every second: (the second of a rollback, its reason)."""
    rng = np.random.default_rng(seed)
    treated = rng.random(users) < weight
    seen = np.zeros(users, bool)
    errors = np.zeros(users)
    for second in range(1, seconds + 1):
        who = rng.integers(0, users, rate)
        failed = rng.random(rate) < np.where(treated[who], p_treatment, p_control)
        seen[who] = True
        np.add.at(errors, who, failed)
        t, c = seen & treated, seen & ~treated
        j = judge(errors[t], errors[c], bad="increase", max_change=0.0, relative=False, alpha=share.guardrail,
                  min_users=min_users, t_star=share.t_star)  # fmt: skip
        if j.breached:
            return second, "guardrail"
        if srm_mismatch([int(t.sum()), int(c.sum())], [weight, 1 - weight], share.sample_ratio):
            return second, "sample_ratio"
    return None, None


#: The bench's plan: 5%, 25%, 50% watched, then 100%; one tracked guardrail (errors) at the default 5% error rate.
STEPS = (0.05, 0.25, 0.5)
SHARES = split_by_step(0.05, [*STEPS, 1.0], 1)


def test_a_a_plans_roll_back_at_most_as_often_as_their_error_rate() -> None:
    """200 A/A plans of three watched steps (5%, 25%, 50%, a minute each): false rollbacks <= the 5% configured."""
    rollbacks = 0
    for trial in range(200):
        for i, weight in enumerate(STEPS):
            if step(1_000 * trial + i, 0.01, 0.01, weight, 60, SHARES[i], rate=500, users=5_000)[0] is not None:
                rollbacks += 1
                break
    assert rollbacks / 200 <= 0.05


def test_errors_tripled_at_a_5_percent_step_are_found_within_a_minute() -> None:
    times = [step(seed, 0.01, 0.03, 0.05, 120, SHARES[0]) for seed in range(10)]
    assert all(reason == "guardrail" for _, reason in times)
    assert max(t for t, _ in times if t is not None) <= 60


def test_the_error_rate_is_spent_where_evidence_comes_slowest_and_adds_up_to_the_plans() -> None:
    """``by_step``: steps in proportion to 1 / (w (1 - w)), a fifth of each to the sample ratio test; the shares of all
    checks add up to the plan's error rate (the union bound that makes the plan's false rollbacks at most it)."""
    assert [round(s.guardrail + s.sample_ratio, 4) for s in SHARES] == [0.0346, 0.0088, 0.0066, 0.0]
    assert SHARES[0].sample_ratio == SHARES[0].guardrail / 4
    two = split_by_step(0.05, [0.01, 0.05, 0.25, 1.0], 2)
    assert abs(sum(2 * s.guardrail + s.sample_ratio for s in two) - 0.05) < 1e-12
    assert two[0].guardrail > two[1].guardrail > two[2].guardrail  # the 1% step needs the most users
    only_srm = split_by_step(0.05, [0.5, 1.0], 0)  # no tracked guardrail: the sample ratio test has it all
    assert (only_srm[0].guardrail, only_srm[0].sample_ratio) == (0.0, 0.05)


def test_a_plan_written_before_the_split_keeps_the_equal_split_it_was_made_with() -> None:
    """Plans in the stream from before ``split`` existed decode as ``equal``: a plan in flight across the upgrade
    keeps the shares it started with (changing them mid-step would spend more than its error rate)."""
    old = msgspec.json.encode({
        "id": "p1", "flag": "checkout", "variation": "on", "control": "off", "error_rate": 0.05,
        "steps": [{"weight": 5_000}, {"weight": 25_000}, {"weight": 50_000}, {"weight": 100_000}],
        "guardrails": [{"metric": "errors"}, {"promql": "up", "threshold": 1.0}],
    })  # fmt: skip
    plan = msgspec.json.decode(old, type=Plan)
    assert plan.split == "equal"
    each = 0.05 / (3 * 3)  # three watched steps, two guardrails and the sample ratio test each
    assert [(round(s.guardrail, 6), round(s.sample_ratio, 6)) for s in shares(plan)] == [(round(each, 6),) * 2] * 3 + [
        (0.0, 0.0)
    ]
    assert shares(plan)[0].t_star == 2_000  # and its boundary stays tightest where it was
    new = msgspec.structs.replace(plan, split="by_step")  # a PromQL guardrail takes no share of it
    assert shares(new)[0] == split_by_step(0.05, [0.05, 0.25, 0.5, 1.0], 1)[0]
    assert [round(s.t_star) for s in shares(new)[:3]] == [8_000, 2_027, 1_520]


def test_the_interval_holds_the_true_difference_at_every_look_at_once() -> None:
    """Coverage of the whole path (not of one look): in 300 runs of 200 looks, the lower bound crosses the truth in
    at most alpha of the runs."""
    rng = np.random.default_rng(3)
    alpha, misses = 0.05, 0
    for _ in range(300):
        a = rng.normal(1.0, 2.0, 4_000)
        b = rng.normal(0.5, 2.0, 4_000)  # true difference 0.5
        for n in range(40, 4_001, 20):
            interval = confidence_sequence(Arm.of(a[:n]), Arm.of(b[:n]), alpha)
            if interval.lower > 0.5:
                misses += 1
                break
    assert misses / 300 <= alpha


def test_the_sample_ratio_test_tells_a_broken_split_from_a_fair_one() -> None:
    rng = np.random.default_rng(11)
    fair = rng.random(20_000) < 0.1
    assert not any(srm_mismatch([int(fair[:n].sum()), n - int(fair[:n].sum())], [0.1, 0.9], 0.01)
                   for n in range(100, 20_001, 100))  # fmt: skip
    # A tenth of the treatment's users never report (their SDK crashes on the new variation): found.
    reports = ~fair | (rng.random(20_000) > 0.1)
    counted = [(int((fair & reports)[:n].sum()), int((~fair)[:n].sum())) for n in range(100, 20_001, 100)]
    assert any(srm_mismatch([t, c], [0.1, 0.9], 0.01) for t, c in counted)
    assert srm_mismatch([0, 10], [0.0, 1.0], 0.01) is False
    assert srm_mismatch([3, 10], [0.0, 1.0], 0.01) is True  # users in an arm the rollout does not serve


def test_a_window_counts_per_user_on_the_side_that_served_them() -> None:
    window = FlagWindow(flag="checkout", since=AT)

    def batch(exposed=(), tracked=(), unexposed=()):  # type: ignore[no-untyped-def]
        return MetricsBatch(instance_id="i", project="default", environment="production", since=AT, until=AT,
                            exposed=tuple(exposed), tracked=tuple(tracked), unexposed=tuple(unexposed))  # fmt: skip

    on, off = (("checkout", "on"),), (("checkout", "off"),)
    window.add(batch(
        exposed=[Exposed("checkout", "on", "u1", 3), Exposed("checkout", "off", "u2", 1),
                 Exposed("checkout", "off", "u3", 2), Exposed("banner", "a", "u4", 1)],
        tracked=[Tracked("errors", "u1", 2, 0.0, 0, on), Tracked("latency", "u1", 2, 300.0, 2, on),
                 Tracked("errors", "u4", 5, 0.0, 0, (("banner", "a"),))],
        unexposed=[Unexposed("errors", 7)],
    ))  # fmt: skip
    # u3 moves to "on" (a bigger step): what it did under "off" is not carried over.
    window.add(batch(tracked=[Tracked("errors", "u3", 1, 0.0, 0, off)]))
    window.add(batch(exposed=[Exposed("checkout", "on", "u3", 1)], tracked=[Tracked("errors", "u3", 4, 0.0, 0, on)]))
    window.add(batch(tracked=[Tracked("errors", "u3", 1, 0.0, 0, off)]))  # late, from before the move: left out
    assert window.users() == {"on": 2, "off": 1}
    counts = window.values("errors", "count")
    assert sorted(counts["on"].tolist()) == [2.0, 4.0]
    assert counts["off"].tolist() == [0.0]
    assert sorted(window.values("errors", "proportion")["on"].tolist()) == [1.0, 1.0]
    assert window.values("latency", "mean")["on"].tolist() == [150.0]
    assert (window.unexposed["errors"], window.elsewhere["errors"]) == (7, 5)
