"""Admin feature module: change requests (see ``services/requests``; registry.py for the contract).

In an environment whose changes need approvals (``Environment.approvals``), every write route that would change it
answers **202 Accepted** with a change request instead (``Location``: the request): ``gate`` wraps each write
route, runs it, and when the event store's guard refuses the write (``ApprovalRequired``: nothing was stored),
runs it again in a ``staging()`` block to see everything it would do, and opens a request holding the call as the
API took it (method, path, JSON body). ``Flagstream-Request: <id>`` on a write adds it to that open request of
yours instead. The kill switch (``POST .../flags/{key}/off``) is applied at once where the environment allows it,
with a reason in ``comment``, and marked as an emergency.

``/requests``: list (open ones by default), create one from several writes, read one with what it changes in
sentences, edit (the author; drops every approval), rebase (the same writes against the current state), comment,
approve and reject (an approver other than the author), cancel, apply (an approved request: one atomic batch).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import Struct
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from ...events import DEFAULT_PROJECT, Author, Environment, Flag, Segment, entity_of, tag_of
from ...events.catalog import Call, ChangeRequest, Effect, Remark, Review, Schedule
from ...validation import Problem
from ..changes import (
    AdminError,
    FlagPatch,
    InvalidInput,
    MalformedRequest,
    NotPermitted,
    SegmentPatch,
    Stage,
    Stored,
    check_key,
    check_lengths,
    convert,
    parse_json,
    staging,
)
from ..history import diff, lines
from ..release import new_plan_id
from ..requests import ApprovalRequired, Person, RequestService, kill_switch, missing, running
from ..targeting import configuration_lines, flag_change_lines
from ..tokens import Role
from .routes import API, MAX_BODY, Endpoint, Query, allowed, json_response, read_body

#: Write routes that change an environment (and so may be held in a change request), by their tag.
CHANGE_TAGS = ("flags", "segments", "environments", "flags across environments", "history", "schedules", "release")
#: The header that adds a write to an open change request of the caller's.
REQUEST_HEADER = "Flagstream-Request"
#: Fault injection for the tests of a replica killed while applying: when set, the applying process prints a line
#: and waits this many seconds after sending every event of the batch but the one that commits it.
PAUSE_BEFORE_COMMIT = "FLAGSTREAM_TEST_PAUSE_BEFORE_COMMIT"
TAG = "change requests"
STATUSES = ("open", "applied", "rejected", "cancelled", "failed", "all")
_STATE_TYPES: dict[str, type[Any]] = {
    "flag": Flag,
    "segment": Segment,
    "environment": Environment,
    "schedule": Schedule,
}


# -- the people acting ---------------------------------------------------------------------------------------


def person_of(request: Request) -> Person:
    principal = request.state.principal
    return Person(principal.author, tuple(principal.grants), tuple(getattr(principal, "groups", ())))


def _service(request: Request) -> RequestService:
    return request.app.state.requests  # type: ignore[no-any-return]


def _project(request: Request) -> str:
    return check_key(request.path_params.get("project", DEFAULT_PROJECT), "project")


# -- running writes: the routes themselves, staged -----------------------------------------------------------


Route = tuple[re.Pattern[str], re.Pattern[str], dict[str, Any], Endpoint]


def _change_routes() -> list[Route]:
    """(whole, loose, convertors, endpoint) of each write route: ``whole`` matches a path as the admin routes do
    (``path_pattern``); ``loose`` is Starlette's own, whose ``$`` also takes a final newline, kept for the calls of a
    request an earlier version stored (``.../flags/checkout/off`` and a newline was taken as the ``off`` route)."""
    from .registry import all_endpoints
    from .routes import path_pattern

    out = []
    for endpoint in all_endpoints():
        if endpoint.write and endpoint.tag in CHANGE_TAGS and endpoint.method != "GET":
            whole, convertors = path_pattern(endpoint.path)
            out.append((whole, compile_path(endpoint.path)[0], convertors, endpoint))
    return out


def match(call: Call, *, stored: bool = False) -> tuple[Endpoint, dict[str, Any]]:
    """The write route a call names, with its path parameters; InvalidInput if it names none (or not a write
    that changes an environment). ``stored``: a call of a request already stored, matched as it was when it was
    stored (a path ending in a newline too), so that a request an earlier version took still applies."""
    path = call.path.split("?", 1)[0]
    for whole, loose, convertors, endpoint in _ROUTES():
        found = (loose if stored else whole).match(path)
        if found and endpoint.method == call.method.upper():
            params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            return endpoint, params
    raise InvalidInput(
        f"{call.method} {call.path!r} is not a write the admin API takes for flags, segments or environments",
        [Problem("$.changes", f"{call.method} {call.path!r}: no such change")],
    )


_TABLE: list[Route] = []


def _ROUTES() -> list[Route]:
    if not _TABLE:
        _TABLE.extend(_change_routes())
    return _TABLE


def _fake_request(app: Starlette, endpoint: Endpoint, params: dict[str, Any], call: Call, principal: Any) -> Request:
    data = b"" if call.body is None else msgspec.json.encode(call.body)
    headers = [(b"host", b"flagstream"), (b"content-length", str(len(data)).encode())]
    if call.if_match is not None:
        headers.append((b"if-match", f'"{call.if_match}"'.encode()))
    if data:
        media = b"application/merge-patch+json" if endpoint.method == "PATCH" else b"application/json"
        headers.append((b"content-type", media))
    scope = {
        "type": "http",
        "method": endpoint.method,
        "path": call.path,
        "raw_path": call.path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": headers,
        "path_params": params,
        "app": app,
        "state": {"principal": principal},
        "server": ("flagstream", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return Request(scope, receive)


def executor(app: Starlette) -> Callable[[Sequence[Call], Person], Awaitable[Stage]]:
    """Runs calls through the admin's own write routes in a ``staging()`` block: each authorized for ``who``'s
    grants, as a route would be, and recorded under ``who``'s name."""
    from .auth import Principal, authorize, project_of

    async def execute(calls: Sequence[Call], who: Person) -> Stage:
        author = who.author
        principal = Principal(
            author.name, who.grants, kind=author.kind, id=author.id, email=author.email, via=author.via or "token",
            issuer=author.issuer, groups=who.groups,
        )  # fmt: skip
        with staging() as stage:
            for n, call in enumerate(calls, 1):
                where = f"change {n} ({call.method} {call.path})"
                endpoint, params = match(call, stored=True)  # new calls were matched whole (_calls, the routes)
                fake = _fake_request(app, endpoint, params, call, principal)
                try:
                    authorize(principal, endpoint, params.get("environment"), project_of(endpoint, fake))
                    await endpoint.handler(fake)
                except AdminError as exc:
                    raise _prefixed(exc, where) from None
        return stage

    return execute


