"""The admin application: Starlette routes built from the route table, the NATS connection in the lifespan,
and the ONE mapping from domain errors to HTTP responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.errors import ConnectionClosedError, NoServersError
from nats.js.errors import APIError, NoStreamResponseError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..changes import (
    AdminError,
    AdminService,
    Conflict,
    CorruptEvent,
    EventStore,
    InvalidInput,
    MalformedRequest,
    NotFound,
    NotPermitted,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from ..clientkeys import ClientLimits
from ..history import HistorySource
from ..people import People, PeopleConfig, SignInFailed, SignInRefused
from ..runtime import ensure_metrics_stream, ensure_stream, while_jetstream_settles
from ..tokens import SharedRateLimiter, TokenStore
from ..webhooks import AddressPolicy
from . import auth
from . import people as people_routes
from .metrics import install as install_metrics
from .openapi import build_openapi
from .registry import all_endpoints, feature_modules
from .requests import gate
from .responses import ErrorBody, record
from .routes import Handler, json_response, path_pattern

log = logging.getLogger("flagstream.admin")

T = TypeVar("T")


async def _while_jetstream_settles(what: str, attempt: Callable[[], Awaitable[T]], wait: float) -> T:
    """``stream.while_jetstream_settles``, failing with 503 ``Unavailable``."""
    return await while_jetstream_settles(what, attempt, wait, failure=Unavailable)


STATUS: dict[type[AdminError], int] = {
    MalformedRequest: 400,
    NotFound: 404,
    Conflict: 409,
    NotPermitted: 403,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    Unavailable: 503,
    auth.Unauthorized: 401,
    auth.Forbidden: 403,
    auth.RateLimited: 429,
    SignInRefused: 401,
    SignInFailed: 401,
}


def error_response(exc: Exception) -> Response:
    """Every error a client can get, in one place: domain errors, HTTP errors, NATS failures."""
    if isinstance(exc, AdminError):
        status = next(code for cls, code in STATUS.items() if isinstance(exc, cls))
        body = ErrorBody(error=exc.message)
        if isinstance(exc, InvalidInput):
            body.problems = exc.problems
        if isinstance(exc, Conflict) and exc.current is not None:
            body.version = exc.current.seq
            body.current = record(exc.current)
        elif isinstance(exc, Conflict) and exc.version is not None:
            body.version = exc.version
        return json_response(body, status, dict(getattr(exc, "headers", None) or {}))
    if isinstance(exc, HTTPException):
        return json_response(ErrorBody(error=str(exc.detail)), exc.status_code, dict(exc.headers or {}))
    if isinstance(exc, ConnectionClosedError | NoServersError | TimeoutError | NoStreamResponseError | APIError):
        log.warning("event store unavailable: %r", exc)
        return json_response(ErrorBody(error=f"the event store is unavailable: {exc!r}"), 503)
    if isinstance(exc, CorruptEvent):
        log.error("%s", exc)
        return json_response(ErrorBody(error=str(exc)), 500)
    log.exception("unexpected error", exc_info=exc)
    return json_response(ErrorBody(error="internal error"), 500)


async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        # Each (method, path) of the route table is its own Starlette route, so the one that matched the path
        # names only its own method: Allow lists every method of the path.
        methods = {m for pattern, m in request.app.state.methods_of if pattern.match(request.url.path)}
        allowed = sorted(set().union(*methods) | ({"HEAD"} if any("GET" in m for m in methods) else set()))
        exc = HTTPException(405, detail=exc.detail, headers={"Allow": ", ".join(allowed)})
    return error_response(exc)


def _whole(route: Route) -> Route:
    """The route matching a request path whole (``path_pattern``: not one more final newline)."""
    route.path_regex = path_pattern(route.path)[0]
    return route


def _guarded(handler: Handler) -> Handler:
    """Turn any error of a handler into its HTTP answer (so nothing escapes to the server as a crash)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return error_response(exc)

    return endpoint


def _nats_error_log() -> Callable[[Exception], Awaitable[None]]:
    """NATS connection errors, one line each, and the same one only once in a row (no retry spam)."""
    last = ""

    async def on_error(exc: Exception) -> None:
        nonlocal last
        line = f"NATS: {exc!r}"
        if line != last:
            log.warning("%s", line)
        last = line

    return on_error


