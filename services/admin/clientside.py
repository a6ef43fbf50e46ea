"""Admin feature module: client-side keys and the client door (browsers and mobile apps; ``docs/clientside.md``).

Management (admin tokens, like API tokens): ``GET``/``POST /api/v1/projects/{project}/environments/{environment}/
client-keys`` lists and creates keys, ``DELETE .../client-keys/{key}`` revokes one.

The client door: OFREP under ``/client/{client_key}``, so an OpenFeature OFREP provider's base URL is
``https://flags.example.com/client/fsc_...``: ``POST .../ofrep/v1/evaluate/flags`` (bulk),
``POST .../ofrep/v1/evaluate/flags/{key}`` and ``GET .../ofrep/v1/events`` (its event stream; the key is in the
path, so a browser's ``EventSource``, which sends no headers, reaches it too). No bearer token: the key in the
path is the only credential, and it opens nothing else. For each request, in order:

1. the client address's rate (429, before anything is looked up);
2. the key: unknown, revoked or malformed are one and the same 401 (which one is not said);
3. the ``Origin``, when the request has one (a browser's): it must be one of the key's origins, else 403 without
   CORS headers, so the browser refuses the answer; without ``Origin`` (a server, a mobile app) it is no browser
   to protect;
4. the key's rate (429);
5. a request that names an environment or project (OFREP headers or query) other than the key's: 403.

Answers carry CORS headers for the allowed origin only (``Access-Control-Allow-Origin: <that origin>``, never
``*``, no credentials: the key is not a cookie), with ``ETag`` exposed. Preflights (``OPTIONS``) are answered per
key and origin. A context is at most ``CLIENT_MAX_BODY`` bytes (413).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ..changes import ENVIRONMENT, InvalidInput, NotFound, TooLarge, Unavailable, convert, parse_json
from ..clientkeys import (
    ORIGINS_MAX,
    ClientKey,
    ClientKeyStore,
    ClientLimits,
    StoreUnavailable,
    check_name,
    check_origins,
)
from .auth import CLIENT_KEYS_TAG
from .ofrep import (
    CLIENT,
    ENVIRONMENT_HEADER,
    EVENTS,
    OFREP,
    PROJECT_HEADER,
    Caller,
    OfrepBulkEvaluation,
    OfrepEvaluation,
    OfrepEvaluationRequest,
    OfrepFailure,
    answer_flag,
    answer_flags,
)
from .ofrep_events import stream_events
from .routes import API, Endpoint, _where, json_response, read_body, resolve_actor, service_of

log = logging.getLogger("flagstream.admin.clientside")

#: A client door request's body (its context) at most: a browser's context is a few hundred bytes.
CLIENT_MAX_BODY = 32 * 1024
#: Live keys per environment at most.
MAX_KEYS = 100
ALLOW_METHODS = "GET, POST, OPTIONS"
#: What a page may send: the OFREP providers' headers (JSON body, If-None-Match) and OFREP's own.
ALLOW_HEADERS = "Content-Type, If-None-Match, Accept, Cache-Control, Last-Event-ID, " + (
    f"{ENVIRONMENT_HEADER}, {PROJECT_HEADER}"
)
EXPOSE_HEADERS = "ETag, Retry-After"
PREFLIGHT_MAX_AGE = "600"
DOOR = f"{CLIENT}/{{client_key}}{OFREP}"


# -- management --------------------------------------------------------------------------------------------


class ClientKeyBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    #: Exact origins of the web pages that may use the key (``https://shop.example.com``); none: apps only.
    origins: list[str] = []


class ClientKeyList(msgspec.Struct, kw_only=True):
    items: list[ClientKey]


def _store(request: Request) -> ClientKeyStore:
    store: ClientKeyStore | None = request.app.state.client_keys
    if store is None:
        raise Unavailable("client-side keys are unavailable (their KV bucket could not be opened)")
    return store


async def create_key(request: Request) -> Response:
    project, environment = _where(request)
    body = convert(parse_json(await read_body(request)), ClientKeyBody)
    problem = check_name(body.name)
    if problem:
        raise InvalidInput(problem)
    try:
        origins = check_origins(body.origins)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    await service_of(request).get(ENVIRONMENT, project, environment, environment)  # 404 if there is none
    store = _store(request)
    live = [k for k in await store.list(project, environment) if not k.revoked]
    if len(live) >= MAX_KEYS:
        raise InvalidInput(f"environment {environment!r} has {MAX_KEYS} client-side keys already; revoke one first")
    actor = resolve_actor(request)
    record = await store.create(
        name=body.name, project=project, environment=environment, origins=origins, created_by=actor
    )
    log.info("client-side key %s (%s) of %s/%s created by %s", record.key, record.name, project, environment, actor)
    location = f"{request.url.path.rstrip('/')}/{record.key}"
    return json_response(record, 201, {"Location": location})


async def list_keys(request: Request) -> Response:
    project, environment = _where(request)
    show = request.query_params.get("revoked", "false")
    if show not in ("true", "false"):
        raise InvalidInput(f"revoked must be true or false, got {show!r}")
    records = await _store(request).list(project, environment)
    if show == "false":
        records = [r for r in records if not r.revoked]
    return json_response(ClientKeyList(items=records))


async def revoke_key(request: Request) -> Response:
    project, environment = _where(request)
    key = request.path_params["key"]
    store = _store(request)
    record = await store.get(key)
    if record is None or (record.project, record.environment) != (project, environment):
        raise NotFound(f"client-side key {key!r} not found in environment {environment!r}")
    record = await store.revoke(key, resolve_actor(request))
    assert record is not None
    log.info("client-side key %s (%s) revoked by %s", record.key, record.name, record.revoked_by)
    return json_response(record)


# -- the door ----------------------------------------------------------------------------------------------


def _limits(request: Request) -> ClientLimits:
    return request.app.state.client_limits  # type: ignore[no-any-return]


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _cors(origin: str | None) -> dict[str, str]:
    if origin is None:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSE_HEADERS, "Vary": "Origin"}


def _too_many(what: str, wait: float, headers: dict[str, str] | None = None) -> Response:
    failure = OfrepFailure(429, "GENERAL", f"too many requests {what}; retry in {wait:.1f}s")
    response = failure.response()
    response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
    response.headers.update(headers or {})
    return response


Inner = Callable[[Request, Caller, dict[str, str]], Awaitable[Response]]


async def _admit(request: Request) -> tuple[ClientKey, str | None] | Response:
    """Steps 1-3 of the module docstring: the live key and the allowed origin, or the answer refusing them."""
    wait = _limits(request).address(_address(request))
    if wait > 0:
        return _too_many("from this address", wait)
    try:
        record = await _store(request).lookup(request.path_params["client_key"])
    except StoreUnavailable as exc:
        log.warning("client door: %s", exc)
        return OfrepFailure(503, "GENERAL", "client-side keys cannot be checked right now").response()
    if record is None:
        failure = OfrepFailure(401, "GENERAL", "unknown or revoked client-side key")
        return failure.response()
    origin = request.headers.get("origin")
    if origin is not None and not record.allows_origin(origin):
        details = f"origin {origin!r} is not allowed for this client-side key"
        return OfrepFailure(403, "GENERAL", details).response()
    return record, origin


def door(inner: Inner) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        admitted = await _admit(request)
        if isinstance(admitted, Response):
            return admitted
        record, origin = admitted
        headers = _cors(origin)
        wait = _limits(request).key(record.key)
        if wait > 0:
            return _too_many("with this client-side key", wait, headers)
        asked_env = request.headers.get(ENVIRONMENT_HEADER) or request.query_params.get("environment")
        asked_project = request.headers.get(PROJECT_HEADER) or request.query_params.get("project")
        if (asked_env is not None and asked_env.strip() != record.environment) or (
            asked_project is not None and asked_project.strip() != record.project
        ):
            details = f"this client-side key evaluates environment {record.environment!r} only"
            response = OfrepFailure(403, "GENERAL", details).response()
        else:
            caller = Caller(record.project, record.environment, record)
            try:
                response = await inner(request, caller, headers)
            except TooLarge as exc:
                response = OfrepFailure(413, "GENERAL", exc.message).response()
        response.headers.update(headers)
        return response

    return handler


async def _flags(request: Request, caller: Caller, headers: dict[str, str]) -> Response:
    return await answer_flags(request, caller, CLIENT_MAX_BODY)


async def _flag(request: Request, caller: Caller, headers: dict[str, str]) -> Response:
    return await answer_flag(request, caller, request.path_params["key"], CLIENT_MAX_BODY)


async def _events(request: Request, caller: Caller, headers: dict[str, str]) -> Response:
    return await stream_events(request, caller, headers)


async def preflight(request: Request) -> Response:
    """A browser's CORS preflight: 204 with the allowed method and headers for an allowed origin of a live key."""
    admitted = await _admit(request)
    if isinstance(admitted, Response):
        return admitted
    _, origin = admitted
    if origin is None:
        return OfrepFailure(400, "GENERAL", "a preflight needs an Origin header").response()
    headers = {
        **_cors(origin),
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }
    return Response(status_code=204, headers=headers)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.client_keys = None
    if getattr(app.state, "client_limits", None) is None:
        app.state.client_limits = ClientLimits()
    try:
        app.state.client_keys = await ClientKeyStore.open(app.state.nc)
    except Exception as exc:  # e.g. an old NATS user without the bucket: the rest of the API still works
        log.warning("client-side keys: unavailable (cannot open the KV bucket): %r", exc)
    yield


