"""Every endpoint of the admin service, and the features that contribute them.

The core REST API lives in ``routes.py``. Each further feature (history, OFREP, fleet telemetry, web UI...) is
one module of this package exposing ``ENDPOINTS: list[Endpoint]`` and, if it needs resources for the app's
lifetime (a NATS subscription, a database), ``lifespan(app) -> AsyncContextManager[None]``, entered after the
NATS connection is up (``app.state.nc``, ``app.state.service`` are set) and left before it closes.
Both the Starlette routes and the OpenAPI document are built from ``all_endpoints()``, so they cannot drift.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import routes
from .routes import Endpoint

#: Feature modules, in the order their routes are matched (before the core routes).
FEATURES: tuple[str, ...] = (
    "flags",
    "history",
    "schedules",
    "requests",
    "plans",
    "ofrep",
    "ofrep_events",
    "clientside",
    "sdkcredentials",
    "fleet",
    "webhooks",
    "ui",
    "projects",
    "people",
    "metrics",
    "snapshots",
)


def feature_modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__package__}.{name}") for name in FEATURES]


def all_endpoints() -> list[Endpoint]:
    endpoints: list[Endpoint] = []
    for module in feature_modules():
        endpoints.extend(module.ENDPOINTS)
    endpoints.extend(routes.ENDPOINTS)
    return endpoints
