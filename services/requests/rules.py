"""The rules of change requests, pure: who may approve, when a request is approved, what an edit does, what a
request changes (its effects, read from a staged run of its writes) and which writes need approvals at all.

No I/O: ``service.RequestService`` reads the current states, asks these, and appends what they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ...events import (
    Author,
    Environment,
    EnvironmentUpdated,
    Event,
    FlagEvent,
    FlagToggled,
    SegmentEvent,
    parse_subject,
    tag_of,
)
from ...events.catalog import (
    ChangeRequest,
    Effect,
    PlanAdvanceRequested,
    PlanCreated,
    Review,
    ScheduleCreated,
    entity_of,
)
from ..changes import AdminError, Conflict, NotPermitted
from ..tokens import Grant, Role, role_on

#: A request holds at most this many writes, and its event at most this many bytes (a NATS message is 1 MiB).
MAX_CALLS = 200
MAX_REQUEST_BYTES = 768 * 1024
#: The most comments on one request.
MAX_COMMENTS = 500
#: Title and description lengths.
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_COMMENT = 4_000
#: Who may approve when an environment names no one: anyone who may write it.
DEFAULT_APPROVERS = ("writer",)


class ApprovalRequired(NotPermitted):
    """A write to an environment whose changes need approvals, made outside a change request (the admin API
    turns it into one and answers 202; elsewhere, e.g. a schedule made before the environment asked for
    approvals, it is refused with this message)."""

    def __init__(self, project: str, environments: Sequence[str], approvals: Mapping[str, int]) -> None:
        names = ", ".join(
            f"{env} ({approvals[env]} approval{'s' if approvals[env] != 1 else ''})" for env in environments
        )
        super().__init__(f"changes to {names} need approvals: make them through a change request")
        self.project = project
        self.environments = tuple(environments)


@dataclass(frozen=True)
class Person:
    """Who acts on a request: their identity (as events record it), their grants and their groups (people
    signed in with single sign-on have groups; tokens have none)."""

    author: Author
    grants: tuple[Grant, ...]
    groups: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.author.name

    def role_on(self, project: str, environment: str) -> Role | None:
        return role_on(self.grants, project, environment)


def same(a: Author, b: Author) -> bool:
    """Whether two authors are the same person or token (by stable id, not by name)."""
    return a.kind == b.kind and a.id == b.id


def may_approve(env: Environment, project: str, who: Person) -> bool:
    """Whether ``who`` is one of the environment's approvers: holds a role it names (or higher) there, or is in a
    group it names."""
    role = who.role_on(project, env.key)
    for entry in env.approvers or DEFAULT_APPROVERS:
        if entry.startswith("group:"):
            if entry.removeprefix("group:") in who.groups:
                return True
        elif role is not None and entry in Role.__members__.values() and role.allows(Role(entry)):
            return True
    return False


def missing(request: ChangeRequest, envs: Mapping[str, Environment | None]) -> dict[str, int]:
    """Per environment of the request that needs approvals (with its settings now), how many are still missing."""
    out = {}
    for key in request.environments:
        env = envs.get(key)
        needed = env.approvals if env is not None else 0
        given = sum(1 for review in request.approvals if key in review.environments)
        if given < needed:
            out[key] = needed - given
    return out


def check_open(request: ChangeRequest) -> None:
    if request.status != "open":
        raise Conflict(f"change request {request.id} is {request.status}: nothing more can be done to it")


def approve(
    request: ChangeRequest,
    envs: Mapping[str, Environment | None],
    project: str,
    who: Person,
    at: datetime,
    comment: str,
) -> ChangeRequest:
    """The request with ``who``'s approval, counted for each of its environments where they may approve."""
    check_open(request)
    if same(who.author, request.author):
        raise NotPermitted(f"nobody approves their own change request ({request.id} is {who.name}'s)")
    where = tuple(
        key for key in request.environments if (env := envs.get(key)) is not None and may_approve(env, project, who)
    )
    if request.environments and not where:
        names = ", ".join(request.environments)
        raise NotPermitted(f"{who.name} is not an approver of {names} (see the environment's approvers)")
    if any(same(r.by, who.author) for r in request.approvals):
        raise Conflict(f"{who.name} already approved change request {request.id} (revision {request.revision})")
    review = Review(by=who.author, at=at, comment=comment, environments=where)
    return msgspec.structs.replace(request, approvals=(*request.approvals, review))