def _management(base: str, suffix: str) -> list[Endpoint]:
    coll = f"{base}/environments/{{environment}}/client-keys"
    return [
        Endpoint("GET", coll, list_keys, f"listClientKeys{suffix}", "List the client-side keys of an environment",
                 CLIENT_KEYS_TAG, None, ClientKeyList),
        Endpoint("POST", coll, create_key, f"createClientKey{suffix}",
                 f"Create a client-side key (public: for web pages and mobile apps; origins: at most {ORIGINS_MAX})",
                 CLIENT_KEYS_TAG, ClientKeyBody, ClientKey, 201, write=True),
        Endpoint("DELETE", f"{coll}/{{key}}", revoke_key, f"revokeClientKey{suffix}", "Revoke a client-side key",
                 CLIENT_KEYS_TAG, None, ClientKey, write=True),
    ]  # fmt: skip


_DOOR_STATUSES = (400, 401, 403, 404, 413, 429)

ENDPOINTS: list[Endpoint] = [
    *_management(f"{API}/projects/{{project}}", ""),
    *_management(API, "Default"),
    Endpoint("POST", f"{DOOR}/evaluate/flags", door(_flags), "clientEvaluateFlagsBulk",
             "OFREP for browsers and apps: evaluate every flag available to client-side apps (a client-side key)",
             "client-side", OfrepEvaluationRequest, OfrepBulkEvaluation, extra_statuses=_DOOR_STATUSES, public=True),
    Endpoint("POST", f"{DOOR}/evaluate/flags/{{key}}", door(_flag), "clientEvaluateFlag",
             "OFREP for browsers and apps: evaluate one flag available to client-side apps", "client-side",
             OfrepEvaluationRequest, OfrepEvaluation, extra_statuses=_DOOR_STATUSES, public=True),
    Endpoint("GET", f"{CLIENT}/{{client_key}}{EVENTS}", door(_events), "clientEventStream",
             "OFREP event stream for browsers: refetchEvaluation when a flag available to client-side apps changes",
             "client-side", extra_statuses=_DOOR_STATUSES, public=True),
    Endpoint("OPTIONS", f"{DOOR}/evaluate/flags", preflight, "clientPreflightBulk", "CORS preflight",
             "client-side", status=204, extra_statuses=(400, 401, 403, 429), public=True),
    Endpoint("OPTIONS", f"{DOOR}/evaluate/flags/{{key}}", preflight, "clientPreflightFlag", "CORS preflight",
             "client-side", status=204, extra_statuses=(400, 401, 403, 429), public=True),
    Endpoint("OPTIONS", f"{CLIENT}/{{client_key}}{EVENTS}", preflight, "clientPreflightEvents", "CORS preflight",
             "client-side", status=204, extra_statuses=(400, 401, 403, 429), public=True),
]  # fmt: skip
