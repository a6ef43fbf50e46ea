"""Admin feature module: history (see registry.py for the contract).

Audit log with field-level diffs, state as of an instant (a time or a stream sequence), evaluation as of an
instant, the diff of an environment between two instants, and revert. Reads come from the projector's read
model (``app.state.read_model_path``; absent: 503); reverts write through ``AdminService`` like any write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats
from msgspec import Struct
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...evaluation import Reason
from ...events import DEFAULT_PROJECT, Author, Event, Seq, entity_of, tag_of
from ...events.catalog import ScheduleEvent
from ..changes import (
    FLAG,
    SEGMENT,
    Conflict,
    Kind,
    ListFilter,
    MalformedRequest,
    NotPermitted,
    Unavailable,
    WriteRequest,
    check_key,
    check_lengths,
    convert,
    parse_json,
    whole,
)
from ..history import (
    OPTION,
    AuditEntry,
    Change,
    EntityDiff,
    Evaluation,
    HistorySource,
    Versioned,
    audit,
    entity_at,
    environment_diff,
    evaluate_all,
    hash_of,
    project_states,
    resolve,
    revert_steps,
    ruleset_of,
    schedules_filter,
    states,
    states_at,
)
from ..projector import ReadModel
from ..runtime import ProjectorMetrics
from ..tokens import Role
from .routes import (
    API,
    Endpoint,
    Query,
    allowed,
    json_response,
    read_body,
    resolve_actor,
    resolve_author,
    service_of,
)

MAX_LIMIT = 1000
KINDS: dict[str, Kind] = {"flag": FLAG, "segment": SEGMENT}
HISTORY_KINDS = ("flag", "segment", "environment", "schedule", "plan")

# -- response and request bodies ---------------------------------------------------------------------------


class HistoryEntry(Struct, kw_only=True):
    """One event of the audit log, with what it changed against the entity's previous version."""

    seq: int
    type: str
    kind: str
    key: str
    actor: str
    at: datetime
    comment: str
    revision: int
    #: Stream sequence of the entity's previous event (0: this event created it).
    previous: int
    #: Who wrote it: a person (stable id, name, e-mail, how they signed in) or a token; null for older events.
    author: Author | None
    changes: list[Change]
    #: The changes as one line each: for a flag in sentences (``Rule 1 (ca): rollout on 10% -> 25%``), for the
    #: others field by field (``included: added "bob"``).
    lines: list[str]
    environment: str = ""
    #: Shared by the events of one change to several entities (a flag in every environment, a promotion).
    change: str = ""


class HistoryPage(Struct, kw_only=True):
    items: list[HistoryEntry]
    #: Pass as ``before`` for the next (older) page; null on the last page.
    next_before: int | None = None


class StateRecord(Struct, kw_only=True):
    """An entity's state as of an instant, with the facts of the event that set it."""

    kind: str
    key: str
    version: int
    revision: int
    actor: str
    at: datetime
    comment: str
    event: str
    state: Any


class EntityState(Struct, kw_only=True):
    seq: int
    at: datetime | None
    #: null: the entity did not exist yet.
    record: StateRecord | None


class EnvironmentState(Struct, kw_only=True):
    project: str
    environment: str
    #: The instant, as the stream sequence it resolved to, and the time asked (or of that event).
    seq: int
    at: datetime | None
    #: Equal to the read model's (and the SDK's) state hash of the environment at that instant.
    hash: str
    flags: list[StateRecord]
    segments: list[StateRecord]


class EvaluateBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """Evaluate ``context`` (an SDK context) against the environment, now or as of a time or a sequence."""

    context: Any
    #: Flag keys; null: every active flag.
    flags: list[str] | None = None
    as_of: str | None = None
    seq: Seq | None = None


class EvaluationResult(Struct, kw_only=True):
    flag: str
    value: Any
    variation: str | None
    reason: Reason
    seq: int
    version: int


class EvaluateResponse(Struct, kw_only=True):
    seq: int
    at: datetime | None
    results: list[EvaluationResult]


class DiffResponse(Struct, kw_only=True):
    from_seq: int
    to_seq: int
    items: list[EntityDiff]


class RevertBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """Where to go back to: ``to`` (a time, RFC 3339) or ``seq`` (a stream sequence)."""

    to: str | None = None
    seq: Seq | None = None
    comment: str = ""


class Written(Struct, kw_only=True):
    kind: str
    key: str
    action: str
    version: int


class RevertResponse(Struct, kw_only=True):
    seq: int
    at: datetime | None
    comment: str
    written: list[Written]


