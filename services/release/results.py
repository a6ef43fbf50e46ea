"""Experiment results: for a flag with a percentage rollout, per variation, the users the rollout served and each
tracked metric's value, with its difference to the control and an always-valid 95% interval (``stats``: the same
confidence sequence the guardian uses, at 2.5% on each side). Pure: the window is read by the caller.

Every tracked metric is shown three ways: ``count`` (events per user), ``proportion`` (share of users with at least
one) and, when the application tracked values, ``mean`` (mean of each user's values).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from msgspec import Struct

from .stats import Arm, confidence_sequence
from .window import FlagWindow

KINDS = ("count", "proportion", "mean")


class VariationResult(Struct, kw_only=True):
    variation: str
    users: int
    value: float | None
    #: Difference to the control, and its interval (``None`` for the control itself, or too few users).
    difference: float | None = None
    lower: float | None = None
    upper: float | None = None


class MetricResult(Struct, kw_only=True):
    metric: str
    kind: str
    variations: list[VariationResult]
    #: Events tracked by contexts no rollout served (not counted) and by contexts only other flags served.
    unexposed: int = 0
    elsewhere: int = 0


class ExperimentResults(Struct, kw_only=True):
    flag: str
    environment: str
    since: datetime
    until: datetime
    control: str
    #: Users (contexts) the rollout served, per variation.
    users: dict[str, int]
    metrics: list[MetricResult]
    #: Confidence of the intervals.
    confidence: float = 0.95
    #: Metric batches read, and those that could not be decoded (skipped).
    batches: int = 0
    bad: int = 0


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def experiment_results(
    window: FlagWindow,
    *,
    environment: str,
    control: str,
    variations: list[str],
    since: datetime,
    until: datetime,
    metrics: list[str] | None = None,
    confidence: float = 0.95,
    bad: int = 0,
) -> ExperimentResults:
    """The results of ``window`` (one flag), against ``control``; ``variations``: the flag's, in its order."""
    alpha = (1.0 - confidence) / 2.0  # each side
    users = window.users()
    names = sorted(window.metrics) if metrics is None else metrics
    out: list[MetricResult] = []
    for name in names:
        for kind in KINDS:
            values = window.values(name, kind)
            if kind == "mean" and not values:
                continue
            empty = np.asarray([], dtype=float)
            base = Arm.of(values.get(control, empty))
            rows = []
            for variation in variations:
                arm = Arm.of(values.get(variation, empty))
                row = VariationResult(variation=variation, users=arm.n, value=arm.mean if arm.n else None)
                if variation != control and arm.n >= 2 and base.n >= 2:
                    interval = confidence_sequence(arm, base, alpha)
                    row.difference = interval.effect
                    row.lower, row.upper = _finite(interval.lower), _finite(interval.upper)
                rows.append(row)
            result = MetricResult(
                metric=name, kind=kind, variations=rows, unexposed=window.unexposed.get(name, 0),
                elsewhere=window.elsewhere.get(name, 0),
            )  # fmt: skip
            out.append(result)
    return ExperimentResults(
        flag=window.flag, environment=environment, since=since, until=until, control=control,
        users={v: users.get(v, 0) for v in variations}, metrics=out, confidence=confidence,
        batches=window.batches, bad=bad,
    )  # fmt: skip
