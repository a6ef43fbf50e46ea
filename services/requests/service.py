"""Change requests over the event stream: each step of a request is an event on its own subject
(``flagstream.<project>.<env>.request.<id>``, whole state in every event), appended with optimistic concurrency
like any write; applying appends the request's writes and its ``request.applied`` event as ONE atomic batch.

The writes themselves are the admin API's (``Call``: method, path, body). Running them is the caller's business
(``Executor``: the admin runs them through its own routes, in a ``staging()`` block), so a request holds the same
commands the API takes and applying re-decides them against the state as it is then.

Exactly once, all or nothing, with any number of admin replicas: the batch carries the version each entity had
when the request was made (``Nats-Expected-Last-Subject-Sequence``) and the request's own version. JetStream
stores the whole batch or none of it; of two replicas applying at once, one batch is stored and the other is
refused because the request moved; a replica killed in the middle of its batch never committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec

from ...events import (
    Author,
    Environment,
    EnvironmentCreated,
    FlagCreated,
    FlagEvent,
    SegmentCreated,
    encode_event,
    subject,
)
from ...events.catalog import (
    Call,
    ChangeRequest,
    Remark,
    RequestApplied,
    RequestApproved,
    RequestCancelled,
    RequestCommented,
    RequestEdited,
    RequestEvent,
    RequestFailed,
    RequestOpened,
    RequestRejected,
)
from ...events.subjects import PREFIX
from ...validation import Problem
from ..changes import (
    MAX_BATCH,
    MAX_TEXT,
    AdminError,
    Append,
    Conflict,
    EventStore,
    InvalidInput,
    NotFound,
    NotPermitted,
    Stage,
    Stored,
    TooLarge,
    Unavailable,
    WrongLastSequence,
)
from ..runtime import in_background, run_passes
from ..tokens import ANY, Grant, Role
from . import rules
from .rules import ApprovalRequired, Person

log = logging.getLogger("flagstream.requests")

#: Runs a request's writes in a ``staging()`` block, as ``identity`` (who the events name) with ``rights`` (whose
#: grants authorize each write), and returns the stage. Raises the write's ``AdminError`` if one is refused.
Executor = Callable[[Sequence[Call], Person], Awaitable[Stage]]

#: Who applies a request scheduled to apply at a time.
SCHEDULER = Author(kind="token", id="scheduler", name="scheduled apply")

_KILL_SWITCH: ContextVar[bool] = ContextVar("flagstream_kill_switch", default=False)
_PLAN: ContextVar[tuple[str, str, str] | None] = ContextVar("flagstream_release_plan", default=None)


@contextlib.contextmanager
def kill_switch() -> Iterator[None]:
    """A block that is the kill switch route (turning a flag off): in an environment that allows it, the flag is
    turned off at once, without approval, marked as an emergency (a reason is required)."""
    token = _KILL_SWITCH.set(True)
    try:
        yield
    finally:
        _KILL_SWITCH.reset(token)


@contextlib.contextmanager
def release_plan(project: str, environment: str, flag: str) -> Iterator[None]:
    """A block writing the steps of a release plan to its flag (or writing it back when the plan stops): in an
    environment that asks for approvals, the plan itself was the approved change (creating one there is held as a
    request), so these writes of that flag pass the guard. Only code of the release runner enters this block."""
    token = _PLAN.set((project, environment, flag))
    try:
        yield
    finally:
        _PLAN.reset(token)


def request_subject(project: str, environment: str, rid: str) -> str:
    return subject(project, environment, "request", rid)


def requests_filter(project: str = "*", environment: str = "*", rid: str = "*") -> str:
    return f"{PREFIX}.{project}.{environment}.request.{rid}"


def new_id() -> str:
    return f"r{secrets.token_hex(5)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _text(value: str, path: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidInput(f"{path} is longer than {limit} characters", [Problem(path, f"at most {limit} characters")])
    return value


class RequestService:
    def __init__(self, store: EventStore, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.clock = clock

    # -- reads -------------------------------------------------------------------------------------------------

    async def environments(self, project: str, keys: Sequence[str]) -> dict[str, Environment | None]:
        found = await asyncio.gather(*(self.store.last(subject(project, k, "environment", k)) for k in keys))
        return {k: (s.event.env if s is not None else None) for k, s in zip(keys, found, strict=True)}  # type: ignore[attr-defined]

    async def find(self, project: str, rid: str) -> Stored:
        found = await self.store.latest(requests_filter(project, "*", rid))
        for stored in found.values():
            if isinstance(stored.event, RequestEvent):
                return stored
        raise NotFound(f"change request {rid!r} not found in project {project!r}")

    async def list(self, project: str) -> list[Stored]:
        found = await self.store.latest(requests_filter(project))
        items = [s for s in found.values() if isinstance(s.event, RequestEvent)]
        return sorted(items, key=lambda s: s.seq, reverse=True)

    # -- the guard: every append is checked -----------------------------------------------------------------------

    async def guard(self, items: Sequence[Append]) -> Sequence[Append]:
        """``EventStore.guard``: refuse a write to an environment whose changes need approvals unless it is the
        application of a change request, or the kill switch that environment allows (then marked emergency)."""
        if any(isinstance(item.event, RequestApplied) for item in items):
            return items
        changing = [item for item in items if rules.changes_environment(item.event)]
        if not changing:
            return items
        places = sorted({(item.event.project, item.event.environment) for item in changing})
        stored = await asyncio.gather(*(self.store.last(subject(p, e, "environment", e)) for p, e in places))
        envs = {place: s for place, s in zip(places, stored, strict=True) if s is not None}
        blocked: dict[str, Environment] = {}
        for item in changing:
            found = envs.get((item.event.project, item.event.environment))
            if found is None or not found.event.env.gated:  # type: ignore[attr-defined]
                continue
            creation = found.event
            if (
                isinstance(creation, EnvironmentCreated)
                and isinstance(item.event, FlagCreated | SegmentCreated)
                and creation.change
                and item.event.change == creation.change
            ):
                continue  # the environment's own creation, in more than one batch
            blocked[item.event.environment] = creation.env  # type: ignore[attr-defined]
        if not blocked:
            return items
        plan = _PLAN.get()
        if plan is not None and all(
            isinstance(item.event, FlagEvent)
            and (item.event.project, item.event.environment, item.event.flag.key) == plan
            for item in changing
        ):
            return items
        if _KILL_SWITCH.get() and len(items) == 1 and len(blocked) == 1:
            ((key, env),) = blocked.items()
            event = items[0].event
            if rules.kill_switch(event, env):
                if not event.comment.strip():
                    raise InvalidInput(
                        f"turning a flag off at once in {key} without approval needs a reason: say why in the comment",
                        [Problem("$.comment", "required for an emergency change")],
                    )
                log.warning(
                    "emergency: flag %s turned off in %s without approval by %s", event.flag.key, key, event.actor
                )  # type: ignore[attr-defined]
                return [dataclasses.replace(items[0], event=msgspec.structs.replace(event, emergency=True))]
        project = items[0].event.project
        raise ApprovalRequired(project, sorted(blocked), {k: e.approvals for k, e in blocked.items()})

    # -- the life of a request --------------------------------------------------------------------------------------

    async def open(
        self,
        project: str,
        who: Person,
        execute: Executor,
        *,
        calls: Sequence[Call],
        title: str,
        description: str = "",
        apply_at: datetime | None = None,
        rid: str | None = None,
    ) -> Stored:
        """A new change request of ``calls`` (run now, staged, to know what they change and from which versions).
        ``rid``: its id (a retried creation with the same id finds the first)."""
        request = ChangeRequest(
            id=rid or new_id(),
            title=_text(title.strip(), "$.title", rules.MAX_TITLE),
            description=_text(description, "$.description", rules.MAX_DESCRIPTION),
            author=who.author,
            calls=tuple(calls),
            apply_at=apply_at,
        )
        request = await self._run(project, request, who, execute)
        if not request.title:
            request = msgspec.structs.replace(request, title=rules.summary(request.effects))
        home = request.environments[0] if request.environments else request.effects[0].environment
        subj = request_subject(project, home, request.id)
        event = self._event(RequestOpened, project, home, request, who.author, 1, "")
        try:
            appended = await self.store.append(subj, event, expected_seq=0, msg_id=None)
        except WrongLastSequence:
            if rid is not None:
                existing = await self.find(project, rid)
                if rules.same(existing.event.change_request.author, who.author):  # type: ignore[attr-defined]
                    return existing
            raise Conflict(f"change request {request.id!r} already exists") from None
        return Stored(appended.seq, event)

    async def edit(
        self,
        project: str,
        rid: str,
        who: Person,
        execute: Executor,
        *,
        calls: Sequence[Call] | None = None,
        rerun: bool = False,
        **fields: Any,
    ) -> Stored:
        """The request edited by its author: new writes (``calls``), the same ones run again against the current
        state (``rerun``: a rebase), or other ``fields`` (title, description, apply_at). Drops every approval."""
        stored = await self.find(project, rid)
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        if "title" in fields:
            fields["title"] = _text(fields["title"].strip() or request.title, "$.title", rules.MAX_TITLE)
        if "description" in fields:
            fields["description"] = _text(fields["description"], "$.description", rules.MAX_DESCRIPTION)
        if rerun and calls is None:  # a rebase: the author takes the current versions as the new bases
            calls = [msgspec.structs.replace(call, if_match=None) for call in request.calls]
        edited = rules.edit(request, who, **fields, **({"calls": tuple(calls)} if calls is not None else {}))
        if calls is not None:
            edited = await self._run(project, edited, who, execute)
        comment = "rebased onto the current state" if rerun else ""
        return await self._next(project, stored, RequestEdited, edited, who.author, comment)

    async def comment(self, project: str, rid: str, who: Person, text: str) -> Stored:
        text = _text(text.strip(), "$.text", rules.MAX_COMMENT)
        if not text:
            raise InvalidInput("a comment needs some text", [Problem("$.text", "empty")])
        stored = await self.find(project, rid)
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        if len(request.comments) >= rules.MAX_COMMENTS:
            raise Conflict(f"change request {rid} has {rules.MAX_COMMENTS} comments, the most it can hold")
        remark = Remark(by=who.author, at=self.clock(), text=text)
        changed = msgspec.structs.replace(request, comments=(*request.comments, remark))
        return await self._next(project, stored, RequestCommented, changed, who.author, text)

    async def approve(self, project: str, rid: str, who: Person, comment: str = "") -> Stored:
        stored = await self.find(project, rid)
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        envs = await self.environments(project, request.environments)
        approved = rules.approve(request, envs, project, who, self.clock(), _text(comment, "$.comment", 4000))
        return await self._next(project, stored, RequestApproved, approved, who.author, comment)

    async def reject(self, project: str, rid: str, who: Person, comment: str = "") -> Stored:
        stored = await self.find(project, rid)
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        envs = await self.environments(project, request.environments)
        rejected = rules.reject(request, envs, project, who, self.clock(), _text(comment, "$.comment", 4000))
        return await self._next(project, stored, RequestRejected, rejected, who.author, comment)

    async def cancel(self, project: str, rid: str, who: Person, comment: str = "") -> Stored:
        stored = await self.find(project, rid)
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        cancelled = rules.cancel(request, who, project)
        return await self._next(project, stored, RequestCancelled, cancelled, who.author, comment)

    async def fail(self, project: str, stored: Stored, reason: str) -> Stored | None:
        """Close a request that could not be applied at its time (None: it moved meanwhile, left as it is)."""
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        failed = msgspec.structs.replace(request, status="failed", error=reason, closed_by=SCHEDULER)
        try:
            return await self._next(project, stored, RequestFailed, failed, SCHEDULER, reason)
        except Conflict:
            return None

    async def apply(
        self,
        project: str,
        rid: str,
        who: Person,
        execute: Executor,
        *,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Stored, list[int]]:
        """Apply an approved request: its writes re-decided against the current state, which must still be the
        state it was made (and reviewed) against, appended with its ``request.applied`` event as one atomic
        batch. The stored ``request.applied`` and the sequences of the events applied."""
        stored = await self.find(project, rid)
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        rules.check_open(request)
        envs = await self.environments(project, request.environments)
        lacking = rules.missing(request, envs)
        if lacking:
            what = "; ".join(f"{n} more in {env}" for env, n in sorted(lacking.items()))
            raise Conflict(f"change request {rid} is not approved: it needs {what}")
        touched = sorted({e.environment for e in request.effects})
        denied = [
            env for env in touched if not ((r := who.role_on(project, env)) is not None and r.allows(Role.WRITER))
        ]
        if denied:
            raise NotPermitted(f"applying change request {rid} needs the right to write {', '.join(denied)}")
        # The writes run as the author (whom the events name), with the rights of the one who applies.
        try:
            stage = await execute(request.calls, Person(request.author, who.grants, who.groups))
        except (Unavailable, ApprovalRequired):
            raise
        except AdminError as exc:
            await self._closed_meanwhile(project, stored)
            raise Conflict(f"change request {rid} no longer applies: {exc.message}; its author can rebase it") from None
        now = rules.effects_of(stage.bases, stage.last)
        current = {(e.kind, e.environment, e.key): e.base for e in now}
        for effect in request.effects:
            ident = (effect.kind, effect.environment, effect.key)
            if ident not in current:
                found = await self.store.last(subject(project, effect.environment, effect.kind, effect.key))
                current[ident] = found.seq if found is not None else 0
        problems = rules.drift(request.effects, now, current)
        if problems:
            await self._closed_meanwhile(project, stored)
            raise Conflict(
                f"change request {rid} cannot be applied as it was reviewed: {'; '.join(problems)}. Its author "
                "rebases it onto the current state, and it is approved again"
            )
        change = rid if len(stage.writes) > 1 else ""
        batch = [
            Append(
                subj,
                msgspec.structs.replace(
                    event,
                    request=rid,
                    change=change,
                    comment=event.comment or request.title,  # type: ignore[attr-defined]
                ),
                stage.bases[subj],
            )
            for subj, event in stage.writes
        ]
        applied = msgspec.structs.replace(request, status="applied", closed_by=who.author)
        home = stored.event.environment  # type: ignore[attr-defined]
        event = self._event(RequestApplied, project, home, applied, who.author, stored.event.version + 1, "")  # type: ignore[attr-defined]
        batch.append(Append(request_subject(project, home, rid), event, stored.seq))
        if len(batch) > MAX_BATCH:
            raise Conflict(f"change request {rid} writes {len(batch) - 1} events, more than one batch takes")
        try:
            seqs = await self.store.append_all(batch, before_commit=before_commit)
        except WrongLastSequence:
            await self._closed_meanwhile(project, stored)
            raise Conflict(
                f"change request {rid} or what it changes moved while it was being applied; nothing was applied: "
                "try again"
            ) from None
        return Stored(seqs[-1], event), seqs[:-1]

    # -- helpers ------------------------------------------------------------------------------------------------

    async def _closed_meanwhile(self, project: str, stored: Stored) -> None:
        """Conflict saying so if the request was applied (or closed) by someone else while this one tried."""
        latest = await self.find(project, stored.event.change_request.id)  # type: ignore[attr-defined]
        state: ChangeRequest = latest.event.change_request  # type: ignore[attr-defined]
        if latest.seq != stored.seq and state.status != "open":
            by = state.closed_by.name if state.closed_by else "someone"
            raise Conflict(f"change request {state.id} was already {state.status} (by {by})", version=latest.seq)

    async def _run(self, project: str, request: ChangeRequest, who: Person, execute: Executor) -> ChangeRequest:
        """The request with the effects of its calls run now (staged), and the environments that need approvals."""
        if not request.calls:
            raise InvalidInput("a change request needs at least one change", [Problem("$.changes", "empty")])
        if len(request.calls) > rules.MAX_CALLS:
            raise InvalidInput(
                f"a change request holds at most {rules.MAX_CALLS} changes", [Problem("$.changes", "too many")]
            )
        stage = await execute(request.calls, who)
        effects = rules.effects_of(stage.bases, stage.last)
        if not effects:
            raise InvalidInput(
                "the change request changes nothing: each change is already so", [Problem("$.changes", "no effect")]
            )
        if len(stage.writes) >= MAX_BATCH:
            raise InvalidInput(
                f"a change request applies at most {MAX_BATCH - 1} events at once (this one: {len(stage.writes)})",
                [Problem("$.changes", "too many events")],
            )
        touched = sorted({e.environment for e in effects})
        envs = await self.environments(project, touched)
        gated = tuple(k for k in touched if (env := envs[k]) is not None and env.gated)
        result = msgspec.structs.replace(request, effects=effects, environments=gated)
        size = len(encode_event(self._event(RequestEdited, project, touched[0], result, who.author, 1, "")))
        if size > rules.MAX_REQUEST_BYTES:
            raise TooLarge(
                f"the change request would take {size:,} bytes, more than {rules.MAX_REQUEST_BYTES:,}: split it"
            )
        return result

    def _event(
        self,
        cls: type[RequestEvent],
        project: str,
        environment: str,
        request: ChangeRequest,
        by: Author,
        version: int,
        comment: str,
    ) -> RequestEvent:
        return cls(
            project=project,
            environment=environment,
            actor=by.name,
            at=self.clock(),
            comment=comment[: MAX_TEXT["comment"]],
            version=version,
            author=by,
            change_request=request,
        )

    async def _next(
        self, project: str, stored: Stored, cls: type[RequestEvent], request: ChangeRequest, by: Author, comment: str
    ) -> Stored:
        home = stored.event.environment  # type: ignore[attr-defined]
        event = self._event(cls, project, home, request, by, stored.event.version + 1, comment)  # type: ignore[attr-defined]
        try:
            appended = await self.store.append(
                request_subject(project, home, request.id), event, expected_seq=stored.seq, msg_id=None
            )
        except WrongLastSequence:
            raise Conflict(
                f"change request {request.id} changed meanwhile (approved, edited or applied): read it again",
                version=stored.seq,
            ) from None
        return Stored(appended.seq, event)


def everywhere(role: Role = Role.ADMIN) -> tuple[Grant, ...]:
    return (Grant(role=role, project=ANY, environment=ANY),)


# -- scheduled apply -------------------------------------------------------------------------------------------


class RequestRunner:
    """Applies open requests whose time has come (``apply_at``), if approved by then; else closes them as failed
    with the reason. Any number of admin replicas run one: the request's version decides who stores it."""

    def __init__(self, service: RequestService, execute: Executor, *, poll: float = 1.0) -> None:
        self.service = service
        self.execute = execute
        self.poll = poll
        self.wake = asyncio.Event()
        self.applied: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        await run_passes("requests", self.pass_once, stop=stop, wake=self.wake, poll=self.poll, log=log)

    async def pass_once(self) -> float:
        found = await self.service.store.latest(requests_filter())
        now = datetime.now(UTC)
        upcoming = []
        for stored in sorted(found.values(), key=lambda s: s.seq):
            event = stored.event
            if not isinstance(event, RequestEvent):
                continue
            request = event.change_request
            if request.status != "open" or request.apply_at is None:
                continue
            if request.apply_at > now:
                upcoming.append(request.apply_at)
                continue
            await self._due(event.project, stored)
        if not upcoming:
            return self.poll
        return min(self.poll, (min(upcoming) - datetime.now(UTC)).total_seconds())

    async def _due(self, project: str, stored: Stored) -> None:
        request: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        system = Person(SCHEDULER, everywhere())
        try:
            await self.service.apply(project, request.id, system, self.execute)
        except Unavailable:
            raise
        except AdminError as exc:
            latest = await self.service.find(project, request.id)
            if latest.seq == stored.seq:
                log.info("requests: %s not applied at its time: %s", request.id, exc.message)
                await self.service.fail(project, latest, f"not applied at its time: {exc.message}")
            return
        self.applied.append(request.id)
        log.info("requests: %s applied at its time", request.id)


@contextlib.asynccontextmanager
async def running(service: RequestService, execute: Executor, **options: Any) -> AsyncIterator[RequestRunner]:
    runner = RequestRunner(service, execute, **options)
    async with in_background(runner, "requests"):
        yield runner