# -- the read model ----------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """An own read model starts folding once NATS is connected, its progress in the admin's metrics (the
    projector's names: ``flagstream_projector_lag`` of this replica); any read model is closed with the app."""
    source: HistorySource | None = getattr(app.state, "history", None)
    if source is None:
        yield
        return
    stop = asyncio.Event()
    follower: asyncio.Task[None] | None = None
    fold = source.fold
    metrics = getattr(app.state, "metrics", None)
    if fold is not None and metrics is not None:
        gauges = ProjectorMetrics(registry=metrics.registry)
        gauges.instrument(fold)
        follower = asyncio.create_task(
            gauges.follow_stream(lambda: nats.connect(fold.nats_url, **fold.connect_options), stop)
        )
    await source.start()
    try:
        yield
    finally:
        stop.set()
        await source.close()
        if follower is not None:
            await follower


async def model_of(request: Request) -> ReadModel:
    """The read model once it has applied the log as of this request (every write acknowledged before it, through
    any replica); 503 naming the option if this admin has none, or saying how far it is if it cannot catch up."""
    source: HistorySource | None = getattr(request.app.state, "history", None)
    if source is None:
        raise Unavailable(
            f"history is off in this admin API: start it with {OPTION} PATH (a read model of its own, folded from "
            "the event log), or run flagstream up"
        )
    return await source.applied(await service_of(request).store.last_seq())


# -- parsing -----------------------------------------------------------------------------------------------


def parse_time(value: str, name: str) -> datetime:
    """A time (RFC 3339; without an offset: UTC), one that exists in UTC too."""
    try:
        at = datetime.fromisoformat(value.strip().replace(" ", "+"))
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        at.astimezone(UTC)  # OverflowError: an offset that takes it before year 1 or past 9999
        return at
    except (ValueError, OverflowError):
        raise MalformedRequest(f"{name} must be an RFC 3339 time like 2026-11-25T02:00:00Z, got {value!r}") from None


def parse_seq(value: str, name: str) -> int:
    return whole(value, name)


def parse_instant(value: str, name: str) -> datetime | int:
    """A time (RFC 3339) or a stream sequence (ASCII digits)."""
    stripped = value.strip()
    return parse_seq(value, name) if stripped.isascii() and stripped.isdigit() else parse_time(value, name)


def where(request: Request) -> tuple[str, str]:
    project = check_key(request.path_params.get("project", DEFAULT_PROJECT), "project")
    return project, check_key(request.path_params["environment"], "environment")


def _limit(request: Request) -> int:
    return whole(request.query_params.get("limit", "100"), "limit", low=1, high=MAX_LIMIT, meaning="a page size")


def _instant_of(request: Request) -> datetime | int | None:
    q = request.query_params
    given = [name for name in ("at", "seq", "as_of") if q.get(name)]
    if len(given) > 1:
        raise MalformedRequest(f"give one of at, seq or as_of, not {' and '.join(given)}")
    if not given:
        return None
    name = given[0]
    value = q[name]
    if name == "at":
        return parse_time(value, name)
    if name == "seq":
        return parse_seq(value, name)
    return parse_instant(value, name)


def _record(found: Versioned) -> StateRecord:
    event = found.event
    kind, key, state = entity_of(event)
    return StateRecord(
        kind=kind,
        key=key,
        version=found.seq,
        revision=event.version,
        actor=event.actor,
        at=event.at,
        comment=event.comment,
        event=tag_of(event),
        state=state,
    )


async def with_pending(
    request: Request, project: str, environment: str, found: dict[tuple[str, str], Versioned], until: datetime
) -> dict[tuple[str, str], Versioned]:
    """For a future instant: the states once the pending scheduled changes due by then have applied."""
    if until <= datetime.now(UTC):
        return found
    latest = await service_of(request).store.latest(schedules_filter(project, environment))
    pending = [s.event.schedule for s in latest.values() if isinstance(s.event, ScheduleEvent)]
    future = project_states({i: v.state for i, v in found.items()}, pending, until)
    out = dict(found)
    for ident, state in future.items():
        if state is not found[ident].state:
            event = found[ident].event
            out[ident] = Versioned(found[ident].seq, msgspec.structs.replace(event, **{KINDS[ident[0]].attr: state}))
    return out


# -- handlers: audit log -----------------------------------------------------------------------------------


