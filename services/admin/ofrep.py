"""Admin feature module: OFREP, the OpenFeature Remote Evaluation Protocol (v0.3.0, see ``docs/ofrep.md``).

``POST /ofrep/v1/evaluate/flags/{key}`` evaluates one flag, ``POST /ofrep/v1/evaluate/flags`` every active flag
(with an ``ETag``; ``If-None-Match`` answers 304 while neither the flags nor the context changed). Evaluations
run on a live in-memory ruleset per environment (``services/ofrep/evaluator.py``), with the SDK's own engine. A bulk
answer names the event stream (``eventStreams``, served by ``ofrep_events.py``); a re-fetch it prompted carries
``flagConfigEtag`` and waits until this replica has that change (``caught_up``).

Which environment: the ``X-Flagstream-Environment`` and ``X-Flagstream-Project`` headers (or the ``environment``
and ``project`` query parameters), by default ``production`` of project ``default``. :func:`where` is the one
place that decides it (an SDK-scoped API token naming an environment is meant to decide it there).

Context: OFREP's ``{"targetingKey": "u1", ...attributes}`` becomes the Flagstream context exactly as the
in-process OpenFeature provider (``flagstream.openfeature``) maps an ``EvaluationContext``: the ``user`` context
``{"key": "u1", ...}``; an attribute ``kind`` names another kind; ``kind: "multi"`` makes every mapping-valued
attribute a member of that kind, the targeting key and plain attributes the ``user`` member.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
from msgspec import UNSET, Struct, UnsetType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...context import normalize
from ...evaluation import ErrorKind, EvaluationDetail, ReasonKind, rule_metadata
from ...events import DEFAULT_PROJECT, STREAM, whole_number
from ..changes import ENVIRONMENT, AdminError, NotFound, check_key
from ..clientkeys import ClientKey, ClientViews
from ..ofrep import EvaluatorPool, NotLoaded, PrivateAttributesError, redacted
from ..ofrep import split as split_private
from .routes import MAX_BODY, Endpoint, Query, json_response, read_body, service_of

log = logging.getLogger("flagstream.admin.ofrep")

OFREP = "/ofrep/v1"
#: The event stream (``ofrep_events.py``) that every bulk answer names in ``eventStreams``.
EVENTS = f"{OFREP}/events"
#: The client door's prefix: ``/client/<client-side key>`` + the OFREP paths (``clientside.py``).
CLIENT = "/client"
#: Seconds an OFREP client may be inactive before it closes its event stream (OFREP's default).
INACTIVITY_DELAY = 120
#: How long a re-fetch with a ``flagConfigEtag`` ahead of this replica's ruleset waits for it.
CATCH_UP = 2.0
ENVIRONMENT_HEADER = "X-Flagstream-Environment"
PROJECT_HEADER = "X-Flagstream-Project"
DEFAULT_ENVIRONMENT = "production"

# -- wire types (OFREP's JSON names) -----------------------------------------------------------------------

Metadata = dict[str, bool | int | float | str]


class OfrepEvaluationRequest(Struct, kw_only=True):
    """``{"context": {"targetingKey": "user-1", ...attributes}}``; no context evaluates for nobody."""

    context: dict[str, Any] | None = None


class OfrepEvaluation(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """One flag's evaluation: ``value``/``reason``/``variant`` on success, ``errorCode``/``errorDetails`` else."""

    key: str
    value: Any | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    variant: str | UnsetType = UNSET
    error_code: str | UnsetType = UNSET
    error_details: str | UnsetType = UNSET
    metadata: Metadata = {}


class EventStreamEndpoint(Struct, kw_only=True, rename="camel"):
    request_uri: str


class EventStream(Struct, kw_only=True, rename="camel"):
    """Where a provider gets change notifications: ``origin + endpoint.requestUri`` (the origin: its own)."""

    type: str
    endpoint: EventStreamEndpoint
    inactivity_delay_sec: int = INACTIVITY_DELAY


