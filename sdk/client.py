"""``FlagstreamClient``: the synchronous client, for WSGI apps, Django, Flask, scripts.

The NATS work runs on a background thread with its own event loop (an ``AsyncFlagstreamClient``); the
application's threads evaluate against the current in-memory ruleset directly: no lock, no I/O, no await.

::

    client = FlagstreamClient("nats://localhost:4222", environment="production")
    client.start(wait=5)
    if client.bool_variation("new-checkout", {"key": "user-1"}, False):
        ...
    client.close()
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .async_client import AsyncFlagstreamClient, StatusListener
from .cache import ClientStatus, FlagEvaluations
from .events import DEFAULT_PROJECT
from .nats_source import GAP_CHECK_INTERVAL
from .tracking import Tracker

if TYPE_CHECKING:
    from .testdata import TestData


class FlagstreamClient(FlagEvaluations):
    """Same options as ``AsyncFlagstreamClient`` (``snapshots`` among them: start from the environment's snapshot
    when there is a usable one, the default; ``False`` always loads the last event of each flag). ``on_change``
    callbacks run on the background thread.

    With a pre-forking server (gunicorn ``--preload``, uWSGI), create and start the client in each worker
    after the fork: a thread does not survive ``fork()``.
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
        jetstream_domain: str | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        cache_write_interval: float = 0.5,
        telemetry: bool = True,
        telemetry_interval: float = 10.0,
        track_interval: float = 1.0,
        snapshots: bool = True,
        gap_check_interval: float | None = GAP_CHECK_INTERVAL,
    ) -> None:
        self._client = AsyncFlagstreamClient(
            nats_url,
            environment=environment,
            project=project,
            name=name,
            reconnect_wait=reconnect_wait,
            connect_timeout=connect_timeout,
            connect_options=connect_options,
            jetstream_domain=jetstream_domain,
            cache_path=cache_path,
            cache_write_interval=cache_write_interval,
            telemetry=telemetry,
            telemetry_interval=telemetry_interval,
            track_interval=track_interval,
            snapshots=snapshots,
            gap_check_interval=gap_check_interval,
        )
        self._wrap(self._client)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FlagstreamClient:
        """An offline client serving the flags of an exported flag file (see :mod:`flagstream.offline`).

        Ready at once, never connects, no thread. Raises ``FlagFileError`` (naming the JSON path) for a bad file.
        """
        client = cls.__new__(cls)
        client._wrap(AsyncFlagstreamClient.from_file(path))
        return client

    @classmethod
    def from_test_data(cls, data: TestData) -> FlagstreamClient:
        """An offline client serving ``data``'s flags; later changes to ``data`` apply at once."""
        client = cls.__new__(cls)
        client._wrap(AsyncFlagstreamClient.from_test_data(data))
        return client

    def _wrap(self, client: AsyncFlagstreamClient) -> None:
        self._client = client
        self.project = client.project
        self.environment = client.environment
        client._cache.attach(self)  # evaluations on this object count in the same cache
        if client._telemetry is not None:
            client._telemetry.watch(self)  # and their contexts' attribute names are sampled
        self._tracker = client._tracker  # its evaluations are noted for track() once it was called here
        self._ready = threading.Event()
        self._client._add_ready_hook(self._ready.set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # start/close only, never evaluations

    def start(self, wait: float = 0.0) -> bool:
        """Start the background thread (connecting, loading); wait up to ``wait`` seconds for the first load.

        Never raises because NATS is down. Returns whether the client is ready.
        """
        if self._client.offline:
            return True
        with self._lock:
            if self._thread is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._run_loop, args=(loop,), name="flagstream-client", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                asyncio.run_coroutine_threadsafe(self._client.start(), loop).result()
        return self.wait_until_ready(wait) if wait > 0 else self.is_ready

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until the current state is loaded (at most ``timeout`` seconds); return whether it is."""
        return self._ready.wait(timeout)

    def wait_for_sequence(self, seq: int, timeout: float | None = None) -> bool:
        """Block until this client has applied stream sequence ``seq`` or a later one (at most ``timeout``
        seconds); return whether it has. See :meth:`AsyncFlagstreamClient.wait_for_sequence`."""
        reached = threading.Event()
        remove = self._cache.add_applied_hook(lambda _, ruleset: reached.set() if ruleset.seq >= seq else None)
        try:
            return self._cache.ruleset.seq >= seq or reached.wait(timeout)
        finally:
            remove()

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect and stop the background thread, for good. Evaluations keep answering from the last ruleset."""
        self._close_exposures()
        if self._client.offline:
            self._client._close_offline()
            return
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            if loop is None or thread is None:
                return
            try:
                asyncio.run_coroutine_threadsafe(self._client.close(), loop).result(timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout)
                if not thread.is_alive():
                    loop.close()

    def __enter__(self) -> FlagstreamClient:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    # -- metrics ------------------------------------------------------------------------------------------

    def track(self, metric: str, context: Any, value: float | None = None) -> None:
        """Tell Flagstream that ``metric`` happened to ``context`` (with a ``value``, e.g. a latency in ms).

        Attributed to what each flag in a percentage rollout last served ``context`` here, for release plans and
        experiment results (:mod:`flagstream.tracking`). Never blocks, never raises; a no-op for offline clients.
        """
        tracker = self._tracker
        if tracker is not None:
            if not tracker.observing:
                tracker.start_observing(self._add_observer)
            tracker.track(metric, context, value)

    @property
    def tracker(self) -> Tracker | None:
        """The tracking queue and its counters (``tracked``, ``unexposed``, ``invalid``, ``dropped``...)."""
        return self._tracker

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        return self._cache.ready

    @property
    def status(self) -> ClientStatus:
        return self._client.status

    def on_status_change(self, callback: StatusListener) -> Callable[[], None]:
        """Call ``callback(status)`` (on the background thread) when ``status`` changes; returns a remover."""
        return self._client.on_status_change(callback)

    @property
    def cache_file_errors(self) -> int:
        return self._client.cache_file_errors

    @property
    def bad_events(self) -> int:
        return self._client.bad_events

    @property
    def gaps_repaired(self) -> int:
        return self._client.gaps_repaired

    @property
    def snapshot_seq(self) -> int | None:
        """The stream sequence of the environment snapshot the client loaded from (``None``: none was used)."""
        return self._client.snapshot_seq

    @property
    def bad_snapshots(self) -> int:
        """Environment snapshots that could not be used (corrupt): the client loaded the long way instead."""
        return self._client.bad_snapshots

    @property
    def last_error(self) -> BaseException | None:
        return self._client.last_error
