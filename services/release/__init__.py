"""Release plans: progressive rollouts of a flag's variation in steps, each step written exactly once by the admin
replica holding the plan (``runner``), watched by the guardian, which rolls back by itself when a guardrail is
breached (``stats``: always-valid confidence sequences and a sequential sample ratio test; ``prometheus``: PromQL
guardrails). ``plans`` is the pure part (requests read into plans, what a step writes), ``window`` and ``feed`` the
metrics the SDKs report (``client.track``), ``results`` the experiment results of any flag with a percentage rollout,
``views`` what the API shows of a plan's step.
"""

from .feed import MetricNames, WindowFollower, read_window
from .plans import (
    GuardrailBody,
    PlanBody,
    PlanConflict,
    StepBody,
    check_metrics,
    held_for,
    metric_problem,
    new_plan_id,
    next_due,
    plan_subject,
    plans_filter,
    read_plan,
    shares,
)
from .prometheus import Prometheus, QueryRejected, Unreachable
from .results import ExperimentResults, MetricResult, VariationResult, experiment_results
from .runner import GUARDIAN, LEASE, POLL, PlanRunner, finish, plan_event, read_watch, request_stop, running, stop
from .stats import Shares, confidence_sequence, judge, split_by_step, split_equal, srm_log_bayes_factor, srm_mismatch
from .views import ArmView, GuardrailView, Point, Watch
from .window import FlagWindow

__all__ = [
    "GUARDIAN",
    "LEASE",
    "POLL",
    "ArmView",
    "ExperimentResults",
    "FlagWindow",
    "GuardrailBody",
    "GuardrailView",
    "MetricNames",
    "MetricResult",
    "PlanBody",
    "PlanConflict",
    "PlanRunner",
    "Point",
    "Prometheus",
    "QueryRejected",
    "Shares",
    "StepBody",
    "Unreachable",
    "VariationResult",
    "Watch",
    "WindowFollower",
    "check_metrics",
    "confidence_sequence",
    "experiment_results",
    "finish",
    "held_for",
    "judge",
    "metric_problem",
    "new_plan_id",
    "next_due",
    "plan_event",
    "plan_subject",
    "plans_filter",
    "read_plan",
    "read_watch",
    "read_window",
    "request_stop",
    "running",
    "shares",
    "split_by_step",
    "split_equal",
    "srm_log_bayes_factor",
    "srm_mismatch",
    "stop",
]
