"""Server-side evaluation: a pool of live, in-memory rulesets, one per (project, environment).

Each environment asked for gets one ``AsyncFlagstreamClient`` (the SDK itself: same fold, same engine, same
evaluation results as an application's own client), started on first use and kept current from JetStream from
then on. An evaluation is then a function call on the ruleset in memory: no stream read per request.

The pool is bounded: past ``capacity`` environments, the least recently used one is closed (and reloaded when
asked for again). An environment someone follows (an OFREP event stream, ``pin``) is never the one closed: its
followers would hear nothing more; while every held environment is pinned the pool holds more than ``capacity``.
The caller checks that an environment exists before asking (the pool would otherwise hold a client for any name
it is given).

The clients connect with the given ``connect_options`` (the admin passes its own NATS credentials) and report
telemetry like any SDK instance, so evaluations served through the pool count in the fleet's numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ...async_client import AsyncFlagstreamClient

log = logging.getLogger("flagstream.evaluator")


class NotLoaded(Exception):
    """The environment's flags could not be loaded within the pool's ``load_timeout``."""


class EvaluatorPool:
    """Live rulesets per (project, environment), for evaluating on the server.

    ``servers``: the NATS URL(s) the clients connect to. ``load_timeout``: how long a request waits for an
    environment's first load. ``capacity``: environments held at once (least recently used closed beyond).
    """

    def __init__(
        self,
        servers: str | list[str],
        *,
        load_timeout: float = 10.0,
        capacity: int = 64,
        name: str = "flagstream-evaluator",
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.load_timeout = load_timeout
        self.capacity = capacity
        self.name = name
        # The admin's credentials, with the admin's own inbox (not the per-environment SDK inbox an SDK uses).
        self.connect_options = {"inbox_prefix": "_INBOX", **(connect_options or {})}
        self._clients: OrderedDict[tuple[str, str], AsyncFlagstreamClient] = OrderedDict()
        self._pins: dict[tuple[str, str], int] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def holds(self, project: str, environment: str) -> bool:
        """Whether a client for this environment is in the pool (loaded or loading)."""
        return (project, environment) in self._clients

    def held(self, project: str, environment: str) -> AsyncFlagstreamClient | None:
        """This environment's client if the pool holds it (without starting one or marking it used)."""
        return self._clients.get((project, environment))

    def __len__(self) -> int:
        return len(self._clients)

    async def client(self, project: str, environment: str) -> AsyncFlagstreamClient:
        """The live client of this environment, loaded; started on first use. Raises ``NotLoaded``."""
        if self._closed:
            raise NotLoaded("the evaluator is closed")
        where = (project, environment)
        client = self._clients.get(where)
        if client is None:
            client = AsyncFlagstreamClient(
                self.servers,
                project=project,
                environment=environment,
                name=f"{self.name}:{project}/{environment}",
                connect_options=self.connect_options,
            )
            self._clients[where] = client
            self._evict()
            await client.start()
        else:
            self._clients.move_to_end(where)
        if not client.is_ready and not await client.wait_until_ready(self.load_timeout):
            raise NotLoaded(
                f"the flags of environment {environment!r} (project {project!r}) are not loaded yet"
                f" (last error: {client.last_error!r})"
            )
        return client

    def pin(self, project: str, environment: str) -> Callable[[], None]:
        """Keep this environment's client in the pool until the returned release is called (once)."""
        where = (project, environment)
        self._pins[where] = self._pins.get(where, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._pins[where] - 1
            if left:
                self._pins[where] = left
            else:
                del self._pins[where]
                if not self._closed:
                    self._evict()

        return release

    def _evict(self) -> None:
        excess = len(self._clients) - self.capacity
        if excess <= 0:
            return
        # Oldest first; never the newest (the one just asked for) nor one that is followed.
        unpinned = [where for where in list(self._clients)[:-1] if where not in self._pins][:excess]
        for where in unpinned:
            oldest = self._clients.pop(where)
            log.info("evaluator: closing the least recently used environment %s/%s", *where)
            task = asyncio.create_task(oldest.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every client (evaluations in flight keep their snapshot)."""
        self._closed = True
        clients = list(self._clients.values())
        self._clients.clear()
        # At once, not one after the other: each SDK close() is bounded (flagstream.aio), so this is too.
        await asyncio.gather(*(client.close() for client in clients), *self._closing, return_exceptions=True)
