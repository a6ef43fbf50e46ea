"""The metrics stream read by the admin side: a step's window followed live, a window read once for experiment
results, and the names of the metrics each environment reports (kept in the release bucket, shared by replicas).

SDKs publish ``MetricsBatch`` messages on ``flagstream-telemetry.<p>.<env>.metrics``; the ``FLAGSTREAM_METRICS``
stream keeps them for a day (``services/runtime/stream.py``). A message that does not decode is skipped, logged
(once per reader) and counted in ``bad``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from ...events.tracking import decode_metrics, metrics_filter, metrics_subject
from ..runtime import METRICS_STREAM
from .window import FlagWindow

log = logging.getLogger("flagstream.release")

#: Seconds between two writes of one metric's "last seen" time to the bucket.
METRIC_NAME_REFRESH = 3600.0


def _decode(msg: Msg, reader: Any) -> Any:
    try:
        return decode_metrics(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        reader.bad += 1
        level = logging.DEBUG if reader.bad > 1 else logging.WARNING
        log.log(level, "release: skipping an undecodable metrics message on %s: %s", msg.subject, exc)
        return None


class WindowFollower:
    """A ``FlagWindow`` fed live by an ordered consumer on the metrics stream, from ``since`` on."""

    def __init__(self, window: FlagWindow) -> None:
        self.window = window
        self.bad = 0
        self.caught_up = asyncio.Event()
        self._sub: Any = None

    async def start(self, js: JetStreamContext, project: str, environment: str, since: datetime) -> None:
        async def on_message(msg: Msg) -> None:
            batch = _decode(msg, self)
            if batch is not None:
                self.window.add(batch)
            if msg.metadata.num_pending == 0:
                self.caught_up.set()

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since.astimezone(UTC).isoformat()
        )
        self._sub = await js.subscribe(
            metrics_subject(project, environment), stream=METRICS_STREAM, cb=on_message, ordered_consumer=True,
            config=config,
        )  # fmt: skip
        with contextlib.suppress(Exception):
            info = await self._sub.consumer_info()
            if info.num_pending == 0:
                self.caught_up.set()

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


async def read_window(
    js: JetStreamContext,
    project: str,
    environment: str,
    flag: str,
    since: datetime,
    *,
    max_wait: float = 60.0,
) -> tuple[FlagWindow, int]:
    """Every batch of the environment from ``since`` to now into one ``FlagWindow`` for ``flag`` (and the bad
    messages skipped)."""
    window = FlagWindow(flag=flag, since=since)
    follower = WindowFollower(window)
    await follower.start(js, project, environment, since)
    try:
        async with asyncio.timeout(max_wait):  # not wait_for, which can drop the caller's cancellation
            await follower.caught_up.wait()
    finally:
        await follower.stop()
    return window, follower.bad


class MetricNames:
    """The metric names each environment's SDKs report, from every batch published (a core subscription: every
    replica sees every batch), kept in the release bucket (``metric.<p>.<env>.<name>``) so that a replica started
    later knows them too."""

    def __init__(self, kv: KeyValue | None) -> None:
        self.kv = kv
        self.bad = 0
        #: (project, environment) -> {metric: time.monotonic() of its last write to the bucket}
        self._written: dict[tuple[str, str], dict[str, float]] = {}
        self._sub: Any = None

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(metrics_filter(), cb=self._on_message)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        batch = _decode(msg, self)
        if batch is None:
            return
        names = {row.metric for row in batch.tracked} | {row.metric for row in batch.unexposed}
        if names:
            await self.saw(batch.project, batch.environment, names)

    async def saw(self, project: str, environment: str, names: set[str]) -> None:
        written = self._written.setdefault((project, environment), {})
        now = time.monotonic()
        for name in names:
            if now - written.get(name, -METRIC_NAME_REFRESH) < METRIC_NAME_REFRESH:
                continue
            written[name] = now
            if self.kv is not None:
                try:
                    await self.kv.put(_key(project, environment, name), datetime.now(UTC).isoformat().encode())
                except Exception as exc:
                    log.debug("release: could not record metric %s: %r", name, exc)

    async def known(self, project: str, environment: str) -> set[str]:
        """The metrics reported in this environment (by any replica's SDKs, since the bucket was made)."""
        names = set(self._written.get((project, environment), {}))
        if self.kv is not None:
            prefix = f"metric.{project}.{environment}."
            with contextlib.suppress(Exception):
                watcher = await self.kv.watch(f"{prefix}>", meta_only=True, ignore_deletes=True)
                try:
                    async for entry in watcher:
                        if entry is None:  # the end of what is stored
                            break
                        names.add(entry.key.removeprefix(prefix))
                finally:
                    await watcher.stop()
        return names

    async def is_known(self, project: str, environment: str, name: str) -> bool:
        if name in self._written.get((project, environment), {}):
            return True
        if self.kv is None:
            return False
        try:
            await self.kv.get(_key(project, environment, name))
        except KeyNotFoundError:
            return False
        return True


def _key(project: str, environment: str, name: str) -> str:
    return f"metric.{project}.{environment}.{name}"