def _prefixed(error: AdminError, where: str) -> AdminError:
    error.message = f"{where}: {error.message}"
    error.args = (error.message,)
    if type(error).__name__ == "Forbidden":  # the route's 403, as the domain's
        return NotPermitted(error.message)
    return error


# -- the gate on every write route ---------------------------------------------------------------------------


def _replayed(request: Request, body: bytes) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _call_of(request: Request, body: bytes) -> Call:
    from .routes import _if_match

    data = parse_json(body, allow_empty=True) if body.strip() else None
    return Call(method=request.method, path=request.url.path, body=data, if_match=_if_match(request))


def gate(endpoint: Endpoint) -> Endpoint:
    """The endpoint with its writes held for approval where the environment asks for approvals: see the module."""
    if not endpoint.write or endpoint.tag not in CHANGE_TAGS:
        return endpoint
    handler = endpoint.handler
    off = endpoint.path.endswith("/off")

    async def gated(request: Request) -> Response:
        body = await read_body(request, MAX_BODY)
        into = request.headers.get(REQUEST_HEADER)
        if into:
            return await _add_to(request, check_key(into.strip(), REQUEST_HEADER), _call_of(request, body))
        try:
            with kill_switch() if off else contextlib.nullcontext():
                return await handler(_replayed(request, body))
        except ApprovalRequired:
            return await _propose(request, endpoint, body)

    return replace(endpoint, handler=gated, extra_statuses=(*endpoint.extra_statuses, 202), accepted=RequestRecord)