def create_app(
    *,
    nats_url: str,
    actor_header: str = "X-Flagstream-Actor",
    connect_wait: float = 30.0,
    read_model: Path | None = None,
    history_db: Path | None = None,
    operator_token: str | None = None,
    write_rate: float = 10.0,
    write_burst: int = 50,
    nats_options: dict[str, Any] | None = None,
    webhook_allow: AddressPolicy | Iterable[str] = (),
    client_limits: ClientLimits | None = None,
    people: PeopleConfig | None = None,
    prometheus_url: str | None = None,
    plan_lease: float | None = None,
    snapshot_lease: float | None = None,
    snapshot_interval: float | None = None,
) -> Starlette:
    """The admin API. Its lifespan connects to NATS (waiting up to ``connect_wait`` seconds) and makes sure the
    stream exists; it closes on shutdown. Once connected, it reconnects forever (``/readyz`` tells meanwhile).
    ``read_model``: a read model another part folds (the projector of ``flagstream up``), for history and time
    travel; ``history_db``: fold the log into this file in this process instead (an admin replica of its own, see
    ``services/history/source.py``). Neither: the history routes answer 503 naming ``--history-db``.
    ``operator_token``: the bootstrap admin token (see ``auth.py``); other tokens live in NATS (``services/tokens``).
    Without it, only tokens created earlier are accepted. ``write_rate``/``write_burst``: writes per second per
    API token (the operator token is not limited). ``nats_options``: more ``nats.connect`` arguments (NATS user
    and password, ``tls``: an ``ssl.SSLContext``). ``webhook_allow``: networks, addresses and host names webhooks
    may send to besides public addresses (``services/webhooks/address.py``; ValueError for one that is none).
    ``client_limits``: requests per second of the client door (browsers and apps with a client-side key)
    per client address and per key (``clientside.py``).
    ``people``: how people sign in (``services/people``; default: local users with passwords, no single sign-on).
    ``prometheus_url``: the Prometheus server release plans' PromQL guardrails ask (``services/release``);
    ``plan_lease``: seconds without a renewal after which another replica takes a release plan over (default 10).
    ``snapshot_lease``, ``snapshot_interval``: the same for the environment snapshots' writer (default 10), and
    the least seconds between two snapshots of an environment (default 2; ``services/snapshots``).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    nats_url,
                    name="flagstream-admin",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=_nats_error_log(),
                    **(nats_options or {}),
                ),
                connect_wait,
            )
        except TimeoutError:
            raise Unavailable(f"cannot connect to NATS at {nats_url} within {connect_wait:g}s") from None
        try:
            js = nc.jetstream()
            await _while_jetstream_settles("the event stream", lambda: ensure_stream(js), connect_wait)
            await _while_jetstream_settles("the metrics stream", lambda: ensure_metrics_stream(js), connect_wait)
            app.state.auth.store = await _while_jetstream_settles(
                "the token bucket", lambda: TokenStore.open(nc), connect_wait
            )
            app.state.auth.people = await _while_jetstream_settles(
                "the people's buckets", lambda: People.open(nc, people), connect_wait
            )
            await _while_jetstream_settles(
                "the rate-limit bucket", lambda: app.state.auth.limiter.attach(nc), connect_wait
            )
            app.state.nc = nc
            app.state.service = AdminService(EventStore(nc))
            async with contextlib.AsyncExitStack() as features:
                for module in feature_modules():
                    if hasattr(module, "lifespan"):
                        await features.enter_async_context(module.lifespan(app))
                yield
        finally:
            await nc.close()

    # Every write that changes an environment passes the change-request gate (202 where approvals are needed).
    endpoints = [gate(e) for e in [*all_endpoints(), *auth.ENDPOINTS]]
    routes = [
        _whole(Route(e.path, _guarded(auth.protect(e)), methods=[e.method], name=e.operation_id)) for e in endpoints
    ]
    handlers = {HTTPException: _on_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)  # type: ignore[arg-type]
    app.state.actor_header = actor_header
    app.state.webhook_policy = (
        webhook_allow if isinstance(webhook_allow, AddressPolicy) else AddressPolicy.parse(webhook_allow)
    )
    paths: dict[str, set[str]] = {}
    for e in endpoints:
        paths.setdefault(e.path, set()).add(e.method)
    app.state.methods_of = [(path_pattern(path)[0], frozenset(methods)) for path, methods in paths.items()]
    app.state.closing = asyncio.Event()  # set when the server starts to stop: event streams end (streams.py)
    app.state.auth = auth.Authenticator(operator_token, SharedRateLimiter(write_rate, write_burst))
    if read_model is not None and history_db is not None:
        raise ValueError("give read_model (folded by another part) or history_db (folded here), not both")
    if history_db is not None:
        app.state.history = HistorySource.folding(history_db, nats_url=nats_url, connect_options=nats_options)
    elif read_model is not None:
        app.state.history = HistorySource(read_model)
    else:
        app.state.history = None
    # Where the SDK credentials' creation checks that nats-server accepts them (services/admin/sdkcredentials.py).
    app.state.sdk_nats_url, app.state.sdk_nats_options = nats_url, nats_options
    app.state.client_limits = client_limits if client_limits is not None else ClientLimits()
    app.state.prometheus_url = prometheus_url
    if plan_lease is not None:
        app.state.plan_lease = plan_lease
    app.state.snapshot_lease, app.state.snapshot_interval = snapshot_lease, snapshot_interval
    app.state.openapi = auth.document_security(build_openapi(endpoints, actor_header=actor_header), endpoints)
    # Request metrics for GET /metrics (services/admin/metrics.py): a middleware times every request.
    install_metrics(app)
    # The provider's answers carry an authorization code in their query: never in the access log.
    people_routes.redact_sign_in_answers()
    return app
