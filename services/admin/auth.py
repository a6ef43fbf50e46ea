"""Who is calling, and may they: bearer tokens on every admin route, roles per route, environments per token.

``protect(endpoint)`` wraps a route's handler (``app.py`` does it for every route):

* ``public`` endpoints (``/healthz``, ``/readyz``, ``/openapi.json``) are open;
* otherwise ``Authorization: Bearer <token>`` is required: 401 without it or with a token that is unknown,
  malformed or revoked; 403 when the token's role is too low (reads need ``reader``, writes ``writer``, token
  management ``admin`` with every environment) or the route's ``{environment}`` is not one of the token's;
* writes are rate limited per token, across every admin replica (``shared_rate.SharedRateLimiter``): 429 with
  ``Retry-After``.

The caller (``Principal``) is put on ``request.state.principal``; ``routes.resolve_actor`` records its name.
The operator token given at start (``create_app(operator_token=...)``) is an ``admin`` of every environment
named ``operator``; it is held only as a SHA-256 digest and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..changes import AdminError, InvalidInput, NotFound, check_key, convert, parse_json
from ..tokens import Role, SharedRateLimiter, TokenStore, TokenView, check_name, view
from .routes import API, Endpoint, Handler, json_response, read_body

log = logging.getLogger("flagstream.admin.auth")

OPERATOR = "operator"
TOKENS_TAG = "tokens"
WEBHOOKS_TAG = "webhooks"
CLIENT_KEYS_TAG = "client-keys"
#: Routes only an admin token may use: who gets in (tokens, client-side keys), and where changes are sent.
ADMIN_TAGS = (TOKENS_TAG, WEBHOOKS_TAG, CLIENT_KEYS_TAG)


class Unauthorized(AdminError):
    """No credentials, or credentials that prove nothing (401)."""

    headers = {"WWW-Authenticate": 'Bearer realm="flagstream"'}


class Forbidden(AdminError):
    """A known caller without the right to this route or environment (403)."""


class RateLimited(AdminError):
    """Too many writes for this token right now (429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    #: None: every environment.
    environments: tuple[str, ...] | None
    #: None: the operator token.
    token_id: str | None

    def covers(self, environment: str) -> bool:
        return self.environments is None or environment in self.environments


class Authenticator:
    """Checks bearer tokens against the operator token and the token store (set once NATS is up)."""

    def __init__(self, operator_token: str | None, limiter: SharedRateLimiter) -> None:
        self._operator = hashlib.sha256(operator_token.encode()).digest() if operator_token else None
        self.store: TokenStore | None = None
        self.limiter = limiter

    async def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            raise Unauthorized("authentication required: send Authorization: Bearer <token>")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be: Bearer <token>")
        presented = hashlib.sha256(token.encode()).digest()
        if self._operator is not None and hmac.compare_digest(presented, self._operator):
            return Principal(OPERATOR, Role.ADMIN, None, None)
        record = await self.store.verify(token) if self.store is not None else None
        if record is None:
            raise Unauthorized("invalid or revoked token")
        envs = tuple(record.environments) if record.environments is not None else None
        return Principal(record.name, record.role, envs, record.id)


def required_role(endpoint: Endpoint) -> Role:
    if endpoint.tag in ADMIN_TAGS:
        return Role.ADMIN
    return Role.WRITER if endpoint.write else Role.READER


def authorize(principal: Principal, endpoint: Endpoint, environment: str | None) -> None:
    needed = required_role(endpoint)
    if not principal.role.allows(needed):
        raise Forbidden(
            f"token {principal.name!r} has the role {principal.role}; {endpoint.method} {endpoint.path} needs {needed}"
        )
    if environment is not None and not principal.covers(environment):
        allowed = ", ".join(principal.environments or ())
        raise Forbidden(f"token {principal.name!r} may not act on environment {environment!r} (only: {allowed})")
    if environment is None and principal.environments is not None and (endpoint.write or needed is Role.ADMIN):
        raise Forbidden(
            f"token {principal.name!r} is limited to environments ({', '.join(principal.environments)}); "
            f"{endpoint.method} {endpoint.path} needs a token for every environment"
        )


def protect(endpoint: Endpoint) -> Handler:
    """The endpoint's handler behind authentication, authorization and (for writes) the rate limit."""
    handler = endpoint.handler
    if endpoint.public:
        return handler

    async def guarded(request: Request) -> Response:
        auth: Authenticator = request.app.state.auth
        principal = await auth.authenticate(request)
        authorize(principal, endpoint, request.path_params.get("environment"))
        request.state.principal = principal
        if endpoint.write and principal.token_id is not None:
            wait = await auth.limiter.take(principal.token_id)
            if wait > 0:
                raise RateLimited(f"too many writes with token {principal.name!r}; retry in {wait:.1f}s", wait)
        return await handler(request)

    return guarded


def document_security(document: bytes, endpoints: list[Endpoint]) -> bytes:
    """The OpenAPI document with the bearer scheme: required everywhere but on public endpoints, and the 401, 403
    (and, for writes, 429) answers each protected operation can give."""
    doc = msgspec.json.decode(document)
    doc.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (fs_...) or the operator token"}
    }
    doc["security"] = [{"bearer": []}]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    answers = {
        "401": "no token, or an unknown or revoked one",
        "403": "the token's role or environments do not allow this",
        "429": "too many writes with this token (see Retry-After)",
    }
    for e in endpoints:
        operation = doc["paths"].get(e.path, {}).get(e.method.lower())
        if operation is None:
            continue
        if e.public:
            operation["security"] = []
            continue
        responses = operation.setdefault("responses", {})
        for status, text in answers.items():
            if status != "429" or e.write:
                responses.setdefault(status, {"description": text, "content": error})
    return msgspec.json.encode(doc)