async def _propose(request: Request, endpoint: Endpoint, body: bytes) -> Response:
    """Open a change request holding the write (nothing was stored)."""
    project = _project(request)
    call = _call_of(request, body)
    apply_at = None
    if endpoint.tag == "schedules":  # a scheduled change becomes a request to apply then (if approved by then)
        call, apply_at = _scheduled(request, project, call)
    elif endpoint.operation_id.startswith("createPlan") and isinstance(call.body, dict) and not call.body.get("id"):
        # the plan's id fixed now: applying creates the plan that was reviewed
        call = Call(method=call.method, path=call.path, body={**call.body, "id": new_plan_id()}, if_match=call.if_match)
    comment = call.body.get("comment", "") if isinstance(call.body, dict) else ""
    title = comment.strip().splitlines()[0][:200] if isinstance(comment, str) and comment.strip() else ""
    key = request.headers.get("idempotency-key")
    rid = None
    if key:  # a retried write finds the request it opened the first time
        rid = "r" + hashlib.sha256(f"{request.state.principal.id}\x00{key}".encode()).hexdigest()[:10]
    service = _service(request)
    stored = await service.open(
        project, person_of(request), request.app.state.execute, calls=[call], title=title, apply_at=apply_at, rid=rid
    )
    return await _accepted(request, project, stored)


async def _add_to(request: Request, rid: str, call: Call) -> Response:
    project = _project(request)
    service = _service(request)
    current = await service.find(project, rid)
    calls = [*current.event.change_request.calls, call]  # type: ignore[attr-defined]
    stored = await service.edit(project, rid, person_of(request), request.app.state.execute, calls=calls)
    return await _accepted(request, project, stored)


async def _accepted(request: Request, project: str, stored: Stored) -> Response:
    rec = await record_of(request, project, stored, detail=True)
    location = f"{API}/projects/{project}/requests/{rec.id}"
    return json_response(rec, 202, {"Location": location, "ETag": f'"{rec.version}"'})


def _scheduled(request: Request, project: str, call: Call) -> tuple[Call, datetime]:
    """A schedule's body as the write it stands for, and when."""
    from .history import parse_time
    from .schedules import ScheduleBody, _change_of

    body = convert(check_lengths(call.body), ScheduleBody)
    change = _change_of(body)
    due = parse_time(body.due, "due")
    environment = check_key(request.path_params["environment"], "environment")
    plural = "flags" if change.kind == "flag" else "segments"
    path = f"{API}/projects/{project}/environments/{environment}/{plural}/{change.key}"
    if change.action == "patch":
        patch_type = FlagPatch if change.kind == "flag" else SegmentPatch
        full = msgspec.to_builtins(convert(change.changes, patch_type))  # nested objects whole: a merge replaces them
        return Call(method="PATCH", path=path, body={**full, "comment": body.comment}), due
    return Call(method="POST", path=f"{path}/{change.action}", body={"comment": body.comment}), due


# -- records -------------------------------------------------------------------------------------------------


class ChangeView(Struct, kw_only=True):
    """What a request does to one entity: where, from which version, and in sentences (as the history says)."""

    kind: str
    key: str
    environment: str
    #: The version (stream sequence) the request was made against; 0: the entity does not exist yet.
    base: int
    #: The event applying writes for it (``flag.updated``, ``flag.toggled``...).
    event: str
    #: What it changes, one line each (empty in lists).
    lines: list[str]
    #: The entity's whole state once applied.
    state: Any


