"""``AsyncFlagstreamClient``: evaluate flags locally, kept current from NATS JetStream, for asyncio apps.

::

    client = AsyncFlagstreamClient("nats://localhost:4222", environment="production")
    await client.start(wait=5)
    if client.bool_variation("new-checkout", {"key": "user-1", "country": "NO"}, False):
        ...
    await client.close()

Evaluations are plain function calls (no await, no lock, no I/O) on the current in-memory ruleset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .cache import ClientStatus, FlagEvaluations, RulesetCache
from .events import DEFAULT_PROJECT
from .nats_source import NatsSource
from .ruleset import Ruleset


class AsyncFlagstreamClient(FlagEvaluations):
    """A local copy of one environment's flags, following the event stream.

    ``nats_url``: one URL or a list (a cluster). ``reconnect_wait``: seconds between reconnect attempts.
    ``connect_options``: extra keyword arguments for ``nats.connect`` (credentials, TLS...).
    """

    def __init__(
        self,
        nats_url: str | list[str],
        *,
        environment: str,
        project: str = DEFAULT_PROJECT,
        name: str | None = None,
        reconnect_wait: float = 1.0,
        connect_timeout: float = 2.0,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.project = project
        self.environment = environment
        self._cache = RulesetCache(Ruleset(project=project, environment=environment))
        self._ready_event: asyncio.Event | None = None
        self._ready_hooks: list[Callable[[], None]] = []
        self._source = NatsSource(
            nats_url,
            project=project,
            environment=environment,
            sink=self._cache.apply,
            on_ready=self._became_ready,
            name=name,
            reconnect_wait=reconnect_wait,
            connect_timeout=connect_timeout,
            connect_options=connect_options,
        )

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self, wait: float = 0.0) -> bool:
        """Start connecting and loading in the background; wait up to ``wait`` seconds for the first load.

        Never raises because NATS is down: the client keeps trying and evaluations serve defaults meanwhile.
        Returns whether the client is ready.
        """
        self._event()
        await self._source.start()
        if wait > 0:
            return await self.wait_until_ready(wait)
        return self.is_ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the current state is loaded (at most ``timeout`` seconds); return whether it is."""
        if self._cache.ready:
            return True
        try:
            await asyncio.wait_for(self._event().wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect (for good: a closed client does not restart). Evaluations keep answering from the last ruleset."""
        await self._source.close()

    async def __aenter__(self) -> AsyncFlagstreamClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """True once the current state was loaded (stays true while disconnected: see ``status``)."""
        return self._cache.ready

    @property
    def status(self) -> ClientStatus:
        return self._source.status

    @property
    def bad_events(self) -> int:
        """Messages skipped because they could not be decoded (or applied)."""
        return self._source.bad_events + self._cache.failed_events

    @property
    def last_error(self) -> BaseException | None:
        return self._source.last_error

    def _event(self) -> asyncio.Event:
        if self._ready_event is None:
            self._ready_event = asyncio.Event()
            if self._cache.ready:
                self._ready_event.set()
        return self._ready_event

    def _add_ready_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` (on the client's loop) when the first load completes; for the sync client."""
        self._ready_hooks.append(hook)
        if self._cache.ready:
            hook()

    def _became_ready(self) -> None:
        self._cache.ready = True
        if self._ready_event is not None:
            self._ready_event.set()
        for hook in self._ready_hooks:
            hook()
