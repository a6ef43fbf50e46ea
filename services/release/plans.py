"""Release plans, the pure part: a request read into a ``Plan`` (every mistake a 4xx naming its field), what a step
writes to the flag, what a rollback writes back, when the next step is due. No I/O.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from msgspec import Struct

from ...events import WEIGHT_TOTAL, Flag, Rollout, Serve, WeightedVariation, subject
from ...events.release import ACTIVE, Guardrail, Plan, PlanStep
from ...events.subjects import PREFIX
from ...events.tracking import METRIC_MAX, METRIC_PATTERN
from ...validation import Problem
from ..changes import InvalidInput
from .stats import Shares, split_by_step, split_equal

#: Most steps in a plan, guardrails in a plan, characters in a PromQL query.
MAX_STEPS = 20
MAX_GUARDRAILS = 10
MAX_PROMQL = 2_000
_METRIC = re.compile(METRIC_PATTERN)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def plan_subject(project: str, environment: str, plan_id: str) -> str:
    return subject(project, environment, "plan", plan_id)


def plans_filter(project: str = "*", environment: str = "*") -> str:
    return f"{PREFIX}.{project}.{environment}.plan.*"


def new_plan_id() -> str:
    return "p" + secrets.token_hex(8)


# -- the request body --------------------------------------------------------------------------------------------


class StepBody(Struct, kw_only=True, forbid_unknown_fields=True):
    #: Percent of the rule's users served the plan's variation (0.001 to 100).
    percent: float
    #: How long the step is held: seconds, or ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``; absent or ``"manual"``:
    #: until a person advances the plan.
    hold: float | str | None = None


class GuardrailBody(Struct, kw_only=True, forbid_unknown_fields=True):
    #: A metric the application tracks (``client.track``), or a PromQL query: exactly one.
    metric: str | None = None
    promql: str | None = None
    #: ``count``, ``proportion`` or ``mean`` (tracked metrics).
    kind: str = "count"
    #: The direction that hurts: ``increase`` (errors, latency) or ``decrease`` (conversions).
    bad: str = "increase"
    #: The most the metric may move in the bad direction (tracked metrics): in its unit...
    max_change: float | None = None
    #: ...or as a percentage of the control's value.
    max_change_pct: float | None = None
    #: PromQL: the value the query's result may not go past in the bad direction.
    threshold: float | None = None


class PlanBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """A release plan: roll ``variation`` of ``flag`` out in ``steps``, watched by ``guardrails``."""

    flag: str
    variation: str
    steps: list[StepBody]
    #: The rule whose serve is rolled out (its id); absent: the default rule.
    rule: str | None = None
    guardrails: list[GuardrailBody] = []
    #: ``restore`` (the rule's serve from before the plan) or ``off`` (the flag off).
    rollback: str = "restore"
    #: The chance of a rollback when nothing is wrong, over the whole plan (0.001 to 0.2).
    error_rate: float = 0.05
    #: Users needed on each side before a tracked guardrail is judged.
    min_users: int = 100
    comment: str = ""
    #: The plan's id; absent: a new one. A plan held in a change request has its id fixed when the request is
    #: made, so applying it creates the plan that was reviewed.
    id: str | None = None


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", [Problem(path, message)])


def parse_duration(value: float | str | None, path: str) -> float | None:
    """Seconds, from a number of seconds or ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``; None for manual."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "manual"):
        return None
    if isinstance(value, bool):
        raise _bad(path, 'must be seconds, a duration such as "10m", or "manual"')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(value)
        if found is None:
            raise _bad(path, f'must be seconds, a duration such as "10m" or "2h", or "manual"; got {value!r}')
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if not math.isfinite(seconds) or seconds < 0 or seconds > 366 * 86400:
        raise _bad(path, "must be between 0 and a year")
    return seconds


def metric_problem(name: str) -> str | None:
    if not name or len(name) > METRIC_MAX or not _METRIC.fullmatch(name):
        return f"must be a metric name (letters, digits, -, _, ., at most {METRIC_MAX}), got {name!r:.120}"
    return None