class RequestRecord(Struct, kw_only=True):
    id: str
    project: str
    #: Where the request's events are (the first environment it changes that needs approvals).
    environment: str
    #: The stream sequence of its last event.
    version: int
    title: str
    description: str
    author: Author
    status: str
    #: Every environment it changes has the approvals it asks for (now).
    approved: bool
    #: Approvals still missing, per environment.
    missing: dict[str, int]
    #: The environments it changes that need approvals.
    environments: list[str]
    approvals: list[Review]
    rejection: Review | None
    comments: list[Remark]
    changes: list[ChangeView]
    #: The writes, as the API takes them.
    calls: list[Call]
    apply_at: datetime | None
    revision: int
    closed_by: Author | None
    error: str
    #: Its last step: the event (``request.approved``...), by whom and when.
    event: str
    actor: str
    at: datetime
    #: With ``apply``: the stream sequences of the events it wrote.
    applied: list[int] = []


class RequestList(Struct, kw_only=True):
    items: list[RequestRecord]


async def _said(request: Request, project: str, effect: Effect) -> list[str]:
    """What an effect changes, in the history's words: its state at its base version against its state after."""
    store = request.app.state.service.store
    before = None
    if effect.base:
        with contextlib.suppress(Exception):
            before = entity_of((await store.at(effect.base)).event)[2]
    state_type = _STATE_TYPES.get(effect.kind)
    try:
        after = msgspec.convert(effect.state, state_type) if state_type is not None else effect.state
    except msgspec.ValidationError:
        after = effect.state
    if effect.kind == "flag" and isinstance(after, Flag):
        if before is None:
            return [f"created, {'on' if after.on else 'off'}", *configuration_lines(after)]
        return flag_change_lines(before, after)
    return lines(diff(before, after))


async def record_of(request: Request, project: str, stored: Stored, *, detail: bool = False) -> RequestRecord:
    event = stored.event
    state: ChangeRequest = event.change_request  # type: ignore[attr-defined]
    envs = await _service(request).environments(project, state.environments)
    lacking = missing(state, envs)
    said = [await _said(request, project, e) for e in state.effects] if detail else [[] for _ in state.effects]
    return RequestRecord(
        id=state.id, project=project, environment=event.environment, version=stored.seq,  # type: ignore[attr-defined]
        title=state.title, description=state.description, author=state.author, status=state.status,
        approved=state.status == "open" and not lacking, missing=lacking, environments=list(state.environments),
        approvals=list(state.approvals), rejection=state.rejection, comments=list(state.comments),
        changes=[
            ChangeView(kind=e.kind, key=e.key, environment=e.environment, base=e.base, event=e.event, lines=lines_,
                       state=e.state)
            for e, lines_ in zip(state.effects, said, strict=True)
        ],
        calls=list(state.calls), apply_at=state.apply_at, revision=state.revision, closed_by=state.closed_by,
        error=state.error, event=tag_of(event), actor=event.actor, at=event.at,  # type: ignore[attr-defined]
    )  # fmt: skip


def _may_read(request: Request, state: ChangeRequest, home: str) -> bool:
    visible = allowed(request, Role.READER)
    return visible is None or all(visible(env) for env in {home, *(e.environment for e in state.effects)})


# -- handlers ------------------------------------------------------------------------------------------------


class RequestBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """A change request of several writes, each as the API takes it (method, path under /api/v1, JSON body)."""

    title: str = ""
    description: str = ""
    changes: list[Call]
    #: Apply at this time (RFC 3339) if approved by then.
    apply_at: str | None = None


class RequestEdit(Struct, kw_only=True, forbid_unknown_fields=True):
    """What to change of a request (its author only; drops every approval)."""

    title: str | None = None
    description: str | None = None
    #: The writes, all of them (replacing the request's).
    changes: list[Call] | None = None
    #: A time (RFC 3339), or "" to apply it only when someone does.
    apply_at: str | None = None


class ReviewBody(Struct, kw_only=True, forbid_unknown_fields=True):
    comment: str = ""


class CommentBody(Struct, kw_only=True, forbid_unknown_fields=True):
    text: str


def _rid(request: Request) -> str:
    return check_key(request.path_params["id"], "change request id")


