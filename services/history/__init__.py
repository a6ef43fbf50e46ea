"""History beyond the current state: where it is read from (a read model of the process's own, or one shared),
the questions asked of it (audit log, instants, states as of), time travel (state, evaluation and diff as of an
instant), field-level diffs between two versions, reverts, and scheduled changes (the runner that applies each
exactly once).
"""

from .diff import Change, diff, lines
from .queries import AuditEntry, Instant, audit, entity_at, resolve, states_at
from .schedules import POLL, ScheduleRunner, describe, project_states, running, schedule_subject, schedules_filter
from .source import OPTION, HistorySource, durable_name
from .timetravel import (
    EntityDiff,
    Evaluation,
    Versioned,
    environment_diff,
    evaluate_all,
    hash_of,
    revert_steps,
    ruleset_of,
    states,
)

__all__ = [
    "OPTION",
    "POLL",
    "AuditEntry",
    "Change",
    "EntityDiff",
    "Evaluation",
    "HistorySource",
    "Instant",
    "ScheduleRunner",
    "Versioned",
    "audit",
    "describe",
    "diff",
    "durable_name",
    "entity_at",
    "environment_diff",
    "evaluate_all",
    "hash_of",
    "lines",
    "project_states",
    "resolve",
    "revert_steps",
    "ruleset_of",
    "running",
    "schedule_subject",
    "schedules_filter",
    "states",
    "states_at",
]