def read_guardrail(body: GuardrailBody, path: str) -> Guardrail:
    if (body.metric is None) == (body.promql is None):
        raise _bad(path, 'give exactly one of "metric" (a tracked metric) or "promql" (a Prometheus query)')
    if body.bad not in ("increase", "decrease"):
        raise _bad(f"{path}.bad", f'must be "increase" or "decrease", got {body.bad!r}')
    if body.promql is not None:
        query = body.promql.strip()
        if not query or len(query) > MAX_PROMQL:
            raise _bad(f"{path}.promql", f"must be a PromQL query of 1 to {MAX_PROMQL} characters")
        if body.threshold is None or not math.isfinite(body.threshold):
            raise _bad(f"{path}.threshold", "a Prometheus guardrail needs the value its query may not go past")
        for name in ("max_change", "max_change_pct"):
            if getattr(body, name) is not None:
                raise _bad(f"{path}.{name}", "goes with a tracked metric; a PromQL guardrail has a threshold")
        return Guardrail(promql=query, bad=body.bad, threshold=float(body.threshold))  # type: ignore[arg-type]
    problem = metric_problem(body.metric or "")
    if problem is not None:
        raise _bad(f"{path}.metric", problem)
    if body.kind not in ("count", "proportion", "mean"):
        raise _bad(f"{path}.kind", f'must be "count", "proportion" or "mean", got {body.kind!r}')
    if body.threshold is not None:
        raise _bad(f"{path}.threshold", "goes with a PromQL guardrail; a tracked metric has max_change")
    if (body.max_change is None) == (body.max_change_pct is None):
        raise _bad(path, 'give exactly one of "max_change" (in the metric\'s unit) or "max_change_pct"')
    change = body.max_change if body.max_change is not None else body.max_change_pct
    field = "max_change" if body.max_change is not None else "max_change_pct"
    if change is None or not math.isfinite(change) or change < 0:
        raise _bad(f"{path}.{field}", "must be a number, 0 or more")
    relative = body.max_change_pct is not None
    return Guardrail(
        metric=body.metric or "", kind=body.kind, bad=body.bad,  # type: ignore[arg-type]
        max_change=change / 100.0 if relative else change, relative=relative,
    )  # fmt: skip


def read_steps(steps: Sequence[StepBody]) -> tuple[PlanStep, ...]:
    if not steps:
        raise _bad("$.steps", "a plan needs at least one step")
    if len(steps) > MAX_STEPS:
        raise _bad("$.steps", f"at most {MAX_STEPS} steps")
    out: list[PlanStep] = []
    for i, step in enumerate(steps):
        path = f"$.steps[{i}]"
        if not math.isfinite(step.percent) or not 0 < step.percent <= 100:
            raise _bad(f"{path}.percent", f"must be more than 0 and at most 100, got {step.percent:g}")
        weight = round(step.percent * WEIGHT_TOTAL / 100)
        if weight < 1:
            raise _bad(f"{path}.percent", "is below the smallest share a rollout can serve (0.001%)")
        if out and weight <= out[-1].weight:
            raise _bad(
                f"{path}.percent", f"must be more than the step before ({out[-1].weight * 100 / WEIGHT_TOTAL:g}%)"
            )
        out.append(PlanStep(weight=weight, hold=parse_duration(step.hold, f"{path}.hold")))
    return tuple(out)


def serve_of(flag: Flag, rule: str) -> Serve:
    if not rule:
        return flag.fallthrough
    for r in flag.rules:
        if r.id == rule:
            return r.serve
    raise KeyError(rule)


def read_plan(body: PlanBody, flag: Flag, active: Sequence[Plan], plan_id: str | None = None) -> Plan:
    """The plan ``body`` asks for on ``flag`` (its current state), given the active plans of the environment.
    Raises ``InvalidInput`` naming the field for every mistake, ``PlanConflict`` for a second active plan."""
    if flag.archived:
        raise _bad("$.flag", f"flag {flag.key!r} is archived: restore it before planning its release")
    # Before the rule's serve is read: a running plan's own step serves a rollout, and the answer is the plan.
    for plan in active:
        if plan.flag == flag.key and plan.status in ACTIVE:
            raise PlanConflict(f"flag {flag.key!r} already has an active release plan here ({plan.id}, {plan.status})")
    keys = [v.key for v in flag.variations]
    if body.variation not in keys:
        raise _bad("$.variation", f"flag {flag.key!r} has no variation {body.variation!r} (it has {', '.join(keys)})")
    rule = body.rule or ""
    try:
        before = serve_of(flag, rule)
    except KeyError:
        ids = ", ".join(r.id for r in flag.rules) or "none"
        raise _bad("$.rule", f"flag {flag.key!r} has no rule {rule!r} (its rules: {ids})") from None
    where = f"rule {rule!r}" if rule else "the default rule"
    if getattr(before, "default", False):
        raise _bad(
            "$.rule" if rule else "$.flag",
            f"{where} of flag {flag.key!r} serves the application's default value, not a variation: a plan starts "
            "from one variation",
        )
    if before.variation is None:
        raise _bad(
            "$.rule" if rule else "$.flag",
            f"{where} of flag {flag.key!r} already serves a percentage rollout: a plan starts from one variation "
            "(set it to the variation everyone gets now, then plan)",
        )
    if before.variation == body.variation:
        raise _bad("$.variation", f"{where} already serves {body.variation!r} to everyone")
    others = [r.id for r in flag.rules if r.id != rule and r.serve.rollout is not None] + (
        ["the default rule"] if rule and flag.fallthrough.rollout is not None else []
    )
    if others:
        raise _bad(
            "$.rule",
            f"flag {flag.key!r} has another percentage rollout ({', '.join(others)}): the guardian could not tell "
            "its users from the plan's",
        )
    if body.rollback not in ("restore", "off"):
        raise _bad("$.rollback", f'must be "restore" or "off", got {body.rollback!r}')
    if not math.isfinite(body.error_rate) or not 0.001 <= body.error_rate <= 0.2:
        raise _bad("$.error_rate", f"must be between 0.001 and 0.2, got {body.error_rate:g}")
    if not 10 <= body.min_users <= 10_000_000:
        raise _bad("$.min_users", f"must be between 10 and 10,000,000, got {body.min_users}")
    if len(body.guardrails) > MAX_GUARDRAILS:
        raise _bad("$.guardrails", f"at most {MAX_GUARDRAILS} guardrails")
    guardrails = tuple(read_guardrail(g, f"$.guardrails[{i}]") for i, g in enumerate(body.guardrails))
    return Plan(
        id=plan_id or new_plan_id(), flag=flag.key, rule=rule, variation=body.variation, control=before.variation,
        steps=read_steps(body.steps), guardrails=guardrails, rollback=body.rollback,  # type: ignore[arg-type]
        error_rate=body.error_rate, min_users=body.min_users, before=before, split="by_step",
    )  # fmt: skip


