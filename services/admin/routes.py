"""The route table: every HTTP endpoint with the metadata the OpenAPI document is built from.

``app.py`` turns ``ENDPOINTS`` into Starlette routes and ``openapi.py`` into the document: one list, so the
two cannot drift. Handlers parse the request, call the service, and render records; errors are raised as
domain errors and mapped to HTTP in ``app.py`` only.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from ...events import DEFAULT_PROJECT, Author, whole_number
from ...validation import Problem
from ..changes import (
    ENVIRONMENT,
    FLAG,
    MAX_TEXT,
    MERGE_PATCH,
    SEGMENT,
    ActionBody,
    AdminService,
    EnvironmentBody,
    EnvironmentPatch,
    FlagBody,
    FlagPatch,
    FlagReplace,
    InvalidInput,
    Kind,
    ListFilter,
    MalformedRequest,
    Outcome,
    SegmentBody,
    SegmentPatch,
    SegmentReplace,
    TooLarge,
    UnsupportedMediaType,
    WriteRequest,
    check_key,
    check_lengths,
    check_text,
    convert,
    parse_json,
    require_whole,
    whole,
    without_comment,
)
from ..tokens import Role, role_on
from .responses import (
    EnvironmentList,
    EnvironmentRecord,
    FlagList,
    FlagRecord,
    Health,
    SegmentList,
    SegmentRecord,
    record,
)

Handler = Callable[[Request], Awaitable[Response]]

MAX_BODY = 1024 * 1024
JSON = "application/json"
API = "/api/v1"

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    request: type[Any] | None = None
    response: type[Any] | None = None
    status: int = 200
    query: tuple[Query, ...] = ()
    #: Whether it writes (and so reads Idempotency-Key, If-Match and the actor header).
    write: bool = False
    extra_statuses: tuple[int, ...] = field(default=())
    #: Open to anyone (no token): only health and the API description (see ``auth.py``).
    public: bool = False
    #: Media types the request body may have (the first is the one the document leads with).
    content_types: tuple[str, ...] = (JSON,)
    #: The media type of its answers other than the success, if not JSON (a page a browser is sent to).
    error_media_type: str = JSON
    #: The handler decides who may (change requests: their author, their approvers): the route itself asks only
    #: that the caller may read the project (``auth.py``).
    own_checks: bool = False
    #: The body of its 202 answer, if it may give one (a write held as a change request).
    accepted: type[Any] | None = None


# -- request helpers ---------------------------------------------------------------------------------------


def path_pattern(path: str) -> tuple[re.Pattern[str], dict[str, Convertor[Any]]]:
    """The pattern of a route's path (``/flags/{key}/on``) that matches a request path whole, and its convertors.

    Starlette's ``compile_path`` ends the pattern in ``$`` and routes with ``re.match``, and Python's ``$`` also
    matches before a final newline: ``.../flags/checkout/on%0A`` (the path decoded) reached the route of
    ``.../flags/checkout/on``, and ``/api/v1/tokens%0A`` the tokens, a path that a proxy's rule on the exact path
    does not see as theirs. ``\\Z`` is the end of the path and nothing else."""
    pattern, _, convertors = compile_path(path)
    return re.compile(pattern.pattern.removesuffix("$") + r"\Z"), convertors


def service_of(request: Request) -> AdminService:
    return request.app.state.service  # type: ignore[no-any-return]


def resolve_actor(request: Request) -> str:
    """Who is writing: the name of the API token that authenticated the request (``auth.py``). The ONE place
    identities come from. The actor header is informational only: it is appended as "(for ...)" and can never
    replace the token's identity.
    """
    principal = getattr(request.state, "principal", None)
    name = principal.name if principal is not None else "anonymous"
    claimed = " ".join(request.headers.get(request.app.state.actor_header, "").split())[:100]
    return f"{name} (for {claimed})" if claimed and claimed != name else name


def resolve_author(request: Request) -> Author | None:
    """Who is writing, for the event's ``author``: the person signed in (stable id, name, e-mail, how they signed
    in) or the API token (its id and name). None only for a request no one authenticated."""
    principal = getattr(request.state, "principal", None)
    return principal.author if principal is not None else None


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    return whole(raw.strip().removeprefix("W/").strip('"'), "If-Match", meaning="a version number (the ETag)")


def write_request(request: Request, comment: str) -> WriteRequest:
    too_long = check_text(comment, "$.comment", MAX_TEXT["comment"])
    if too_long is not None:
        raise InvalidInput(f"{too_long.path}: {too_long.message}", [too_long])
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= 200):
        raise MalformedRequest("Idempotency-Key must be 1 to 200 characters")
    return WriteRequest(
        actor=resolve_actor(request),
        comment=comment,
        if_match=_if_match(request),
        idempotency_key=key,
        author=resolve_author(request),
        may_write=allowed(request, Role.WRITER),
    )


def allowed(request: Request, role: Role) -> Callable[[str], bool] | None:
    """Whether the caller holds ``role`` on an environment of the request's project (None: on every one). For
    what a route does beyond the environment in its path: a flag's project-wide fields are written to every
    environment, a project-wide view shows several."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None
    project = request.path_params.get("project", DEFAULT_PROJECT)
    if (everywhere := role_on(principal.grants, project, None)) is not None and everywhere.allows(role):
        return None

    def holds(environment: str) -> bool:
        found = role_on(principal.grants, project, environment)
        return found is not None and found.allows(role)

    return holds


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (whole_number(length) or 0) > limit:
        raise TooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _where(request: Request) -> tuple[str, str]:
    """(project, environment) from the URL, checked."""
    project = check_key(request.path_params.get("project", DEFAULT_PROJECT), "project")
    environment = request.path_params.get("environment", "")
    return project, check_key(environment, "environment") if environment else ""


