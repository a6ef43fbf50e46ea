"""Time travel, pure: as-of states in, a ruleset, evaluations, a state hash and environment diffs out.

The read model finds, for each entity, the event that set its state as of a stream sequence (indexed look-ups,
no replay); this module folds those whole-state events with the SDK's own ``apply_events`` and evaluates with
the SDK's own engine, so "what did this user get then" is answered by the same code that answered it then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from msgspec import Struct

from ...engine import evaluate
from ...evaluation import EvaluationDetail
from ...events import Event, canonical_json, entity_of, state_hash, subject
from ...ruleset import Ruleset, apply_events
from .diff import Change, diff

EntityId = tuple[str, str]  # (kind, key)


@dataclass(frozen=True, slots=True)
class Versioned:
    """An entity's state as of some instant, with the event that set it."""

    seq: int
    event: Event

    @property
    def state(self) -> Any:
        return entity_of(self.event)[2]


def states(events: Iterable[tuple[int, Event]]) -> dict[EntityId, Versioned]:
    """``(seq, event)`` pairs (one per entity, the last one as of the instant) -> ``{(kind, key): Versioned}``."""
    out: dict[EntityId, Versioned] = {}
    for seq, event in events:
        kind, key, _ = entity_of(event)
        out[(kind, key)] = Versioned(seq, event)
    return out


def ruleset_of(
    project: str, environment: str, seq: int, found: Mapping[EntityId, Versioned], at: datetime | None = None
) -> Ruleset:
    """The ruleset of the environment as of ``seq``: the as-of events folded in sequence order. ``at``: the
    instant asked about, the evaluation time of clauses that read it (default: now)."""
    pairs = sorted(((v.seq, v.event) for v in found.values()), key=lambda p: p[0])
    clock = None if at is None else _fixed(at.timestamp() * 1000.0)
    ruleset, _ = apply_events(Ruleset(project=project, environment=environment, clock=clock), pairs)
    # The fold stops at the last event it saw; the instant asked for may be later (nothing changed since).
    return Ruleset(
        project=ruleset.project,
        environment=ruleset.environment,
        seq=max(seq, ruleset.seq),
        flags=ruleset.flags,
        segments=ruleset.segments,
        env=ruleset.env,
        compiled=ruleset.compiled,
        compiled_segments=ruleset.compiled_segments,
        versions=ruleset.versions,
        clock=ruleset.clock,
    )


def _fixed(ms: float) -> Any:
    return lambda: ms


class Evaluation(Struct, kw_only=True):
    """One flag's answer for a context, with the version of the flag it came from."""

    flag: str
    value: Any
    variation: str | None
    reason: Any
    #: Stream sequence of the environment's state used (what an SDK at that point reports as ``seq``).
    seq: int
    #: Stream sequence of the flag's own last event (its version) at that point; 0 if it did not exist.
    version: int = 0


def evaluate_all(ruleset: Ruleset, context: Any, keys: Sequence[str] | None = None) -> list[Evaluation]:
    """Evaluate ``keys`` (default: every active flag) for ``context``, default value ``None``."""
    if keys is None:
        keys = sorted(k for k, f in ruleset.flags.items() if not f.archived)
    out = []
    for key in keys:
        detail: EvaluationDetail = evaluate(ruleset.compiled, key, context, None, ruleset.seq)
        out.append(
            Evaluation(
                flag=key,
                value=detail.value,
                variation=detail.variation,
                reason=detail.reason,
                seq=detail.seq,
                version=ruleset.versions.get(f"flag/{key}", 0),
            )
        )
    return out


def hash_of(project: str, environment: str, found: Mapping[EntityId, Versioned]) -> str:
    """State hash of the flags and segments, equal to ``ReadModel.state_hash`` of a read model at that point."""
    return state_hash(
        (subject(project, environment, kind, key), canonical_json(v.state))
        for (kind, key), v in found.items()
        if kind in ("flag", "segment") and not getattr(v.state, "deleted", False)
    )


class EntityDiff(Struct, kw_only=True):
    """How one entity differs between two instants. ``change``: created, changed, archived, restored."""

    kind: str
    key: str
    change: str
    from_version: int = 0
    to_version: int = 0
    changes: list[Change] = []


def environment_diff(before: Mapping[EntityId, Versioned], after: Mapping[EntityId, Versioned]) -> list[EntityDiff]:
    """Every entity whose state differs between two instants (``before`` earlier), by kind then key."""
    out: list[EntityDiff] = []
    for ident in sorted(set(before) | set(after)):
        old, new = before.get(ident), after.get(ident)
        if old is not None and new is not None and old.seq == new.seq:
            continue
        old_state = old.state if old is not None else None
        new_state = new.state if new is not None else None
        changes = diff(old_state, new_state)
        if not changes:
            continue
        was = bool(getattr(old_state, "archived", False)) if old is not None else None
        now = bool(getattr(new_state, "archived", False)) if new is not None else None
        if old is None:
            label = "created"
        elif new is None:
            label = "removed"  # only when ``after`` is the earlier instant
        elif now and not was:
            label = "archived"
        elif was and not now:
            label = "restored"
        else:
            label = "changed"
        out.append(
            EntityDiff(
                kind=ident[0],
                key=ident[1],
                change=label,
                from_version=old.seq if old else 0,
                to_version=new.seq if new else 0,
                changes=changes,
            )
        )
    return out


def revert_steps(current: Any | None, target: Any | None) -> list[str]:
    """The writes that take an entity from ``current`` to ``target`` (its state at an earlier instant), in
    order: ``restore``, ``replace`` (the whole earlier state), ``archive``. An entity that did not exist then
    (``target`` None) is archived: history is never rewritten, so it cannot be deleted."""
    if current is None:
        return []  # nothing to go back from (an entity never disappears from the log)
    if target is None:
        return [] if current.archived else ["archive"]
    steps: list[str] = []
    content_differs = _unarchived(current) != _unarchived(target)
    if current.archived and (content_differs or not target.archived):
        steps.append("restore")
    if content_differs:
        steps.append("replace")
    if target.archived and (not current.archived or steps):
        steps.append("archive")
    return steps


def _unarchived(state: Any) -> Any:
    return msgspec.structs.replace(state, archived=False)
