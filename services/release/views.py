"""What the guardian sees of a plan's current step, as the API and the UI show it (pure).

The replica holding a plan writes its ``Watch`` to the release bucket every few seconds, so any replica can answer
``GET .../plans/{id}``; ``series`` keeps the last points of each guardrail's interval for the timeline's chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from msgspec import Struct

from ...events.release import Guardrail, Plan
from .stats import T_STAR, Judgement, judge
from .window import FlagWindow

#: Points kept per guardrail in a watch's series.
SERIES_POINTS = 240


class ArmView(Struct, kw_only=True):
    variation: str
    users: int
    #: The metric's value on this side: events per user, share of users, or mean value.
    value: float


class GuardrailView(Struct, kw_only=True):
    name: str
    kind: str
    bad: str
    #: The change accepted (absolute, the metric's unit), in the bad direction.
    limit: float
    effect: float | None = None
    lower: float | None = None
    upper: float | None = None
    treatment: ArmView | None = None
    control: ArmView | None = None
    #: ``waiting`` (not enough users yet), ``ok`` (no harm shown), ``breached``; for PromQL also ``error``.
    state: str = "waiting"
    #: Tracked events not counted: contexts never exposed, and contexts only other flags' rollouts served.
    unexposed: int = 0
    elsewhere: int = 0
    #: PromQL: the query's last value and error.
    value: float | None = None
    error: str = ""


class Point(Struct, kw_only=True, array_like=True):
    at: datetime
    step: int
    effect: float
    lower: float | None
    upper: float | None


class Watch(Struct, kw_only=True):
    plan: str
    step: int
    at: datetime
    holder: str
    treatment_users: int = 0
    control_users: int = 0
    expected_share: float = 0.0
    #: Each tracked guardrail's share of the plan's error rate at this step, and the sample ratio test's.
    alpha: float = 0.0
    sample_ratio_alpha: float = 0.0
    guardrails: list[GuardrailView] = []
    #: name -> points of its interval over time (the last ``SERIES_POINTS``).
    series: dict[str, list[Point]] = {}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def judge_tracked(
    plan: Plan, g: Guardrail, window: FlagWindow, alpha: float, t_star: float = T_STAR
) -> tuple[Judgement, GuardrailView]:
    values = window.values(g.metric, g.kind)
    empty = np.asarray([], dtype=float)
    j = judge(
        values.get(plan.variation, empty), values.get(plan.control, empty), bad=g.bad, max_change=g.max_change,
        relative=g.relative, alpha=alpha, min_users=plan.min_users, t_star=t_star,
    )  # fmt: skip
    view = GuardrailView(
        name=g.metric, kind=g.kind, bad=g.bad, limit=j.limit, effect=j.interval.effect,
        lower=_finite(j.interval.lower), upper=_finite(j.interval.upper),
        treatment=ArmView(variation=plan.variation, users=j.treatment.n, value=j.treatment.mean),
        control=ArmView(variation=plan.control, users=j.control.n, value=j.control.mean),
        state="breached" if j.breached else ("ok" if j.judged else "waiting"),
        unexposed=window.unexposed.get(g.metric, 0), elsewhere=window.elsewhere.get(g.metric, 0),
    )  # fmt: skip
    return j, view


def extend_series(series: dict[str, list[Point]], views: Sequence[GuardrailView], at: datetime, step: int) -> None:
    for view in views:
        if view.effect is None:
            continue
        points = series.setdefault(view.name, [])
        points.append(Point(at=at, step=step, effect=view.effect, lower=view.lower, upper=view.upper))
        if len(points) > SERIES_POINTS:
            del points[: len(points) - SERIES_POINTS]
