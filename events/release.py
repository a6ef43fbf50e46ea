"""Release plans: a progressive rollout of one variation of a flag in one environment, in steps, watched by the
guardian (``services/release``). A plan is an entity of the event stream (``flagstream.<p>.<env>.plan.<id>``); each
of its events carries the plan's whole state, like every other entity.

A plan's life::

    running --(person)--> paused --(person)--> running
    running | paused --(last step written, 100%)--> completed
    running | paused --(guardrail breached, sample ratio mismatch)--> rolling_back --> rolled_back   (actor guardian)
    running | paused --(person)--> aborting --> aborted
    running | paused --(the flag can no longer take a step: archived, variation removed)--> failed

Evolution rules as for every event: new fields get defaults, a field never changes type, unknown fields are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

from .model import Key, Serve

PlanStatus = Literal["running", "paused", "rolling_back", "rolled_back", "aborting", "aborted", "completed", "failed"]
#: Statuses in which a plan still acts (holds a lease, watches its metrics).
ACTIVE: tuple[str, ...] = ("running", "paused", "rolling_back", "aborting")
MetricKind = Literal["count", "proportion", "mean"]


class PlanStep(Struct, frozen=True, kw_only=True):
    #: Share of the rollout given to the plan's variation, in units of 1/100,000 (as rollout weights).
    weight: int
    #: Seconds the step is held before the next one; ``None``: until a person advances the plan.
    hold: float | None = None


class Guardrail(Struct, frozen=True, kw_only=True):
    """The worst change a plan accepts in one metric.

    A tracked metric (``metric``, what the application's ``client.track`` calls report) compares the users served
    the plan's variation with the users the rollout still serves the control: ``kind`` ``count`` (events per exposed
    user), ``proportion`` (share of exposed users with at least one event) or ``mean`` (mean of the tracked values
    per user). ``bad`` is the direction that hurts; ``max_change`` the most it may move that way, in the metric's
    unit (a proportion of 0.005 is half a point), or a fraction of the control's value with ``relative``.

    A Prometheus guardrail (``promql``) is a query evaluated on each step against the Prometheus server the admin
    service was given: breached when its value goes past ``threshold`` in the ``bad`` direction.
    """

    metric: str = ""
    kind: MetricKind = "count"
    bad: Literal["increase", "decrease"] = "increase"
    max_change: float = 0.0
    relative: bool = False
    promql: str = ""
    threshold: float = 0.0

    @property
    def name(self) -> str:
        return self.metric or self.promql


class Evidence(Struct, frozen=True, kw_only=True):
    """Why the guardian rolled a plan back: what it measured when it decided."""

    #: ``guardrail`` (a metric moved past what it accepts), ``sample_ratio`` (the rollout's split is not what
    #: users see) or ``prometheus`` (a query past its threshold).
    reason: Literal["guardrail", "sample_ratio", "prometheus"]
    #: The metric's name, or the PromQL query.
    metric: str = ""
    kind: str = ""
    step: int = 0
    #: Treatment minus control (the metric's unit), and its always-valid confidence interval.
    effect: float = 0.0
    lower: float = 0.0
    upper: float = 0.0
    #: The change the guardrail accepts (absolute, in the metric's unit), or the PromQL threshold.
    limit: float = 0.0
    treatment_users: int = 0
    control_users: int = 0
    treatment_value: float = 0.0
    control_value: float = 0.0
    #: The test's error rate for this check (the plan's share of it), and the sample ratio test's numbers.
    alpha: float = 0.0
    expected_share: float = 0.0
    observed_share: float = 0.0
    #: A PromQL query's value.
    value: float = 0.0
    text: str = ""


class Plan(Struct, frozen=True, kw_only=True):
    """One release plan's whole state. Its subject is ``flagstream.<p>.<env>.plan.<id>``."""

    id: Key
    flag: Key
    #: The rule whose serve the plan rolls out (its id), or ``""``: the default rule (fallthrough).
    rule: str = ""
    #: The variation rolled out, and the one the rest keep being served (what the rule served before).
    variation: Key
    control: Key
    steps: tuple[PlanStep, ...]
    guardrails: tuple[Guardrail, ...] = ()
    #: What a rollback does: ``restore`` the rule's serve from before the plan, or turn the flag ``off``.
    rollback: Literal["restore", "off"] = "restore"
    #: The chance of a rollback when nothing is wrong, over the whole plan (each check gets its share).
    error_rate: float = 0.05
    #: How ``error_rate`` is shared among the checks (``services/release/stats.py``): ``by_step`` (every plan made
    #: since 2026-12-06: each watched step in proportion to ``1 / (w (1 - w))``, within a step a fifth to the sample
    #: ratio test and the rest to the tracked guardrails; each step's bound tightest at a number of users that
    #: scales the same way) or ``equal`` (plans made before: every check of every watched step an equal share, every
    #: bound tightest at 2,000 users). Absent in older events: ``equal``, what they were made with.
    split: Literal["equal", "by_step"] = "equal"
    #: Users needed on each side before a tracked guardrail is judged.
    min_users: int = 100
    status: PlanStatus = "running"
    #: Index of the step written last (-1: none yet), when it was written and the stream sequence of that write.
    step: int = -1
    step_at: datetime | None = None
    step_seq: int = 0
    #: Seconds of the current step spent paused (not counted in its hold), and since when it is paused.
    paused_for: float = 0.0
    paused_at: datetime | None = None
    #: A person asked for the next step now.
    advance: bool = False
    #: The rule's serve before the plan's first step (what ``restore`` and an abort write back).
    before: Serve | None = None
    #: The admin process holding the plan (the last to claim it).
    holder: str = ""
    #: Stream sequence of the flag write that ended it (rollback, abort), and why it ended.
    result_seq: int = 0
    evidence: Evidence | None = None
    error: str = ""

    @property
    def archived(self) -> bool:
        """Ended: nothing more will happen to it."""
        return self.status not in ACTIVE
