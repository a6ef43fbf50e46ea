"""Prometheus metrics of the services: one registry per process part, the metric families, and how to serve them.

Metrics are plain ``prometheus_client`` objects on a ``CollectorRegistry`` of our own (never the global default
one, so two apps in one process, as in the tests, do not collide). Values that already live in the process (a
projector's position, the SDK fleet) are read at scrape time by callbacks or collectors: nothing is counted twice.

* ``AdminMetrics``: HTTP requests by route template, method and status; request latency; events appended by
  type; conflicts (409); SDK instances connected (from the fleet telemetry, when it runs).
* ``ProjectorMetrics``: events applied, bad events skipped, last applied sequence, the stream's last sequence
  and the lag between the two, batch latency (fetched -> committed and acknowledged).

``serve(registry, port)`` exposes a registry on its own HTTP listener (``flagstream projector --metrics-port``);
the admin service exposes its own at ``GET /metrics`` (``admin/metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ...events import tag_of

log = logging.getLogger("flagstream.metrics")

#: Request and batch latencies (seconds): from sub-millisecond reads to slow cluster writes.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in the Prometheus text format, with its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread; returns the server (``shutdown()``)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


class AdminMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "flagstream_admin_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "flagstream_admin_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter("flagstream_admin_events_appended", "Events appended to the stream", ["type"], registry=r)
        self.conflicts = Counter(
            "flagstream_admin_conflicts", "Writes refused with 409 (stale If-Match, lost race, exists)", registry=r
        )
        self.webhook_attempts = Counter(
            "flagstream_webhook_attempts",
            "Webhook delivery attempts by this replica: delivered (2xx), error (retried), failed (given up)",
            ["result"],
            registry=r,
        )
        self.webhook_bad_events = Counter(
            "flagstream_webhook_bad_events",
            "Messages on the event stream that are not events, skipped by this replica's webhook delivery",
            registry=r,
        )

    def webhook_result(self, result: str) -> None:
        """One outcome of this replica's webhook delivery (``WebhookDelivery.on_attempt``)."""
        if result == "bad_event":
            self.webhook_bad_events.inc()
        else:
            self.webhook_attempts.labels(result).inc()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if status == 409:
            self.conflicts.inc()

    def count_appends(self, store: Any) -> None:
        """Count every event ``store.append`` stores (wraps the method of this one store object)."""
        append = store.append

        async def counted(subject: str, event: Any, **kwargs: Any) -> Any:
            appended = await append(subject, event, **kwargs)
            if not appended.duplicate:
                self.events.labels(tag_of(event)).inc()
            return appended

        store.append = counted

    def watch_fleet(self, instances: Callable[[], dict[tuple[str, str], int]]) -> None:
        """Report ``instances()`` ({(project, environment): connected SDK instances}) at every scrape."""
        self.registry.register(_FleetCollector(instances))


class _FleetCollector(Collector):
    def __init__(self, instances: Callable[[], dict[tuple[str, str], int]]) -> None:
        self.instances = instances

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "flagstream_sdk_instances_connected",
            "SDK instances whose heartbeats arrive (fleet telemetry)",
            labels=["project", "environment"],
        )
        try:
            counts = self.instances()
        except Exception:  # a scrape must not fail because of one source
            log.debug("fleet instances unavailable", exc_info=True)
            counts = {}
        for (project, environment), count in sorted(counts.items()):
            family.add_metric([project, environment], count)
        yield family


class ProjectorMetrics:
    """Metrics of one projector. ``instrument(projector)`` hooks its batches; ``follow_stream`` keeps the
    stream's last sequence current for the lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.applied = Counter("flagstream_projector_events_applied", "Events applied to the read model", registry=r)
        self.bad = Counter("flagstream_projector_bad_events", "Messages skipped: not a valid event", registry=r)
        self.batch = Histogram(
            "flagstream_projector_batch_duration_seconds",
            "From a batch fetched to it committed and acknowledged",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.last_seq = Gauge("flagstream_projector_last_applied_seq", "Last stream sequence applied", registry=r)
        self.stream_seq = Gauge("flagstream_projector_stream_last_seq", "Last sequence of the stream", registry=r)
        self.lag = Gauge(
            "flagstream_projector_lag", "Events in the stream not applied yet (stream last seq - applied)", registry=r
        )
        self._stream_last = 0
        self._applied_seq: Callable[[], int] = lambda: 0
        self.last_seq.set_function(lambda: self._applied_seq())
        self.stream_seq.set_function(lambda: self._stream_last)
        self.lag.set_function(lambda: max(0, self._stream_last - self._applied_seq()))

    def instrument(self, projector: Any) -> None:
        """Hook a ``Projector``: its position is read at scrape time; each batch it reports (``_report``, called
        once per committed batch) is counted and timed from the moment its fetch returned (``_fetch``)."""
        self._applied_seq = lambda: int(projector.last_seq)
        fetch, report = projector._fetch, projector._report
        fetched_at = [time.perf_counter()]

        async def timed_fetch(*args: Any) -> Any:
            msgs = await fetch(*args)
            fetched_at[0] = time.perf_counter()
            return msgs

        def counted_report(batch: Any) -> None:
            self.applied.inc(len(batch.events))
            self.bad.inc(len(batch.bad))
            self.batch.observe(time.perf_counter() - fetched_at[0])
            self._stream_last = max(self._stream_last, int(batch.last_seq))
            report(batch)

        projector._fetch = timed_fetch
        projector._report = counted_report

    def stream_last(self, seq: int) -> None:
        self._stream_last = seq

    async def follow_stream(
        self, connect: Callable[[], Any], stop: asyncio.Event, interval: float = 2.0, stream: str = "FLAGSTREAM"
    ) -> None:
        """Until ``stop``: read the stream's last sequence every ``interval`` seconds on a connection of its own
        (``connect()`` -> a NATS client); failures are logged once and retried."""
        nc = None
        warned = False
        while not stop.is_set():
            try:
                if nc is None or nc.is_closed:
                    nc = await connect()
                info = await nc.jetstream().stream_info(stream)
                self.stream_last(int(info.state.last_seq))
                warned = False
            except Exception as exc:
                if not warned:
                    log.warning("metrics: cannot read the stream's last sequence: %r", exc)
                warned = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):  # not wait_for, which can drop a cancellation
                    await stop.wait()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
