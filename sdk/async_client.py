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
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .cache import ClientStatus, FlagEvaluations, RulesetCache
from .events import DEFAULT_PROJECT
from .nats_source import GAP_CHECK_INTERVAL, NatsSource
from .offline import StaticSource, load_flag_file, ruleset_of
from .persistence import CorruptStateFile, StatePersister, load_state
from .ruleset import Ruleset
from .telemetry import TelemetryReporter
from .tracking import Tracker

if TYPE_CHECKING:
    from .testdata import TestData

log = logging.getLogger("flagstream.client")

#: ``callback(status)``, called on the client's loop when ``status`` changes.
StatusListener = Callable[[ClientStatus], None]


class AsyncFlagstreamClient(FlagEvaluations):
    """A local copy of one environment's flags, following the event stream.

    ``nats_url``: one URL or a list (a cluster). ``reconnect_wait``: seconds between reconnect attempts.
    ``connect_options``: extra keyword arguments for ``nats.connect`` (credentials, TLS...).
    ``jetstream_domain``: the JetStream domain of the stream, for a client connected to a leaf node without
    JetStream of its own (its requests then go to the hub's domain; live messages are fanned out by the leaf).

    ``cache_path``: a last-known-state file. After changes (at most every ``cache_write_interval`` seconds)
    the client saves its flags there; ``start()`` loads it first, so a client started while NATS is down
    serves those flags (status ``STALE``) until the live load replaces them (``READY``). A corrupt file is
    logged, counted in ``cache_file_errors`` and ignored.

    ``telemetry``: every ``telemetry_interval`` seconds publish a heartbeat and evaluation counts over core
    NATS (see :mod:`flagstream.telemetry`); ``False`` turns it off (evaluations are counted all the same: one
    attribute increment, read by ``flagstream.metrics``).

    ``track_interval``: seconds between two batches of what ``track()`` was told (see :mod:`flagstream.tracking`).

    ``snapshots``: start from the environment's compacted snapshot when the services wrote one (a few messages
    instead of one per flag; see :mod:`flagstream.snapshots`); ``False`` always loads the last event of each flag.

    ``gap_check_interval``: while following live, every this many seconds (jittered) ask JetStream, in one small
    request, whether the environment has an event the client did not receive (a leaf node whose link to the hub
    was down while the client stayed connected to it), and catch up if so (counted in ``gaps_repaired``).
    ``None`` turns the check off.
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
        self._setup(project, environment)
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self._cache_write_interval = cache_write_interval
        self._source: NatsSource | StaticSource = NatsSource(
            nats_url,
            project=project,
            environment=environment,
            sink=self._cache.apply,
            on_ready=self._became_ready,
            name=name,
            reconnect_wait=reconnect_wait,
            connect_timeout=connect_timeout,
            connect_options=connect_options,
            jetstream_domain=jetstream_domain,
            on_status=self._status_changed,
            snapshots=snapshots,
            gap_check_interval=gap_check_interval,
        )
        if telemetry:
            self._telemetry = TelemetryReporter(
                project=project,
                environment=environment,
                connection=lambda: self._source.connection,
                status=lambda: self.status.value,
                seq=lambda: self._cache.ruleset.seq,
                totals=self._cache.evaluation_totals,
                interval=telemetry_interval,
            )
            self._cache.add_applied_hook(self._telemetry.applied)
            self._telemetry.watch(self)  # the contexts' attribute names are sampled
        self._tracker = Tracker(
            project=project,
            environment=environment,
            connection=lambda: self._source.connection,
            interval=track_interval,
            instance_id=self._telemetry.instance_id if self._telemetry is not None else None,
            jetstream_domain=jetstream_domain,
        )

    def _setup(self, project: str, environment: str) -> None:
        self.project = project
        self.environment = environment
        #: True for a client built by ``from_file`` or ``from_test_data``: it never connects.
        self.offline = False
        RulesetCache(Ruleset(project=project, environment=environment)).attach(self)
        self._ready_event: asyncio.Event | None = None
        self._ready_hooks: list[Callable[[], None]] = []
        self._status_listeners: list[StatusListener] = []
        self._last_status = ClientStatus.INITIALIZING
        self._started = False
        self.cache_path: Path | None = None
        self._cache_write_interval = 0.5
        self._persister: StatePersister | None = None
        #: Last-known-state files that could not be used (corrupt, other environment...).
        self.cache_file_errors = 0
        #: The telemetry reporter (``None`` offline or with ``telemetry=False``).
        self._telemetry: TelemetryReporter | None = None
        #: What ``track()`` queues and sends (``None`` offline: tracking is then a no-op).
        self._tracker: Tracker | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Self:
        """An offline client serving the flags of an exported flag file (see :mod:`flagstream.offline`).

        Ready at once, never connects. Raises ``FlagFileError`` (naming the JSON path) for a bad file.
        """
        flag_file = load_flag_file(path)
        client = cls._offline(flag_file.project, flag_file.environment)
        client._cache.replace(ruleset_of(flag_file))
        client._source = StaticSource(client._became_ready)
        client._status_changed()
        return client

    @classmethod
    def from_test_data(cls, data: TestData) -> Self:
        """An offline client serving ``data``'s flags; later changes to ``data`` apply at once (and fire
        ``on_change`` listeners on the thread that made them)."""
        client = cls._offline(data.project, data.environment)
        data._attach(client._cache)
        client._source = StaticSource(client._became_ready)
        client._status_changed()
        return client

    @classmethod
    def _offline(cls, project: str, environment: str) -> Self:
        client = cls.__new__(cls)
        client._setup(project, environment)
        client.offline = True
        return client

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self, wait: float = 0.0) -> bool:
        """Start connecting and loading in the background; wait up to ``wait`` seconds for the first load.

        Never raises because NATS is down: the client keeps trying and evaluations serve defaults meanwhile.
        Returns whether the client is ready.
        """
        self._event()
        if not self._started:
            self._started = True
            if self.cache_path is not None:
                self._load_cache_file(self.cache_path)
            await self._source.start()
            if self._telemetry is not None:
                self._telemetry.start()
            if self._tracker is not None:
                self._tracker.start()
        if wait > 0:
            return await self.wait_until_ready(wait)
        return self.is_ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the current state is loaded (at most ``timeout`` seconds); return whether it is."""
        if self._cache.ready:
            return True
        try:
            async with asyncio.timeout(timeout):  # not wait_for, which can drop the caller's cancellation
                await self._event().wait()
        except TimeoutError:
            return False
        return True

    async def wait_for_sequence(self, seq: int, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until this client has applied stream sequence ``seq`` or a later one (at most ``timeout``
        seconds); return whether it has.

        Read your own writes: an admin write answers the entity's new ``version``, a stream sequence; once this
        returns True, evaluations here see that write (or a later one). A sequence of another environment is
        reached only when this environment changes after it.
        """
        if self._cache.ruleset.seq >= seq:
            return True
        reached = asyncio.Event()
        remove = self._cache.add_applied_hook(lambda _, ruleset: reached.set() if ruleset.seq >= seq else None)
        try:
            async with asyncio.timeout(timeout):  # not wait_for, which can drop the caller's cancellation
                await reached.wait()
        except TimeoutError:
            pass
        finally:
            remove()
        return self._cache.ruleset.seq >= seq

    async def close(self) -> None:
        """Disconnect (for good: a closed client does not restart). Evaluations keep answering from the last ruleset."""
        if self._telemetry is not None:
            await self._telemetry.close()  # a last report while still connected
        if self._tracker is not None:
            await self._tracker.close()  # what was tracked, while still connected
        await self._source.close()
        if self._persister is not None:
            await self._persister.close()
        if self._exposure_recorders:
            await asyncio.to_thread(self._close_exposures)
        self._close_offline()

    def _close_offline(self) -> None:
        """The part of ``close`` that needs no event loop (all of it for an offline client)."""
        self._source.status = ClientStatus.CLOSED
        self._status_changed()

    async def __aenter__(self) -> AsyncFlagstreamClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

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
        """True once the current state was loaded (stays true while disconnected: see ``status``)."""
        return self._cache.ready

    @property
    def status(self) -> ClientStatus:
        """``STALE`` also while serving a last-known-state file before the live load."""
        status = self._source.status
        if status is ClientStatus.INITIALIZING and self._cache.loaded:
            return ClientStatus.STALE
        return status

    def on_status_change(self, callback: StatusListener) -> Callable[[], None]:
        """Call ``callback(status)`` (on the client's loop) when ``status`` changes; returns a remover."""
        self._status_listeners.append(callback)
        return lambda: self._status_listeners.remove(callback) if callback in self._status_listeners else None

    def _status_changed(self, _: ClientStatus | None = None) -> None:
        status = self.status
        if status is self._last_status:
            return
        self._last_status = status
        for callback in list(self._status_listeners):
            try:
                callback(status)
            except Exception:
                log.exception("flagstream: status listener %r failed", callback)

    def _load_cache_file(self, path: Path) -> None:
        try:
            ruleset = load_state(path, self.project, self.environment)
        except CorruptStateFile as exc:
            self.cache_file_errors += 1
            log.warning("flagstream: ignoring the last-known-state file: %s", exc)
            ruleset = None
        except Exception:
            self.cache_file_errors += 1
            log.exception("flagstream: ignoring the last-known-state file %s", path)
            ruleset = None
        if ruleset is not None:
            if self._telemetry is not None:
                self._telemetry.baseline(ruleset.seq)
            self._cache.replace(ruleset)
            self._source.replace_on_first_load()
            log.info("flagstream: serving %d flags from %s until loaded", len(ruleset.flags), path)
            self._status_changed()
        self._persister = StatePersister(path, lambda: self._cache.ruleset, self._cache_write_interval)
        self._cache.add_applied_hook(self._persister.mark)
        self._persister.start()

    @property
    def bad_events(self) -> int:
        """Messages skipped because they could not be decoded (or applied)."""
        return self._source.bad_events + self._cache.failed_events

    @property
    def snapshot_seq(self) -> int | None:
        """The stream sequence of the environment snapshot the client loaded from (``None``: none was used; it
        loaded the last event of each flag instead)."""
        source = self._source
        return source.snapshot_seq if isinstance(source, NatsSource) else None

    @property
    def gaps_repaired(self) -> int:
        """Times the client found events it had not received live (see ``gap_check_interval``) and caught up."""
        source = self._source
        return source.gaps_repaired if isinstance(source, NatsSource) else 0

    @property
    def bad_snapshots(self) -> int:
        """Environment snapshots that could not be used (corrupt): the client loaded the long way instead."""
        source = self._source
        return source.bad_snapshots if isinstance(source, NatsSource) else 0

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
