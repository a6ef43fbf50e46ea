"""History beyond the current state: time travel (state, evaluation and diff as of an instant), field-level diffs
between two versions, reverts, and scheduled changes (the runner that applies each exactly once).
"""

from .diff import Change, diff, lines
from .schedules import POLL, ScheduleRunner, describe, project_states, running, schedule_subject, schedules_filter
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
    "POLL",
    "Change",
    "EntityDiff",
    "Evaluation",
    "ScheduleRunner",
    "Versioned",
    "describe",
    "diff",
    "environment_diff",
    "evaluate_all",
    "hash_of",
    "lines",
    "project_states",
    "revert_steps",
    "ruleset_of",
    "running",
    "schedule_subject",
    "schedules_filter",
    "states",
]