# -- token management endpoints ----------------------------------------------------------------------------


class TokenBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    role: Role
    #: Environment keys; omitted or null: every environment.
    environments: list[str] | None = None


class TokenList(msgspec.Struct, kw_only=True):
    items: list[TokenView]


def _store(request: Request) -> TokenStore:
    store = request.app.state.auth.store
    assert store is not None
    return store  # type: ignore[no-any-return]


def _by(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.name


async def create_token(request: Request) -> Response:
    body = convert(parse_json(await read_body(request)), TokenBody)
    problem = check_name(body.name)
    if problem:
        raise InvalidInput(problem)
    envs = [check_key(e, "environment") for e in body.environments] if body.environments is not None else None
    if envs is not None and not envs:
        raise InvalidInput("environments: give at least one environment key, or omit it for every environment")
    record, secret = await _store(request).create(
        name=body.name, role=body.role, environments=envs, created_by=_by(request)
    )
    log.info("token %s (%s, %s) created by %s", record.id, record.name, record.role, _by(request))
    return json_response(view(record, secret), 201, {"Location": f"{API}/tokens/{record.id}"})


async def list_tokens(request: Request) -> Response:
    show = request.query_params.get("revoked", "false")
    records = await _store(request).list()
    if show == "false":
        records = [r for r in records if not r.revoked]
    return json_response(TokenList(items=[view(r) for r in records]))


async def revoke_token(request: Request) -> Response:
    token_id = request.path_params["id"]
    record = await _store(request).revoke(token_id, _by(request))
    if record is None:
        raise NotFound(f"token {token_id!r} not found")
    log.info("token %s (%s) revoked by %s", record.id, record.name, _by(request))
    return json_response(view(record))


class Identity(msgspec.Struct, kw_only=True):
    """Who the presented token is: the name every change it makes is recorded under."""

    name: str
    role: Role
    #: None: every environment.
    environments: list[str] | None


async def whoami(request: Request) -> Response:
    principal: Principal = request.state.principal
    envs = list(principal.environments) if principal.environments is not None else None
    return json_response(Identity(name=principal.name, role=principal.role, environments=envs))


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", f"{API}/whoami", whoami, "whoami", "Who the presented token is (name, role, environments)",
             "identity", None, Identity),
    Endpoint("GET", f"{API}/tokens", list_tokens, "listTokens", "List API tokens (never their secrets)", TOKENS_TAG,
             None, TokenList),
    Endpoint("POST", f"{API}/tokens", create_token, "createToken", "Create an API token (its secret is shown once)",
             TOKENS_TAG, TokenBody, TokenView, 201, write=True),
    Endpoint("DELETE", f"{API}/tokens/{{id}}", revoke_token, "revokeToken", "Revoke an API token", TOKENS_TAG,
             None, TokenView, write=True),
]  # fmt: skip