def reject(
    request: ChangeRequest,
    envs: Mapping[str, Environment | None],
    project: str,
    who: Person,
    at: datetime,
    comment: str,
) -> ChangeRequest:
    check_open(request)
    if same(who.author, request.author):
        raise NotPermitted("the author cancels their own change request rather than rejecting it")
    if request.environments and not any(
        (env := envs.get(key)) is not None and may_approve(env, project, who) for key in request.environments
    ):
        raise NotPermitted(f"{who.name} is not an approver of {', '.join(request.environments)}")
    return msgspec.structs.replace(
        request, status="rejected", rejection=Review(by=who.author, at=at, comment=comment), closed_by=who.author
    )


def edit(request: ChangeRequest, who: Person, **changes: Any) -> ChangeRequest:
    """The request edited by its author: any edit drops every approval (what was approved is not what is now)."""
    check_open(request)
    if not same(who.author, request.author):
        raise NotPermitted(f"only its author ({request.author.name}) edits change request {request.id}")
    return msgspec.structs.replace(request, **changes, approvals=(), revision=request.revision + 1)


def cancel(request: ChangeRequest, who: Person, project: str) -> ChangeRequest:
    check_open(request)
    admin = all(
        (role := who.role_on(project, env)) is not None and role.allows(Role.ADMIN) for env in request.environments
    )
    if not same(who.author, request.author) and not admin:
        raise NotPermitted(f"only its author ({request.author.name}) or an admin cancels change request {request.id}")
    return msgspec.structs.replace(request, status="cancelled", closed_by=who.author)


# -- what a request changes ------------------------------------------------------------------------------------


def effects_of(bases: Mapping[str, int], last: Mapping[str, Event]) -> tuple[Effect, ...]:
    """The effects of a staged run: each entity written, its version before, its state after (in the order
    first written)."""
    out = []
    for subj, base in bases.items():
        address = parse_subject(subj)
        event = last[subj]
        _, _, state = entity_of(event)
        out.append(
            Effect(
                kind=str(address.kind),
                key=address.key,
                environment=address.environment,
                base=base,
                state=msgspec.json.decode(msgspec.json.encode(state)),  # as JSON holds it (lists, not tuples)
                event=tag_of(event),
            )
        )
    return tuple(out)


def describe(effect: Effect) -> str:
    return f"{effect.kind} {effect.key} in {effect.environment}"


def summary(effects: Sequence[Effect]) -> str:
    """A title for a request that was given none: what it changes."""
    if not effects:
        return "Change request"
    first = f"Change {describe(effects[0])}"
    return first if len(effects) == 1 else f"{first} and {len(effects) - 1} more"


def drift(reviewed: Iterable[Effect], now: Iterable[Effect], current: Mapping[tuple[str, str, str], int]) -> list[str]:
    """Why the request cannot be applied as reviewed: the entities that moved since it was made (``current``:
    (kind, environment, key) -> version now), and what its writes would now do differently. Empty: apply it."""
    reviewed = list(reviewed)
    found = {(e.kind, e.environment, e.key): e for e in now}
    problems = []
    for effect in reviewed:
        ident = (effect.kind, effect.environment, effect.key)
        version = current.get(ident, 0)
        if version != effect.base:
            was = f"version {effect.base}" if effect.base else "did not exist"
            problems.append(f"{describe(effect)} changed since the request was made ({was}, now version {version})")
        elif ident not in found:
            problems.append(f"{describe(effect)} would no longer be changed")
        elif found[ident].state != effect.state:
            problems.append(f"{describe(effect)} would now end up differently than what was reviewed")
    known = {(e.kind, e.environment, e.key) for e in reviewed}
    for ident, effect in found.items():
        if ident not in known:
            problems.append(f"{describe(effect)} would now be changed too")
    return problems


# -- which writes need approvals -------------------------------------------------------------------------------


def changes_environment(event: Event) -> bool:
    """Whether an event changes what an environment serves or how it is governed: flags, segments, the
    environment's own settings, a scheduled change, a release plan (created, or asked to take its next step
    before its hold is over). Request events, a schedule's own steps and a plan's pause, resume or abort do not
    (the steps of a plan, and its write back, pass as the plan's: ``service.release_plan``)."""
    return isinstance(
        event, FlagEvent | SegmentEvent | EnvironmentUpdated | ScheduleCreated | PlanCreated | PlanAdvanceRequested
    )


def kill_switch(event: Event, env: Environment) -> bool:
    """Whether ``event`` is the kill switch the environment allows without approval: turning a flag off."""
    return env.emergency_off and isinstance(event, FlagToggled) and not event.flag.on


def refuse(error: AdminError, where: str) -> AdminError:
    """``error`` with its message prefixed by where it happened (the same class, so the same HTTP status)."""
    error.message = f"{where}: {error.message}"
    error.args = (error.message,)
    return error
