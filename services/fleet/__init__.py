"""The fleet of SDK instances: what they report (heartbeats, applied changes, evaluation counts) aggregated into
connected instances, convergence of each change and evaluations per flag (``aggregator``, pure), fed from NATS
with last-evaluated times kept in a KV bucket shared by the admin replicas (``feed``).
"""

from .aggregator import (
    Change,
    ChangeConvergence,
    ContextKindAttributes,
    FlagEvaluations,
    FleetAggregator,
    InstanceView,
    percentile,
)
from .feed import Fleet, FleetCollector, NoAggregator
from .lead import Query

__all__ = [
    "Change",
    "ChangeConvergence",
    "ContextKindAttributes",
    "FlagEvaluations",
    "Fleet",
    "FleetAggregator",
    "FleetCollector",
    "InstanceView",
    "NoAggregator",
    "Query",
    "percentile",
]
