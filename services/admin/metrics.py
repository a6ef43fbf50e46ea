"""Prometheus metrics of the admin service: ``GET /metrics`` (a reader token, like every API read).

``install(app)`` (called by ``create_app``) puts an ``AdminMetrics`` on ``app.state.metrics`` and a small ASGI
middleware timing every request, labelled by the route's path template (``/api/v1/projects/{project}/...``,
never the raw path: bounded label values) or ``unmatched``. The lifespan counts the events the service appends
and, when the fleet feature runs, reports the SDK instances it sees connected.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..runtime import AdminMetrics, exposition
from .routes import Endpoint

if TYPE_CHECKING:
    from ..fleet import Fleet

UNMATCHED = "unmatched"


def install(app: Starlette, metrics: AdminMetrics | None = None) -> AdminMetrics:
    """Metrics for ``app``: on ``app.state.metrics``, requests timed by a middleware. ``metrics``: to share a
    registry (``flagstream up`` may add the projector's to it)."""
    metrics = metrics if metrics is not None else AdminMetrics()
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app.routes)
    return metrics


class RequestMetrics:
    """Pure ASGI middleware: status and duration of each HTTP request, by route template and method."""

    def __init__(self, app: ASGIApp, metrics: AdminMetrics, routes: list[Any]) -> None:
        self.app = app
        self.metrics = metrics
        #: endpoint callable -> path template (Starlette puts the matched endpoint in the scope).
        self.templates = {r.endpoint: r.path for r in routes if isinstance(r, Route)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.templates.get(scope.get("endpoint"), UNMATCHED)
            self.metrics.request(route, scope["method"], status, time.perf_counter() - started)


def _connected_instances(app: Starlette) -> dict[tuple[str, str], int]:
    """Connected SDK instances per (project, environment), as this replica's fleet aggregator counts them."""
    fleet: Fleet | None = getattr(app.state, "fleet", None)
    return {} if fleet is None else fleet.aggregator.connected_counts()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    metrics: AdminMetrics | None = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.count_appends(app.state.service.store)
        if not getattr(app.state, "metrics_fleet_watched", False):  # once per registry, even if restarted
            metrics.watch_fleet(lambda: _connected_instances(app))
            app.state.metrics_fleet_watched = True
    yield


async def scrape(request: Request) -> Response:
    metrics: AdminMetrics | None = getattr(request.app.state, "metrics", None)
    if metrics is None:
        return Response("metrics are not installed on this app\n", 404, media_type="text/plain")
    body, content_type = exposition(metrics.registry)
    return Response(body, media_type=content_type)


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/metrics", scrape, "metrics", "Prometheus metrics of this admin process", "meta"),
]