def make_history(kind: str | None, *, every_environment: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """The audit log of an environment (``kind``: of one entity), or with ``every_environment`` of one flag
    across the environments of its project (``?environment=`` keeps one)."""

    async def handler(request: Request) -> Response:
        visible: tuple[str, ...] | None = None
        environment: str | None
        if every_environment:
            project = check_key(request.path_params.get("project", DEFAULT_PROJECT), "project")
            chosen = request.query_params.get("environment")
            environment = check_key(chosen, "environment") if chosen else None
            readable = allowed(request, Role.READER)
            if environment is not None and readable is not None and not readable(environment):
                raise NotPermitted(f"you may not read environment {environment!r}")
            if readable is not None:
                every = await service_of(request).environment_keys(project)
                visible = tuple(e for e in every if readable(e))
        else:
            project, environment = where(request)
        q = request.query_params
        want_kind = kind or q.get("kind")  # an empty kind= is no kind: a 400, as the document says
        if want_kind is not None and want_kind not in HISTORY_KINDS:
            raise MalformedRequest(f"kind must be one of {', '.join(HISTORY_KINDS)}, got {want_kind!r}")
        key = check_key(request.path_params["key"], "key") if kind else (q.get("key") or None)
        if key is not None and want_kind is None:
            raise MalformedRequest("key needs kind (flag or segment)")
        if key is not None:
            check_key(key, "key")
        limit = _limit(request)
        before = parse_seq(q["before"], "before") if q.get("before") else None
        since = parse_time(q["since"], "since") if q.get("since") else None
        until = parse_time(q["until"], "until") if q.get("until") else None
        model = await model_of(request)
        found = await audit(
            model,
            project,
            environment,
            want_kind,
            key,
            limit=limit,
            before_seq=before,
            since=since,
            until=until,
            actor=q.get("actor") or None,
            environments=visible,
        )
        items = [_entry(e) for e in found]
        next_before = found[-1].record.seq if len(found) == limit else None
        return json_response(HistoryPage(items=items, next_before=next_before))

    return handler


def _entry(entry: AuditEntry) -> HistoryEntry:
    record = entry.record
    return HistoryEntry(
        environment=record.environment,
        change=getattr(record.event(), "change", ""),
        seq=record.seq,
        type=record.type,
        kind=record.kind,
        key=record.key,
        actor=record.actor,
        at=record.at,
        comment=record.comment,
        revision=record.revision,
        previous=entry.previous,
        author=record.event().author or None,
        changes=entry.changes,
        lines=entry.lines,
    )


# -- handlers: state as of, evaluate, diff -----------------------------------------------------------------


def make_entity_state(kind: str) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        project, environment = where(request)
        key = check_key(request.path_params["key"], "key")
        model = await model_of(request)
        instant = _instant_of(request)
        seq, at = await resolve(model, instant)
        found = await entity_at(model, project, environment, kind, key, seq)
        if found is None:
            return json_response(EntityState(seq=seq, at=at, record=None))
        versioned = {(kind, key): found}
        if isinstance(instant, datetime):  # a future instant: with the pending scheduled changes
            versioned = await with_pending(request, project, environment, versioned, instant)
        return json_response(EntityState(seq=seq, at=at, record=_record(versioned[(kind, key)])))

    return handler


async def environment_state(request: Request) -> Response:
    project, environment = where(request)
    model = await model_of(request)
    instant = _instant_of(request)
    seq, at = await resolve(model, instant)
    found = await states_at(model, project, environment, seq)
    if isinstance(instant, datetime):
        found = await with_pending(request, project, environment, found, instant)
    records = [_record(v) for _, v in sorted(found.items())]
    return json_response(
        EnvironmentState(
            project=project,
            environment=environment,
            seq=seq,
            at=at,
            hash=hash_of(project, environment, found),
            flags=[r for r in records if r.kind == "flag"],
            segments=[r for r in records if r.kind == "segment"],
        )
    )


async def evaluate_handler(request: Request) -> Response:
    project, environment = where(request)
    body = convert(parse_json(await read_body(request)), EvaluateBody)
    if body.as_of is not None and body.seq is not None:
        raise MalformedRequest("give as_of or seq, not both")
    if body.as_of is None and body.seq is None:
        # Now: straight from the event stream (no projector needed), like an SDK cold start.
        service = service_of(request)
        pairs: list[tuple[int, Event]] = []
        for kind in (FLAG, SEGMENT):
            pairs += [(s.seq, s.event) for s in await service.list(kind, project, environment, ListFilter(None))]
        found = states(pairs)
        seq = max((v.seq for v in found.values()), default=0)
        at: datetime | None = None
        instant: datetime | int | None = None
    else:
        model = await model_of(request)
        instant = parse_instant(body.as_of, "as_of") if body.as_of is not None else body.seq
        seq, at = await resolve(model, instant)
        found = await states_at(model, project, environment, seq)
        if isinstance(instant, datetime):
            found = await with_pending(request, project, environment, found, instant)
    # The evaluation time of clauses that read it: the instant asked about (an as_of time, or the time of the
    # sequence asked for); now for the current state.
    ruleset = ruleset_of(project, environment, seq, found, instant if isinstance(instant, datetime) else at)
    results = [_result(e) for e in evaluate_all(ruleset, body.context, body.flags)]
    return json_response(EvaluateResponse(seq=seq, at=at, results=results))


def _result(e: Evaluation) -> EvaluationResult:
    return EvaluationResult(
        flag=e.flag, value=e.value, variation=e.variation, reason=e.reason, seq=e.seq, version=e.version
    )


async def diff_handler(request: Request) -> Response:
    project, environment = where(request)
    q = request.query_params
    if not q.get("from"):
        raise MalformedRequest("from is required: a time (RFC 3339) or a stream sequence")
    model = await model_of(request)
    from_seq, _ = await resolve(model, parse_instant(q["from"], "from"))
    to_seq, _ = await resolve(model, parse_instant(q["to"], "to") if q.get("to") else None)
    before = await states_at(model, project, environment, from_seq)
    after = await states_at(model, project, environment, to_seq)
    return json_response(DiffResponse(from_seq=from_seq, to_seq=to_seq, items=environment_diff(before, after)))


# -- handlers: revert --------------------------------------------------------------------------------------


def _describe(seq: int, at: datetime | None) -> str:
    when = f" ({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')})" if at else ""
    return f"its state at seq {seq}{when}"


def make_revert(kind: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        project, environment = where(request)
        key = check_key(request.path_params["key"], "key") if kind else None
        body = convert(check_lengths(parse_json(await read_body(request))), RevertBody)
        if (body.to is None) == (body.seq is None):
            raise MalformedRequest('give exactly one of "to" (a time) or "seq" (a stream sequence)')
        model = await model_of(request)
        instant = parse_time(body.to, "to") if body.to is not None else body.seq
        seq, at = await resolve(model, instant)
        target = await states_at(model, project, environment, seq)
        service = service_of(request)
        current: dict[tuple[str, str], Any] = {}
        kinds = [KINDS[kind]] if kind else [SEGMENT, FLAG]
        for k in kinds:
            if key is not None:
                stored = await service.get(k, project, environment, key)
                current[(k.label, key)] = stored
            else:
                for stored in await service.list(k, project, environment, ListFilter(None)):
                    current[(k.label, getattr(stored.event, k.attr).key)] = stored
        what = f"{kind} {key}" if kind else f"environment {environment}"
        comment = f"revert {what} to {_describe(seq, at)}" + (f": {body.comment}" if body.comment else "")
        written = await _revert(request, project, environment, current, target, comment)
        return json_response(RevertResponse(seq=seq, at=at, comment=comment, written=written))

    return handler


#: Order of the writes of an environment revert: referenced things come back first and go away last.
_PHASES = (("segment", "restore"), ("flag", "restore"), ("segment", "replace"), ("flag", "replace"),
           ("flag", "archive"), ("segment", "archive"))  # fmt: skip


async def _revert(
    request: Request,
    project: str,
    environment: str,
    current: dict[tuple[str, str], Any],
    target: dict[tuple[str, str], Versioned],
    comment: str,
) -> list[Written]:
    service = service_of(request)
    actor = resolve_actor(request)
    author = resolve_author(request)
    plan: dict[tuple[str, str], list[str]] = {}
    version: dict[tuple[str, str], int] = {}
    for ident, stored in current.items():
        kind = KINDS[ident[0]]
        now_state = getattr(stored.event, kind.attr)
        then = target.get(ident)
        plan[ident] = revert_steps(now_state, then.state if then else None)
        version[ident] = stored.seq
    written: list[Written] = []
    for phase_kind, action in _PHASES:
        todo = sorted(i for i, steps in plan.items() if i[0] == phase_kind and action in steps)
        while todo:
            refused: list[tuple[str, str]] = []
            error: Conflict | None = None
            for ident in todo:
                try:
                    seq = await _step(
                        service, project, environment, ident, action, target, version, actor, comment, author
                    )
                except Conflict as exc:  # e.g. archived while another flag still uses it: try after the others
                    refused.append(ident)
                    error = exc
                    continue
                version[ident] = seq
                written.append(Written(kind=ident[0], key=ident[1], action=action, version=seq))
            if error is not None and len(refused) == len(todo):
                raise Conflict(f"revert stopped after {len(written)} writes: {error.message}", error.current)
            todo = refused
    return written


async def _step(
    service: Any,
    project: str,
    environment: str,
    ident: tuple[str, str],
    action: str,
    target: dict[tuple[str, str], Versioned],
    version: dict[tuple[str, str], int],
    actor: str,
    comment: str,
    author: Author | None = None,
) -> int:
    kind = KINDS[ident[0]]
    req = WriteRequest(actor=actor, comment=comment, if_match=version[ident], author=author)
    if action == "replace":
        state = msgspec.structs.replace(target[ident].state, archived=False)
        outcome = await service.replace(kind, project, environment, ident[1], state, req)
    else:
        outcome = await service.archive(kind, project, environment, ident[1], action == "archive", req)
    return int(outcome.stored.seq)


# -- the table ---------------------------------------------------------------------------------------------

_HISTORY_QUERY = (
    Query("actor", "only changes by this actor"),
    Query("since", "only changes at or after this time (RFC 3339)"),
    Query("until", "only changes before this time (RFC 3339)"),
    Query("limit", f"at most this many entries (1 to {MAX_LIMIT}, default 100)"),
    Query("before", "page: only events with a stream sequence below this (next_before of the previous page)"),
)
_INSTANT = (
    Query("at", "a time (RFC 3339): the state as it stood then"),
    Query("seq", "a stream sequence: the state right after that event"),
    Query("as_of", "either a time or a stream sequence"),
)


def _endpoints(base: str, suffix: str) -> list[Endpoint]:
    env = f"{base}/environments/{{environment}}"
    out = [
        Endpoint("GET", f"{env}/history", make_history(None), f"environmentHistory{suffix}",
                 "Audit log of an environment, newest first, with field-level diffs", "history", None, HistoryPage,
                 query=(Query("kind", "only this kind of entity", HISTORY_KINDS),
                        Query("key", "one entity (needs kind)"), *_HISTORY_QUERY), extra_statuses=(503,)),
        Endpoint("GET", f"{env}/state", environment_state, f"environmentState{suffix}",
                 "Flags and segments of an environment as of a time or a stream sequence", "history", None,
                 EnvironmentState, query=_INSTANT, extra_statuses=(422, 503)),
        Endpoint("POST", f"{env}/evaluate", evaluate_handler, f"evaluate{suffix}",
                 "Evaluate a context against the environment, now or as of a time or sequence", "history",
                 EvaluateBody, EvaluateResponse, extra_statuses=(503,)),
        Endpoint("GET", f"{env}/diff", diff_handler, f"environmentDiff{suffix}",
                 "What changed in an environment between two instants", "history", None, DiffResponse,
                 query=(Query("from", "a time or a stream sequence"),
                        Query("to", "a time or a sequence (default now)")),
                 extra_statuses=(422, 503)),
        Endpoint("POST", f"{env}/revert", make_revert(None), f"revertEnvironment{suffix}",
                 "Restore every flag and segment of an environment to its state at a time or sequence", "history",
                 RevertBody, RevertResponse, write=True, extra_statuses=(503,)),
    ]  # fmt: skip
    out.append(
        Endpoint("GET", f"{base}/flags/{{key}}/history", make_history("flag", every_environment=True),
                 f"projectFlagHistory{suffix}",
                 "Audit log of a flag in every environment of its project, newest first, in sentences", "history",
                 None, HistoryPage, query=(Query("environment", "only this environment"), *_HISTORY_QUERY),
                 extra_statuses=(503,))
    )  # fmt: skip
    for kind, plural in (("flag", "flags"), ("segment", "segments")):
        one = f"{env}/{plural}/{{key}}"
        name = kind.capitalize()
        out += [
            Endpoint("GET", f"{one}/history", make_history(kind), f"{kind}History{suffix}",
                     f"Audit log of a {kind}, newest first, with field-level diffs", "history", None, HistoryPage,
                     query=_HISTORY_QUERY, extra_statuses=(503,)),
            Endpoint("GET", f"{one}/state", make_entity_state(kind), f"{kind}State{suffix}",
                     f"A {kind} as of a time or a stream sequence", "history", None, EntityState, query=_INSTANT,
                     extra_statuses=(422, 503)),
            Endpoint("POST", f"{one}/revert", make_revert(kind), f"revert{name}{suffix}",
                     f"Restore a {kind} to its state at a time or stream sequence", "history", RevertBody,
                     RevertResponse, write=True, extra_statuses=(503,)),
        ]  # fmt: skip
    return out


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
