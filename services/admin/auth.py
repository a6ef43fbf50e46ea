"""Who is calling, and may they: an API token or a person's session on every admin route, roles per route and
environment, CSRF on a session's writes.

``protect(endpoint)`` wraps a route's handler (``app.py`` does it for every route):

* ``public`` endpoints (``/healthz``, ``/readyz``, ``/openapi.json``, the UI's files, the sign-in routes) are open;
* otherwise the caller is ``Authorization: Bearer <token>`` (an API token: automation) or, without that header,
  the session cookie of a person signed in (``services/people``). 401 without either, or with a token that is
  unknown, malformed or revoked, or a session that is signed out, expired or ended;
* a session's request other than GET/HEAD must carry the session's CSRF token in ``X-CSRF-Token``: 403 without
  it or with a wrong one (a page elsewhere cannot make the browser write with the cookie);
* 403 when the caller's grants do not allow the route: reads need ``reader``, writes ``writer``, managing
  tokens, people and webhooks ``admin``, on the route's environment (or on every environment for a route that
  names none). Tokens and people are judged by the same function (``tokens.decide``);
* writes are rate limited per token or person, across every admin replica: 429 with ``Retry-After``.

The caller (``Principal``) is put on ``request.state.principal``; ``routes.resolve_actor`` records its name and
``routes.resolve_author`` who it is (a person's stable id, e-mail and how they signed in; a token's id).
The operator token given at start (``create_app(operator_token=...)``) is an ``admin`` of every environment
named ``operator``; it is held only as a SHA-256 digest and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ...events import DEFAULT_PROJECT, Author
from ..changes import AdminError, InvalidInput, NotFound, check_key, convert, parse_json
from ..people import People
from ..tokens import ANY, Grant, Role, SharedRateLimiter, TokenStore, TokenView, check_name, decide, highest, view
from .routes import API, Endpoint, Handler, json_response, read_body

log = logging.getLogger("flagstream.admin.auth")

OPERATOR = "operator"
TOKENS_TAG = "tokens"
WEBHOOKS_TAG = "webhooks"
CLIENT_KEYS_TAG = "client-keys"
SDK_CREDENTIALS_TAG = "sdk-credentials"
USERS_TAG = "users"
IDENTITY_TAG = "identity"
#: Routes only an admin may use: who gets in (tokens, client-side keys, SDK credentials, people), and where changes
#: are sent.
ADMIN_TAGS = (TOKENS_TAG, WEBHOOKS_TAG, CLIENT_KEYS_TAG, SDK_CREDENTIALS_TAG, USERS_TAG)
#: The session cookie (HttpOnly, SameSite=Lax, Secure over TLS) and the header a session's writes echo.
SESSION_COOKIE = "flagstream_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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
    """Who is calling: an API token (``kind="token"``) or a person signed in (``kind="person"``)."""

    name: str
    grants: tuple[Grant, ...]
    kind: Literal["token", "person"] = "token"
    #: A token's id (``operator`` for the operator token), or the person's stable id.
    id: str = OPERATOR
    email: str = ""
    #: How they signed in: ``token``, ``password`` or ``oidc`` (then ``issuer``).
    via: str = "token"
    issuer: str = ""
    #: The session's CSRF token (people only).
    csrf: str | None = None
    #: None: the operator token (not rate limited).
    token_id: str | None = None

    @property
    def role(self) -> Role | None:
        """The highest role held anywhere (what a token has; what the UI shows first)."""
        return highest(self.grants)

    @property
    def environments(self) -> tuple[str, ...] | None:
        """The environments the caller may act on; None: every one (a grant on ``*``)."""
        if any(g.environment == ANY for g in self.grants):
            return None
        return tuple(sorted({g.environment for g in self.grants}))

    def covers(self, project: str, environment: str) -> bool:
        """Whether any grant applies to ``environment`` of ``project``."""
        return any(g.on(project, environment) for g in self.grants)

    @property
    def who(self) -> str:
        return f"token {self.name!r}" if self.kind == "token" else f"{self.name!r}"

    @property
    def author(self) -> Author:
        return Author(kind=self.kind, id=self.id, name=self.name, email=self.email, via=self.via, issuer=self.issuer)

    @property
    def limit_key(self) -> str | None:
        return self.token_id if self.kind == "token" else f"person:{self.id}"


def token_grants(role: Role, environments: list[str] | tuple[str, ...] | None) -> tuple[Grant, ...]:
    """A token's role as grants: one per environment it is limited to, or one on every environment."""
    if environments is None:
        return (Grant(role=role),)
    return tuple(Grant(role=role, environment=e) for e in environments)