def _key(request: Request) -> str:
    return check_key(request.path_params["key"], "key")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type=JSON, headers=headers)


def render(outcome: Outcome, request: Request | None = None) -> Response:
    """An entity record with its ETag; a creation is 201 with the new entity's Location."""
    rec = record(outcome.stored)
    headers = {"ETag": f'"{rec.version}"'}
    if outcome.created and request is not None:
        headers["Location"] = f"{request.url.path.rstrip('/')}/{rec.key}"
        return json_response(rec, 201, headers)
    return json_response(rec, 200, headers)


def _same_key(body: dict[str, Any], key: str) -> None:
    sent = body.get("key", key)
    if sent is not None and sent != key:
        raise InvalidInput(f"key in the body ({sent!r}) differs from the key in the URL ({key!r})")


# -- handlers (built per kind) -----------------------------------------------------------------------------

#: kind -> (create body, PUT body, PATCH body as documented: the top-level fields, each optional)
_BODIES: dict[str, tuple[type[Any], type[Any] | None, type[Any]]] = {
    "flag": (FlagBody, FlagReplace, FlagPatch),
    "segment": (SegmentBody, SegmentReplace, SegmentPatch),
    "environment": (EnvironmentBody, None, EnvironmentPatch),
}
#: What a PATCH body may be: a JSON Merge Patch (RFC 7386), under its own media type or plain JSON.
PATCH_TYPES = (MERGE_PATCH, JSON)


def _list_filter(request: Request) -> ListFilter:
    archived = request.query_params.get("archived", "false")
    if archived not in ("true", "false", "all"):
        raise MalformedRequest(f"archived must be true, false or all, got {archived!r}")
    return ListFilter(
        archived={"true": True, "false": False, "all": None}[archived],
        tag=request.query_params.get("tag") or None,
        q=request.query_params.get("q") or None,
    )


def make_list(kind: Kind, list_type: type[Any]) -> Handler:
    async def handler(request: Request) -> Response:
        project, environment = _where(request)
        where = _list_filter(request) if kind is not ENVIRONMENT else ListFilter(archived=None)
        items = await service_of(request).list(kind, project, environment, where)
        return json_response(list_type(items=[record(s) for s in items]))

    return handler


def make_get(kind: Kind) -> Handler:
    async def handler(request: Request) -> Response:
        project, environment = _where(request)
        key = environment if kind is ENVIRONMENT else _key(request)
        return render(Outcome(await service_of(request).get(kind, project, environment, key)))

    return handler


def make_create(kind: Kind) -> Handler:
    body_type = _BODIES[kind.label][0]

    async def handler(request: Request) -> Response:
        project, environment = _where(request)
        data = check_lengths(parse_json(await read_body(request)))
        body = convert(data, body_type)
        state, comment = without_comment(body, kind.state_type)
        copy_from = getattr(body, "copy_from", "")
        req = write_request(request, comment)
        outcome = await service_of(request).create(kind, project, environment, state, req, copy_from=copy_from)
        return render(outcome, request)

    return handler


def make_replace(kind: Kind) -> Handler:
    body_type = _BODIES[kind.label][1]
    assert body_type is not None

    async def handler(request: Request) -> Response:
        project, environment = _where(request)
        key = _key(request)
        data = check_lengths(parse_json(await read_body(request)))
        if isinstance(data, dict):
            _same_key(data, key)
            data.setdefault("key", key)
        require_whole(data, body_type, kind.label)
        state, comment = without_comment(convert(data, body_type), kind.state_type)
        req = write_request(request, comment)
        return render(await service_of(request).replace(kind, project, environment, key, state, req))

    return handler


def _media_type(request: Request, allowed: tuple[str, ...]) -> None:
    """415 unless the body's Content-Type is one of ``allowed`` (none given: the first is assumed)."""
    given = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if given and given not in allowed:
        raise UnsupportedMediaType(f"this route takes {' or '.join(allowed)}, not {given}")


def make_patch(kind: Kind) -> Handler:
    """A JSON Merge Patch (RFC 7386) of the entity, applied to its current state and validated as a whole."""

    async def handler(request: Request) -> Response:
        project, environment = _where(request)
        key = environment if kind is ENVIRONMENT else _key(request)
        _media_type(request, PATCH_TYPES)
        data = check_lengths(parse_json(await read_body(request)))
        comment = ""
        if isinstance(data, dict):
            _same_key(data, key)
            comment = data.pop("comment", "")
            if not isinstance(comment, str):
                raise InvalidInput("comment must be a string", [Problem("$.comment", "expected a string")])
        req = write_request(request, comment)
        return render(await service_of(request).merge_patch(kind, project, environment, key, data, req))

    return handler


