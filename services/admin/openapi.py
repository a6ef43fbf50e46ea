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
}

_STATUS_TEXT = {
    400: "Malformed request (bad JSON, bad key in the URL, bad header)",
    404: "Not found (the entity or its environment)",
    409: "Conflict: stale If-Match, already exists, archived; the body holds the current version and state",
    413: "Request body too large",
    422: "Invalid input: unknown field, wrong type, failed validation; the body names the field",
    503: "Not ready",
}


def build_openapi(
    endpoints: list[Endpoint],
    *,
    actor_header: str = "X-Flagstream-Actor",
    title: str = "Flagstream admin API",
    version: str = "1",
) -> bytes:
    types: list[Any] = [ErrorBody]
    for e in endpoints:
        for t in (e.request, e.response):
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
        ok: dict[str, Any] = {"description": "OK" if e.status == 200 else "Created"}
        if e.response is not None:
            ok["content"] = {JSON: {"schema": schema_of[e.response]}}
        responses: dict[str, Any] = {str(e.status): ok}
        statuses = (400, 404, 409, 413, 422) if e.write else (400, 404) if e.path.startswith("/api/") else ()
        for status in (*statuses, *e.extra_statuses):
            content = {JSON: {"schema": schema_of[e.response]}} if status == 503 and e.response else error
            responses[str(status)] = {"description": _STATUS_TEXT[status], "content": content}
        operation: dict[str, Any] = {
            "operationId": e.operation_id,
            "summary": e.summary,
            "tags": [e.tag],
            "parameters": params,
            "responses": responses,
        }
        if e.request is not None:
            operation["requestBody"] = {
                "required": e.request.__name__ not in ("ActionBody",),
                "content": {JSON: {"schema": schema_of[e.request]}},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = operation

    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
    return msgspec.json.encode(document)