class PlanConflict(Exception):
    """A second active plan on the same flag and environment."""


def check_metrics(plan: Plan, known: set[str]) -> None:
    """Every tracked guardrail names a metric this environment has reported (else a typo would guard nothing)."""
    for i, g in enumerate(plan.guardrails):
        if g.metric and g.metric not in known:
            seen = ", ".join(sorted(known)[:20]) or "none yet"
            raise _bad(
                f"$.guardrails[{i}].metric",
                f"no application has tracked {g.metric!r} in this environment (tracked here: {seen})",
            )


# -- what a step writes -----------------------------------------------------------------------------------------


def rollout_serve(plan: Plan, weight: int) -> Serve:
    """The serve of a step: ``weight`` of the users get the plan's variation, the rest its control. The variation
    comes first, so a user in the first ``w`` buckets stays there as ``w`` grows (monotonic)."""
    if weight >= WEIGHT_TOTAL:
        return Serve(variation=plan.variation)
    split = (
        WeightedVariation(variation=plan.variation, weight=weight),
        WeightedVariation(variation=plan.control, weight=WEIGHT_TOTAL - weight),
    )
    return Serve(rollout=Rollout(variations=split))


def changes_for(flag: Flag, rule: str, serve: Serve) -> dict[str, Any]:
    """The top-level fields of ``flag`` to write so that ``rule`` (or the default rule) serves ``serve``."""
    if not rule:
        return {"fallthrough": serve}
    rules = []
    found = False
    for r in flag.rules:
        if r.id == rule:
            r = msgspec.structs.replace(r, serve=serve)
            found = True
        rules.append(r)
    if not found:
        raise KeyError(rule)
    return {"rules": tuple(rules)}


def step_changes(plan: Plan, flag: Flag, index: int) -> dict[str, Any]:
    return changes_for(flag, plan.rule, rollout_serve(plan, plan.steps[index].weight))


def serving_now(plan: Plan, flag: Flag) -> Serve | None:
    try:
        return serve_of(flag, plan.rule)
    except KeyError:
        return None


# -- time ------------------------------------------------------------------------------------------------------------


def held_for(plan: Plan, now: datetime) -> float:
    """Seconds the current step has been held, its pauses left out."""
    if plan.step_at is None:
        return 0.0
    end = plan.paused_at if plan.paused_at is not None else now
    return max(0.0, (end - plan.step_at).total_seconds() - plan.paused_for)


def next_due(plan: Plan, now: datetime) -> float | None:
    """Seconds until the next step is due (0: now), None if a person must advance it (or it is not running)."""
    if plan.status != "running":
        return None
    if plan.step < 0 or plan.advance:
        return 0.0
    hold = plan.steps[plan.step].hold
    if hold is None:
        return None
    return max(0.0, hold - held_for(plan, now))


def is_last(plan: Plan) -> bool:
    return plan.step >= len(plan.steps) - 1


def shares(plan: Plan) -> list[Shares]:
    """Per step, the error rate of each tracked guardrail and of the sample ratio test: the plan's ``error_rate``
    split as the plan says (``stats``: ``by_step``, or ``equal`` for plans made before it)."""
    weights = [s.weight / WEIGHT_TOTAL for s in plan.steps]
    if plan.split == "by_step":
        return split_by_step(plan.error_rate, weights, sum(1 for g in plan.guardrails if g.metric))
    return split_equal(plan.error_rate, weights, len(plan.guardrails))


def active_plans(states: Mapping[str, Plan]) -> list[Plan]:
    return [p for p in states.values() if p.status in ACTIVE]
