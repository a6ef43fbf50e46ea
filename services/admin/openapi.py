"""The OpenAPI 3.1 document, built from the route table and the msgspec types (never written by hand)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .responses import ErrorBody
from .routes import Endpoint

_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{name}"
JSON = "application/json"

_PATH_HELP = {
    "project": "project key (letters, digits, '-' and '_'); the short form without it means 'default'",
    "environment": "environment key",
    "key": "flag or segment key (letters, digits, '-' and '_')",
    "client_key": "a client-side key (fsc_...): public, it opens only the flags available to client-side apps",
}

_STATUS_TEXT = {
    202: "Accepted as a change request: the environment's changes need approvals (the body is the request opened, "
    "Location its address); nothing changed yet",
    304: "Not modified: the If-None-Match ETag is still current",
    400: "Malformed request (bad JSON, bad key in the URL, bad header or query parameter)",
    401: "Not signed in: an unknown or revoked key, a wrong login or password, or a sign-in answer refused",
    403: "Not allowed (an origin or environment the key does not allow)",
    404: "Not found (the entity or its environment)",
    409: "Conflict: stale If-Match, already exists, archived; the body holds the current version and state",
    413: "Request body too large",
    415: "The body's Content-Type is not one this route takes",
    422: "Invalid input: unknown field, wrong type, failed validation, a sequence beyond the log; the body names it",
    429: "Too many requests (see Retry-After)",
    503: "Unavailable: NATS, the event stream, the read model or a feature's store cannot be reached now",
}

#: Request bodies that may be left out (an empty body is read as ``{}``).
_OPTIONAL_BODIES = ("ActionBody", "OfrepEvaluationRequest")


def statuses_of(e: Endpoint) -> list[int]:
    """Every error status the endpoint can answer besides its own (auth.py adds 401, 403 and 429): a route under
    /api/ reads keys from its URL (400), finds entities (404) and needs NATS (503); a body can be malformed JSON
    (400), too large (413) and, under /api/, invalid (422); a write can conflict (409)."""
    statuses = set(e.extra_statuses)
    api = e.path.startswith("/api/")
    if api:
        statuses |= {400, 404, 503}
    if e.request is not None:
        statuses |= {400, 413} | ({422} if api else set())
    if e.write:
        statuses.add(409)
    return sorted(statuses - {e.status})


def build_openapi(
    endpoints: list[Endpoint],
    *,
    actor_header: str = "X-Flagstream-Actor",
    title: str = "Flagstream admin API",
    version: str = "1",
) -> bytes:
    types: list[Any] = [ErrorBody]
    for e in endpoints:
        for t in (e.request, e.response, e.accepted):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, schemas, strict=True))
    error = {JSON: {"schema": schema_of[ErrorBody]}}

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        params: list[dict[str, Any]] = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": _PATH_HELP.get(n, n),
            }
            for n in _PARAM.findall(e.path)
        ]
        for q in e.query:
            schema: dict[str, Any] = {"type": "string"}
            if q.enum:
                schema["enum"] = list(q.enum)
            params.append(
                {"name": q.name, "in": "query", "required": False, "schema": schema, "description": q.description}
            )
        if e.write:
            params += [
                {"name": actor_header, "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "who makes the change (default: anonymous)"},
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "a retried write with the same key lands once and gets the same answer"},
                {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the version (ETag) the change is based on; another current version is a 409"},
            ]  # fmt: skip
        ok: dict[str, Any] = {"description": {200: "OK", 201: "Created", 204: "No Content", 303: "See Other"}[e.status]}
        if e.response is not None:
            ok["content"] = {JSON: {"schema": schema_of[e.response]}}
        responses: dict[str, Any] = {str(e.status): ok}
        for status in statuses_of(e):
            # /readyz answers 503 with its own body; a 304 has none; every other error is an ErrorBody (or, for a
            # page a browser is sent to, that page).
            own = status == 503 and e.public and e.response is not None
            content = {JSON: {"schema": schema_of[e.response]}} if own else error
            if status == 202 and e.accepted is not None:
                content = {JSON: {"schema": schema_of[e.accepted]}}
            if e.error_media_type != JSON:
                content = {e.error_media_type: {"schema": {"type": "string"}}}
            responses[str(status)] = {"description": _STATUS_TEXT[status]}
            if status != 304:
                responses[str(status)]["content"] = content
        operation: dict[str, Any] = {
            "operationId": e.operation_id,
            "summary": e.summary,
            "tags": [e.tag],
            "parameters": params,
            "responses": responses,
        }
        if e.request is not None:
            operation["requestBody"] = {
                "required": e.request.__name__ not in _OPTIONAL_BODIES,
                "content": {media: {"schema": schema_of[e.request]} for media in e.content_types},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = operation

    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
    return msgspec.json.encode(document)