class OfrepBulkEvaluation(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    flags: list[OfrepEvaluation]
    metadata: Metadata = {}
    event_streams: list[EventStream] = []


class OfrepError(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """An OFREP error; ``error`` repeats the details under the admin API's own error field."""

    error_code: str
    error_details: str
    error: str
    key: str | UnsetType = UNSET


class OfrepFailure(Exception):
    """A request OFREP answers with an error body: ``status``, OFREP ``code``, human ``details``."""

    def __init__(self, status: int, code: str, details: str, key: str | None = None) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details
        self.key = key

    def response(self) -> Response:
        body = OfrepError(error_code=self.code, error_details=self.details, error=self.details)
        if self.key is not None:
            body.key = self.key
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return json_response(body, self.status, headers)


# -- pure mapping ------------------------------------------------------------------------------------------


def to_flagstream_context(raw: Any) -> Any:
    """The Flagstream context for an OFREP ``context`` (``None``: no context). Raises ``OfrepFailure`` (400).

    The same mapping as ``flagstream.openfeature.to_flagstream_context`` (see the module docstring).
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise OfrepFailure(400, "INVALID_CONTEXT", "context must be a JSON object")
    key = raw.get("targetingKey")
    if key is not None and not isinstance(key, str):
        raise OfrepFailure(400, "INVALID_CONTEXT", "context.targetingKey must be a string")
    attributes = {k: v for k, v in raw.items() if k != "targetingKey"}
    context: Any
    if not attributes:
        context = None if key is None else {"key": key}
    elif attributes.get("kind") != "multi":
        context = dict(attributes)
        if key is not None:
            context["key"] = key
    else:
        context = {"kind": "multi"}
        user: dict[str, Any] = {}
        for name, value in attributes.items():
            if name == "kind":
                continue
            if isinstance(value, Mapping):
                context[name] = value
            else:
                user[name] = value
        if key is not None or user:
            member = dict(context.get("user") or {})
            member.update(user)
            if key is not None:
                member["key"] = key
            context["user"] = member
    if normalize(context) is None:
        if key is None and not _has_member_key(attributes):
            raise OfrepFailure(400, "TARGETING_KEY_MISSING", "context.targetingKey is missing")
        raise OfrepFailure(
            400,
            "INVALID_CONTEXT",
            "context cannot be mapped: 'kind' must be a non-empty string; with kind 'multi', every mapping"
            " attribute is a context of that kind and needs a string 'key'",
        )
    return context


def _has_member_key(attributes: Mapping[str, Any]) -> bool:
    return attributes.get("kind") == "multi" and any(isinstance(v, Mapping) and "key" in v for v in attributes.values())


def ofrep_reason(detail: EvaluationDetail) -> str:
    """OpenFeature's reason for a successful evaluation (the same as the in-process provider's)."""
    reason = detail.reason
    kind = reason.kind
    if kind is ReasonKind.OFF:
        return "DISABLED"
    if kind is ReasonKind.TARGET_MATCH:
        return "TARGETING_MATCH"
    if kind is ReasonKind.RULE_MATCH:
        return "SPLIT" if reason.in_rollout else "TARGETING_MATCH"
    if kind is ReasonKind.FALLTHROUGH:
        return "SPLIT" if reason.in_rollout else "DEFAULT"
    # PREREQUISITE_FAILED: OpenFeature has no such reason (metadata "reason_kind" tells it).
    return "UNKNOWN"


#: Our error kinds as (HTTP status, OFREP error code).
ERRORS: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.FLAG_NOT_FOUND: (404, "FLAG_NOT_FOUND"),
    ErrorKind.MALFORMED_CONTEXT: (400, "INVALID_CONTEXT"),
    ErrorKind.MALFORMED_FLAG: (400, "PARSE_ERROR"),
    ErrorKind.WRONG_TYPE: (400, "TYPE_MISMATCH"),
    ErrorKind.CLIENT_NOT_READY: (503, "GENERAL"),
    ErrorKind.EXCEPTION: (500, "GENERAL"),
}

_DETAILS = {
    ErrorKind.FLAG_NOT_FOUND: "flag {key!r} was not found in environment {env!r}",
    ErrorKind.MALFORMED_CONTEXT: "the context cannot be used for flag {key!r}",
    ErrorKind.MALFORMED_FLAG: "flag {key!r} is stored in a form that cannot be evaluated",
    ErrorKind.WRONG_TYPE: "flag {key!r} has another type",
    ErrorKind.CLIENT_NOT_READY: "the flags of environment {env!r} are not loaded yet",
    ErrorKind.EXCEPTION: "evaluating flag {key!r} failed",
}


def _metadata(detail: EvaluationDetail, version: int | None) -> Metadata:
    reason = detail.reason
    metadata: Metadata = {"seq": detail.seq, "reason_kind": reason.kind.value}
    if version is not None:
        metadata["version"] = version
    metadata.update(rule_metadata(reason))
    return metadata


def evaluation(key: str, detail: EvaluationDetail, version: int | None, environment: str) -> OfrepEvaluation:
    """The OFREP item for one evaluation (a failure item when the evaluation is an error)."""
    reason = detail.reason
    if reason.kind is ReasonKind.ERROR:
        kind = reason.error_kind or ErrorKind.EXCEPTION
        details = _DETAILS[kind].format(key=key, env=environment)
        return OfrepEvaluation(
            key=key, error_code=ERRORS[kind][1], error_details=details, metadata=_metadata(detail, version)
        )
    return OfrepEvaluation(
        key=key,
        value=detail.value,
        reason=ofrep_reason(detail),
        variant=detail.variation if detail.variation is not None else UNSET,
        metadata=_metadata(detail, version),
    )


def bulk_etag(project: str, environment: str, seq: int, context: Any) -> str:
    """A strong ETag for a bulk answer: the environment's ruleset sequence and the context, hashed."""
    digest = hashlib.sha256(msgspec.json.encode([project, environment, seq, context], order="sorted"))
    return f'"{seq}-{digest.hexdigest()[:20]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    for candidate in if_none_match.split(","):
        value = candidate.strip().removeprefix("W/")
        if value == "*" or value == etag or f'"{value}"' == etag:
            return True
    return False


# -- HTTP --------------------------------------------------------------------------------------------------


def where(request: Request) -> tuple[str, str]:
    """(project, environment) of an OFREP request: headers, else query parameters, else the token's only
    environment, else ``production``. A token limited to environments may evaluate those only (403)."""
    principal = getattr(request.state, "principal", None)
    allowed: tuple[str, ...] | None = getattr(principal, "environments", None)
    asked = request.headers.get(ENVIRONMENT_HEADER) or request.query_params.get("environment")
    if asked is None:
        asked = allowed[0] if allowed is not None and len(allowed) == 1 else DEFAULT_ENVIRONMENT
    project = request.headers.get(PROJECT_HEADER) or request.query_params.get("project") or DEFAULT_PROJECT
    try:
        project, environment = check_key(project.strip(), "project"), check_key(asked.strip(), "environment")
    except AdminError as exc:
        raise OfrepFailure(400, "GENERAL", f"{exc.message} (from {PROJECT_HEADER}/{ENVIRONMENT_HEADER})") from None
    if principal is not None and not principal.covers(project, environment):
        raise OfrepFailure(
            403, "GENERAL", f"this token may not evaluate environment {environment!r} (only: {', '.join(allowed)})"
        )
    return project, environment


@dataclass(frozen=True)
class Caller:
    """Who asks, for which environment. ``client``: a client-side key (``clientside.py``): it sees only the flags
    available to client-side apps, no metadata, and ETags and events that follow only those (``ClientViews``)."""

    project: str
    environment: str
    client: ClientKey | None = None


@dataclass(frozen=True)
class Asked:
    """An evaluation request's context (as evaluated) and the names of its private attributes."""

    context: Any
    private: frozenset[str] = frozenset()


async def read_context(request: Request, limit: int = MAX_BODY) -> Asked:
    """The request's context; ``TooLarge`` (413) past ``limit`` bytes, ``OfrepFailure`` (400) if malformed."""
    body = await read_body(request, limit)
    if not body.strip():
        return Asked(None)
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise OfrepFailure(400, "PARSE_ERROR", f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise OfrepFailure(400, "PARSE_ERROR", "the request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise OfrepFailure(400, "PARSE_ERROR", 'the request body must be a JSON object: {"context": {...}}')
    try:
        raw, private = split_private(data.get("context"))
    except PrivateAttributesError as exc:
        raise OfrepFailure(400, "INVALID_CONTEXT", f"context.{exc}") from None
    return Asked(to_flagstream_context(raw), private)


def log_evaluation(caller: Caller, what: str, asked: Asked) -> None:
    """One debug line per evaluation request; private attribute values never reach it."""
    if log.isEnabledFor(logging.DEBUG):
        who = "client-side key" if caller.client is not None else "token"
        context = msgspec.json.encode(redacted(asked.context, asked.private)).decode()
        log.debug("ofrep %s/%s %s (%s): context %s", caller.project, caller.environment, what, who, context)


async def _ruleset_client(request: Request, project: str, environment: str) -> Any:
    pool: EvaluatorPool = request.app.state.evaluator
    if not pool.holds(project, environment):
        try:
            await service_of(request).get(ENVIRONMENT, project, environment, environment)
        except NotFound as exc:
            raise OfrepFailure(404, "FLAG_NOT_FOUND", f"{exc.message} (choose it with {ENVIRONMENT_HEADER})") from None
    try:
        return await pool.client(project, environment)
    except NotLoaded as exc:
        raise OfrepFailure(503, "GENERAL", str(exc)) from None


def _not_found(key: str, environment: str) -> OfrepError:
    details = _DETAILS[ErrorKind.FLAG_NOT_FOUND].format(key=key, env=environment)
    return OfrepError(key=key, error_code="FLAG_NOT_FOUND", error_details=details, error=details)


async def answer_flag(request: Request, caller: Caller, key: str, limit: int = MAX_BODY) -> Response:
    """``POST .../evaluate/flags/{key}`` for ``caller``."""
    try:
        asked = await read_context(request, limit)
        client = await _ruleset_client(request, caller.project, caller.environment)
    except OfrepFailure as failure:
        failure.key = key
        return failure.response()
    log_evaluation(caller, f"flag {key}", asked)
    if caller.client is not None and key not in views(request).of(client.ruleset).keys:
        return json_response(_not_found(key, caller.environment), 404)  # as a flag that does not exist
    detail = client.variation_detail(key, asked.context, None)
    item = evaluation(key, detail, client.ruleset.versions.get(f"flag/{key}"), caller.environment)
    if caller.client is not None:
        item.metadata = {}
    if item.error_code is not UNSET:
        kind = detail.reason.error_kind or ErrorKind.EXCEPTION
        status = ERRORS[kind][0]
        details = str(item.error_details)
        return json_response(OfrepError(key=key, error_code=str(item.error_code), error_details=details, error=details),
                             status)  # fmt: skip
    return json_response(item)


async def evaluate_flag(request: Request) -> Response:
    key = request.path_params["key"]
    try:
        project, environment = where(request)
    except OfrepFailure as failure:
        failure.key = key
        return failure.response()
    return await answer_flag(request, Caller(project, environment), key)


async def caught_up(request: Request, client: Any) -> None:
    """Wait (at most ``CATCH_UP``) until ``client`` has applied the sequence a re-fetch's ``flagConfigEtag``
    names (the etag of an event from ``ofrep_events``, maybe sent by another replica), if that sequence exists in
    the stream: a made-up one is not waited for."""
    raw = request.query_params.get("flagConfigEtag", "").strip().strip('"')
    asked = whole_number(raw)
    if asked is None or asked <= client.seq:
        return
    try:
        if asked > (await request.app.state.nc.jetstream().stream_info(STREAM)).state.last_seq:
            return
    except Exception:  # a hint only: answer with what this replica has
        log.warning("ofrep: cannot read the stream's last sequence; not waiting for flagConfigEtag=%s", asked)
        return
    await client.wait_for_sequence(asked, CATCH_UP)


def event_streams(request: Request, caller: Caller) -> list[EventStream]:
    root = request.scope.get("root_path", "")
    if caller.client is not None:
        uri = f"{root}{CLIENT}/{caller.client.key}{EVENTS}"
    else:
        uri = f"{root}{EVENTS}?{urlencode({'project': caller.project, 'environment': caller.environment})}"
    return [EventStream(type="sse", endpoint=EventStreamEndpoint(request_uri=uri))]


#: Content ETags of recent answers, by (door, project, environment, sequence, context digest): a revalidation
#: (If-None-Match) of a context answered since the last relevant change is a 304 without evaluating. In memory
#: only: the digest covers private attributes too, and never leaves the process.
Answered = dict[tuple[bool, str, str, int, bytes], str]
ANSWERED_MAX = 50_000


def views(request: Request) -> ClientViews:
    """What client-side keys see of each environment (``clientkeys.ClientViews``), this app's own."""
    return request.app.state.client_views  # type: ignore[no-any-return]


def _digest(context: Any) -> bytes:
    return hashlib.sha256(msgspec.json.encode(context, order="sorted")).digest()


def content_etag(flags: list[OfrepEvaluation]) -> str:
    """A strong ETag from the answer itself (the client door, and contexts with private attributes): it changes
    exactly when the answer does, and says nothing about the context or the rest of the environment."""
    digest = hashlib.sha256(msgspec.json.encode(flags, order="sorted"))
    return f'"c-{digest.hexdigest()[:24]}"'


async def answer_flags(request: Request, caller: Caller, limit: int = MAX_BODY) -> Response:
    """``POST .../evaluate/flags`` for ``caller``."""
    try:
        asked = await read_context(request, limit)
        client = await _ruleset_client(request, caller.project, caller.environment)
    except OfrepFailure as failure:
        return failure.response()
    log_evaluation(caller, "all flags", asked)
    await caught_up(request, client)
    ruleset = client.ruleset
    project, environment = caller.project, caller.environment
    by_sequence = caller.client is None and not asked.private
    if_none_match = request.headers.get("if-none-match")
    if by_sequence:  # answered before evaluating anything when nothing changed
        etag = bulk_etag(project, environment, ruleset.seq, asked.context)
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
    else:  # the answer's ETag, if this context was answered since the last change that could alter it
        answered: Answered = request.app.state.answered
        seq = views(request).of(ruleset).seq if caller.client is not None else ruleset.seq
        seen = (caller.client is not None, project, environment, seq, _digest(asked.context))
        etag = answered.get(seen, "")
        if etag and etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
    metadata: Metadata = {}
    if caller.client is not None:
        keys: Any = views(request).of(ruleset).keys
    else:
        keys = [key for key in sorted(ruleset.flags) if not ruleset.flags[key].archived]
        metadata = {"seq": ruleset.seq, "project": project, "environment": environment}
    versions = ruleset.versions
    flags = [
        evaluation(key, client.variation_detail(key, asked.context, None), versions.get(f"flag/{key}"), environment)
        for key in keys
    ]
    if caller.client is not None:
        for item in flags:
            item.metadata = {}
    if not by_sequence:
        etag = content_etag(flags)
        if len(answered) >= ANSWERED_MAX:
            answered.clear()
        answered[seen] = etag
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
    body = OfrepBulkEvaluation(flags=flags, metadata=metadata, event_streams=event_streams(request, caller))
    return json_response(body, headers={"ETag": etag})


async def evaluate_flags(request: Request) -> Response:
    try:
        project, environment = where(request)
    except OfrepFailure as failure:
        return failure.response()
    return await answer_flags(request, Caller(project, environment))


def same_credentials(nc: Any) -> dict[str, Any]:
    """The admin connection's own NATS credentials and TLS, for the evaluator's clients."""
    options = getattr(nc, "options", {})
    keys = ("user", "password", "token", "tls", "tls_hostname")
    return {k: options[k] for k in keys if options.get(k) is not None}


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    nc = app.state.nc
    servers = [url.geturl() for url in nc.servers]
    pool = EvaluatorPool(servers, name="flagstream-admin-ofrep", connect_options=same_credentials(nc))
    app.state.evaluator = pool
    app.state.client_views = ClientViews()
    app.state.answered = {}  # content ETags of recent answers (``answer_flags``)
    try:
        yield
    finally:
        await pool.close()


ENDPOINTS: list[Endpoint] = [
    Endpoint("POST", f"{OFREP}/evaluate/flags/{{key}}", evaluate_flag, "evaluateFlag",
             "OFREP: evaluate one flag (environment from X-Flagstream-Environment, default production)", "ofrep",
             OfrepEvaluationRequest, OfrepEvaluation, extra_statuses=(400, 404, 503)),
    Endpoint("POST", f"{OFREP}/evaluate/flags", evaluate_flags, "evaluateFlagsBulk",
             "OFREP: evaluate every flag (ETag; If-None-Match gives 304 while nothing changed)", "ofrep",
             OfrepEvaluationRequest, OfrepBulkEvaluation, extra_statuses=(304, 400, 404, 503),
             query=(Query("flagConfigEtag", "the etag of the event stream's refetchEvaluation that prompted this "
                                            "request: the answer waits until this replica has that change"),)),
]  # fmt: skip