def make_action(kind: Kind, action: str) -> Handler:
    async def handler(request: Request) -> Response:
        project, environment = _where(request)
        key = _key(request)
        body = convert(check_lengths(parse_json(await read_body(request), allow_empty=True)), ActionBody)
        req = write_request(request, body.comment)
        service = service_of(request)
        if action in ("on", "off"):
            outcome = await service.toggle(project, environment, key, action == "on", req)
        else:
            outcome = await service.archive(kind, project, environment, key, action == "archive", req)
        return render(outcome)

    return handler


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    state = request.app.state
    nc = getattr(state, "nc", None)
    if nc is None or not nc.is_connected:
        return json_response(Health(status="unavailable", detail="not connected to NATS"), 503)
    if not await service_of(request).store.reachable():
        return json_response(Health(status="unavailable", detail="the event stream cannot be reached"), 503)
    return json_response(Health(status="ready"))


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type=JSON)


# -- the table ---------------------------------------------------------------------------------------------

ARCHIVED = Query("archived", "true: archived only; false (default): active only; all: both", ("true", "false", "all"))
TAG = Query("tag", "only entities carrying this tag")
Q = Query("q", "case-insensitive text search in key and name")


def _entity_endpoints(base: str, kind: Kind, plural: str, suffix: str) -> list[Endpoint]:
    body, whole, patch = _BODIES[kind.label]
    rec, lst = {"flag": (FlagRecord, FlagList), "segment": (SegmentRecord, SegmentList)}[kind.label]
    coll = f"{base}/environments/{{environment}}/{plural}"
    one = f"{coll}/{{key}}"
    name = kind.label.capitalize()
    query = (ARCHIVED, TAG, Q) if kind is FLAG else (ARCHIVED, Q)
    out = [
        Endpoint("GET", coll, make_list(kind, lst), f"list{name}s{suffix}", f"List {plural}", plural, None, lst,
                 query=query),
        Endpoint("POST", coll, make_create(kind), f"create{name}{suffix}", f"Create a {kind.label}", plural, body, rec,
                 201, write=True),
        Endpoint("GET", one, make_get(kind), f"get{name}{suffix}", f"Get a {kind.label}", plural, None, rec),
        Endpoint("PUT", one, make_replace(kind), f"replace{name}{suffix}",
                 f"Replace a whole {kind.label} (every field but key and archived must be sent)", plural, whole, rec,
                 write=True),
        Endpoint("PATCH", one, make_patch(kind), f"patch{name}{suffix}",
                 f"Change some fields of a {kind.label}: a JSON Merge Patch (RFC 7386)", plural, patch, rec,
                 write=True, extra_statuses=(415,), content_types=PATCH_TYPES),
    ]  # fmt: skip
    actions = ["on", "off", "archive", "restore"] if kind is FLAG else ["archive", "restore"]
    for action in actions:
        label = {"on": "Turn a flag on", "off": "Turn a flag off"}.get(action, f"{action.capitalize()} a {kind.label}")
        out.append(
            Endpoint("POST", f"{one}/{action}", make_action(kind, action), f"{action}{name}{suffix}", label, plural,
                     ActionBody, rec, write=True)
        )  # fmt: skip
    return out


def _api_endpoints(base: str, suffix: str) -> list[Endpoint]:
    envs = f"{base}/environments"
    return [
        Endpoint("GET", envs, make_list(ENVIRONMENT, EnvironmentList), f"listEnvironments{suffix}",
                 "List environments", "environments", None, EnvironmentList),
        Endpoint("POST", envs, make_create(ENVIRONMENT), f"createEnvironment{suffix}", "Create an environment",
                 "environments", EnvironmentBody, EnvironmentRecord, 201, write=True),
        Endpoint("GET", f"{envs}/{{environment}}", make_get(ENVIRONMENT), f"getEnvironment{suffix}",
                 "Get an environment", "environments", None, EnvironmentRecord),
        Endpoint("PATCH", f"{envs}/{{environment}}", make_patch(ENVIRONMENT), f"patchEnvironment{suffix}",
                 "Change some fields of an environment: a JSON Merge Patch (RFC 7386)", "environments",
                 EnvironmentPatch, EnvironmentRecord, write=True, extra_statuses=(415,), content_types=PATCH_TYPES),
        *_entity_endpoints(base, FLAG, "flags", suffix),
        *_entity_endpoints(base, SEGMENT, "segments", suffix),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/healthz", healthz, "healthz", "The process is alive", "health", None, Health, public=True),
    Endpoint("GET", "/readyz", readyz, "readyz", "NATS is connected and the stream reachable", "health", None, Health,
             extra_statuses=(503,), public=True),
    Endpoint("GET", "/openapi.json", openapi_json, "openapi", "This OpenAPI document", "meta", public=True),
    *_api_endpoints(f"{API}/projects/{{project}}", ""),
    # Short forms for the default project.
    *_api_endpoints(API, "Default"),
]  # fmt: skip