class Authenticator:
    """Checks bearer tokens against the operator token and the token store, and session cookies against the
    people's sessions (both set once NATS is up)."""

    def __init__(self, operator_token: str | None, limiter: SharedRateLimiter) -> None:
        self._operator = hashlib.sha256(operator_token.encode()).digest() if operator_token else None
        self.store: TokenStore | None = None
        self.people: People | None = None
        self.limiter = limiter

    async def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                return await self._session(request, cookie)
            raise Unauthorized("authentication required: sign in, or send Authorization: Bearer <token>")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be: Bearer <token>")
        presented = hashlib.sha256(token.encode()).digest()
        if self._operator is not None and hmac.compare_digest(presented, self._operator):
            return Principal(OPERATOR, token_grants(Role.ADMIN, None))
        record = await self.store.verify(token) if self.store is not None else None
        if record is None:
            raise Unauthorized("invalid or revoked token")
        grants = token_grants(record.role, record.environments)
        return Principal(record.name, grants, id=record.id, token_id=record.id)

    async def _session(self, request: Request, cookie: str) -> Principal:
        signed = await self.people.resolve(cookie) if self.people is not None else None
        if signed is None:
            raise Unauthorized("your session has ended (signed out, expired, or ended by an admin): sign in again")
        session, user = signed.session, signed.user
        principal = Principal(
            user.name, signed.grants, kind="person", id=user.id, email=user.email, via=session.via,
            issuer=session.issuer, csrf=session.csrf,
        )  # fmt: skip
        if request.method not in SAFE_METHODS and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
            raise Forbidden(
                f"a change made with a session needs its CSRF token in the {CSRF_HEADER} header "
                "(GET /api/v1/whoami gives it); missing or wrong"
            )
        return principal


def required_role(endpoint: Endpoint) -> Role:
    if endpoint.tag in ADMIN_TAGS:
        return Role.ADMIN
    return Role.WRITER if endpoint.write else Role.READER


def project_of(endpoint: Endpoint, request: Request) -> str | None:
    """The project a route acts on: its ``{project}``, the default project for the short forms, else None."""
    project = request.path_params.get("project")
    if project is not None:
        return str(project)
    if endpoint.path.startswith(f"{API}/environments"):
        return DEFAULT_PROJECT
    return None


def authorize(principal: Principal, endpoint: Endpoint, environment: str | None, project: str | None = None) -> None:
    if endpoint.tag == IDENTITY_TAG:
        return  # anyone signed in may ask who they are (a person given no role yet learns so)
    needed = required_role(endpoint)
    reason = decide(
        principal.who,
        principal.grants,
        needed,
        route=f"{endpoint.method} {endpoint.path}",
        project=project,
        environment=environment,
        every_environment=endpoint.write or needed is Role.ADMIN,
    )
    if reason is not None:
        raise Forbidden(reason)


def protect(endpoint: Endpoint) -> Handler:
    """The endpoint's handler behind authentication, authorization and (for writes) the rate limit."""
    handler = endpoint.handler
    if endpoint.public:
        return handler

    async def guarded(request: Request) -> Response:
        auth: Authenticator = request.app.state.auth
        principal = await auth.authenticate(request)
        authorize(principal, endpoint, request.path_params.get("environment"), project_of(endpoint, request))
        request.state.principal = principal
        key = principal.limit_key
        if endpoint.write and key is not None:
            wait = await auth.limiter.take(key)
            if wait > 0:
                raise RateLimited(f"too many writes by {principal.who}; retry in {wait:.1f}s", wait)
        return await handler(request)

    return guarded


def document_security(document: bytes, endpoints: list[Endpoint]) -> bytes:
    """The OpenAPI document with the bearer scheme: required everywhere but on public endpoints, and the 401, 403
    (and, for writes, 429) answers each protected operation can give."""
    doc = msgspec.json.decode(document)
    doc.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (fs_...) or the operator token"},
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": f"a person's session (POST /auth/password, single sign-on); writes also need {CSRF_HEADER}",
        },
    }
    doc["security"] = [{"bearer": []}, {"session": []}]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    answers = {
        "401": "no token or session, an unknown or revoked token, or a session that has ended",
        "403": "the caller's roles do not allow this here, or a session's change lacks its CSRF token",
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
    """Who the caller is: the name every change they make is recorded under, and what they may do."""

    name: str
    #: The highest role held anywhere (None: a person given no role yet).
    role: Role | None
    #: None: every environment.
    environments: list[str] | None
    #: ``token`` or ``person``.
    kind: str
    #: A token's id, or a person's stable id.
    id: str
    email: str
    #: ``token``, ``password`` or ``oidc``.
    via: str
    grants: list[Grant]
    #: A session's CSRF token, to send in X-CSRF-Token with every change (people only).
    csrf: str | None = None


async def whoami(request: Request) -> Response:
    principal: Principal = request.state.principal
    envs = list(principal.environments) if principal.environments is not None else None
    return json_response(
        Identity(
            name=principal.name, role=principal.role, environments=envs, kind=principal.kind, id=principal.id,
            email=principal.email, via=principal.via, grants=list(principal.grants), csrf=principal.csrf,
        )
    )  # fmt: skip


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", f"{API}/whoami", whoami, "whoami", "Who is calling: name, roles, and a session's CSRF token",
             IDENTITY_TAG, None, Identity),
    Endpoint("GET", f"{API}/tokens", list_tokens, "listTokens", "List API tokens (never their secrets)", TOKENS_TAG,
             None, TokenList),
    Endpoint("POST", f"{API}/tokens", create_token, "createToken", "Create an API token (its secret is shown once)",
             TOKENS_TAG, TokenBody, TokenView, 201, write=True),
    Endpoint("DELETE", f"{API}/tokens/{{id}}", revoke_token, "revokeToken", "Revoke an API token", TOKENS_TAG,
             None, TokenView, write=True),
]  # fmt: skip