def _calls(changes: list[Call]) -> list[Call]:
    out = []
    for i, call in enumerate(changes):
        if not call.path.startswith(f"{API}/"):
            raise InvalidInput(
                f"changes[{i}].path must be an admin API path ({API}/...), got {call.path!r}",
                [Problem(f"$.changes[{i}].path", f"starts with {API}/")],
            )
        match(call)
        out.append(Call(method=call.method.upper(), path=call.path, body=call.body, if_match=call.if_match))
    return out


def _time(value: str, name: str) -> datetime:
    from .history import parse_time

    at = parse_time(value, name)
    if at <= datetime.now(UTC):
        raise InvalidInput(f"{name} must be in the future, got {value!r}", [Problem(f"$.{name}", "in the past")])
    return at


async def _body(request: Request, body_type: type[Any]) -> Any:
    return convert(check_lengths(parse_json(await read_body(request), allow_empty=True)), body_type)


async def _answer(request: Request, project: str, stored: Stored, status: int = 200, **extra: Any) -> Response:
    rec = await record_of(request, project, stored, detail=True)
    for name, value in extra.items():
        setattr(rec, name, value)
    return json_response(rec, status, {"ETag": f'"{rec.version}"'})


async def list_requests(request: Request) -> Response:
    project = _project(request)
    status = request.query_params.get("status", "open")
    if status not in STATUSES:
        raise MalformedRequest(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    flag = request.query_params.get("flag")
    environment = request.query_params.get("environment")
    items = []
    for stored in await _service(request).list(project):
        state: ChangeRequest = stored.event.change_request  # type: ignore[attr-defined]
        if status != "all" and state.status != status:
            continue
        if flag and not any(e.kind == "flag" and e.key == flag for e in state.effects):
            continue
        if environment and not any(e.environment == environment for e in state.effects):
            continue
        if not _may_read(request, state, stored.event.environment):  # type: ignore[attr-defined]
            continue
        items.append(await record_of(request, project, stored))
    return json_response(RequestList(items=items))


async def create_request(request: Request) -> Response:
    project = _project(request)
    body = await _body(request, RequestBody)
    apply_at = _time(body.apply_at, "apply_at") if body.apply_at else None
    stored = await _service(request).open(
        project, person_of(request), request.app.state.execute, calls=_calls(body.changes), title=body.title,
        description=body.description, apply_at=apply_at,
    )  # fmt: skip
    response = await _answer(request, project, stored, 201)
    response.headers["Location"] = f"{API}/projects/{project}/requests/{stored.event.change_request.id}"  # type: ignore[attr-defined]
    return response


async def _readable(request: Request, project: str) -> Stored:
    stored = await _service(request).find(project, _rid(request))
    if not _may_read(request, stored.event.change_request, stored.event.environment):  # type: ignore[attr-defined]
        raise NotPermitted(f"you may not read every environment change request {_rid(request)} changes")
    return stored


async def get_request(request: Request) -> Response:
    project = _project(request)
    return await _answer(request, project, await _readable(request, project))


async def edit_request(request: Request) -> Response:
    project = _project(request)
    body = await _body(request, RequestEdit)
    fields: dict[str, Any] = {}
    if body.title is not None:
        fields["title"] = body.title
    if body.description is not None:
        fields["description"] = body.description
    if body.apply_at is not None:
        fields["apply_at"] = _time(body.apply_at, "apply_at") if body.apply_at else None
    calls = _calls(body.changes) if body.changes is not None else None
    stored = await _service(request).edit(
        project, _rid(request), person_of(request), request.app.state.execute, calls=calls, **fields
    )
    return await _answer(request, project, stored)


async def rebase_request(request: Request) -> Response:
    project = _project(request)
    stored = await _service(request).edit(
        project, _rid(request), person_of(request), request.app.state.execute, rerun=True
    )
    return await _answer(request, project, stored)


async def comment_request(request: Request) -> Response:
    project = _project(request)
    body = await _body(request, CommentBody)
    await _readable(request, project)
    stored = await _service(request).comment(project, _rid(request), person_of(request), body.text)
    return await _answer(request, project, stored, 201)


def make_review(verdict: str) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        project = _project(request)
        body = await _body(request, ReviewBody)
        service = _service(request)
        act = {"approve": service.approve, "reject": service.reject, "cancel": service.cancel}[verdict]
        stored = await act(project, _rid(request), person_of(request), body.comment)
        return await _answer(request, project, stored)

    return handler


def _pause() -> Callable[[], Awaitable[None]] | None:
    seconds = os.environ.get(PAUSE_BEFORE_COMMIT)
    if not seconds:
        return None

    async def pause() -> None:
        import asyncio

        print(f"flagstream: paused before commit for {seconds}s", file=sys.stderr, flush=True)
        await asyncio.sleep(float(seconds))

    return pause


async def apply_request(request: Request) -> Response:
    project = _project(request)
    await _body(request, ReviewBody)
    stored, seqs = await _service(request).apply(
        project, _rid(request), person_of(request), request.app.state.execute, before_commit=_pause()
    )
    return await _answer(request, project, stored, applied=seqs)


# -- lifespan and table --------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Every append of this process passes the requests' guard; requests due at a time are applied then."""
    service = RequestService(app.state.service.store)
    app.state.requests = service
    app.state.execute = executor(app)
    app.state.service.store.guard = service.guard
    async with running(service, app.state.execute, poll=getattr(app.state, "schedule_poll", 1.0)) as runner:
        app.state.request_runner = runner
        yield


STATUS = Query("status", "open (default), applied, rejected, cancelled, failed or all", STATUSES)
FLAG = Query("flag", "only requests changing this flag")
ENVIRONMENT = Query("environment", "only requests changing this environment")


def _endpoints(base: str, suffix: str) -> list[Endpoint]:
    coll = f"{base}/requests"
    one = f"{coll}/{{id}}"
    return [
        Endpoint("GET", coll, list_requests, f"listRequests{suffix}", "Change requests of the project", TAG, None,
                 RequestList, query=(STATUS, FLAG, ENVIRONMENT)),
        Endpoint("POST", coll, create_request, f"createRequest{suffix}",
                 "Open a change request of several writes (each as the API takes it)", TAG, RequestBody,
                 RequestRecord, 201, write=True, own_checks=True),
        Endpoint("GET", one, get_request, f"getRequest{suffix}",
                 "A change request, with what it changes in sentences", TAG, None, RequestRecord),
        Endpoint("PATCH", one, edit_request, f"editRequest{suffix}",
                 "Edit a change request (its author; drops every approval)", TAG, RequestEdit, RequestRecord,
                 write=True, own_checks=True),
        Endpoint("POST", f"{one}/rebase", rebase_request, f"rebaseRequest{suffix}",
                 "Make a change request's writes again against the current state (its author; drops every approval)",
                 TAG, None, RequestRecord, write=True, own_checks=True),
        Endpoint("POST", f"{one}/comments", comment_request, f"commentRequest{suffix}", "Comment on a change request",
                 TAG, CommentBody, RequestRecord, 201, write=True, own_checks=True),
        Endpoint("POST", f"{one}/approve", make_review("approve"), f"approveRequest{suffix}",
                 "Approve a change request (an approver of its environments, not its author)", TAG, ReviewBody,
                 RequestRecord, write=True, own_checks=True),
        Endpoint("POST", f"{one}/reject", make_review("reject"), f"rejectRequest{suffix}",
                 "Reject a change request (an approver of its environments): it is closed", TAG, ReviewBody,
                 RequestRecord, write=True, own_checks=True),
        Endpoint("POST", f"{one}/cancel", make_review("cancel"), f"cancelRequest{suffix}",
                 "Cancel a change request (its author, or an admin)", TAG, ReviewBody, RequestRecord, write=True,
                 own_checks=True),
        Endpoint("POST", f"{one}/apply", apply_request, f"applyRequest{suffix}",
                 "Apply an approved change request: all its writes at once, or none", TAG, ReviewBody, RequestRecord,
                 write=True, own_checks=True),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
