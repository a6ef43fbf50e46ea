"""Admin feature module: the environment snapshots' writer (``services/snapshots``, ``docs/sdk.md``).

No routes. The lifespan runs the writer: every replica runs one, the one holding the writer's lease writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from ..snapshots import INTERVAL, LEASE, running
from .routes import Endpoint

ENDPOINTS: list[Endpoint] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The writer runs while the app runs (``app.state.snapshot_writer``)."""
    lease = getattr(app.state, "snapshot_lease", None) or LEASE
    interval = getattr(app.state, "snapshot_interval", None) or INTERVAL
    async with running(app.state.nc, lease=lease, interval=interval) as writer:
        app.state.snapshot_writer = writer
        yield
