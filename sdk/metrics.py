"""Prometheus metrics of an SDK client, for applications that use ``prometheus_client``
(``pip install flagstream[metrics]``)::

    from flagstream.metrics import register_metrics
    register_metrics(client)            # the default registry; or register_metrics(client, registry=my_registry)

Everything is read from the client when Prometheus scrapes, nothing is added to an evaluation: the counts are
the ones every client keeps for its fleet telemetry (one attribute increment per evaluation), with or without
``telemetry``.

Metrics (labels ``project``, ``environment``):

* ``flagstream_sdk_evaluations_total``: evaluations;
* ``flagstream_sdk_evaluation_errors_total``: evaluations that served the caller's default because of an error
  (unknown flag, wrong type, not ready...);
* ``flagstream_sdk_bad_events_total``: stream messages the client could not apply;
* ``flagstream_sdk_last_applied_seq``: stream sequence of the last change applied;
* ``flagstream_sdk_ready``: 1 once the flags were loaded;
* ``flagstream_sdk_stale``: 1 while the client's status is ``STALE`` (it serves flags it cannot keep current:
  disconnected, or a last-known-state file before the live load);
* ``flagstream_sdk_status``: 1 for the client's current status (``status`` label), 0 for the others.

One client per (project, environment) in a registry: a second one would repeat the same series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .cache import ClientStatus

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the application's environment
    raise ImportError("flagstream.metrics needs prometheus-client: pip install 'flagstream[metrics]'") from exc


class ClientCollector(Collector):
    def __init__(self, client: Any) -> None:
        self.client = client
        self.labels = [str(client.project), str(client.environment)]

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        names = ["project", "environment"]
        client, labels = self.client, self.labels
        total = errors = 0
        for (_, variation), n in client._cache.evaluation_totals().items():
            total += n
            if variation is None:
                errors += n
        status = client.status

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=names)
            family.add_metric(labels, value)
            return family

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=names)
            family.add_metric(labels, value)
            return family

        yield counter("flagstream_sdk_evaluations", "Flag evaluations", total)
        yield counter("flagstream_sdk_evaluation_errors", "Evaluations that served the default on an error", errors)
        yield counter("flagstream_sdk_bad_events", "Stream messages that could not be applied", client.bad_events)
        yield gauge("flagstream_sdk_last_applied_seq", "Stream sequence of the last change applied", client.seq)
        yield gauge("flagstream_sdk_ready", "1 once the flags were loaded", int(bool(client.is_ready)))
        stale = int(status is ClientStatus.STALE)
        yield gauge("flagstream_sdk_stale", "1 while serving flags it cannot keep current", stale)
        family = GaugeMetricFamily("flagstream_sdk_status", "The client's status", labels=[*names, "status"])
        for value in ClientStatus:
            family.add_metric([*labels, value.value], int(status is value))
        yield family


def register_metrics(client: Any, registry: CollectorRegistry | None = None) -> ClientCollector:
    """Expose ``client`` (a ``FlagstreamClient`` or ``AsyncFlagstreamClient``) on ``registry`` (default: the
    global one); returns the collector (``registry.unregister(collector)`` to stop)."""
    collector = ClientCollector(client)
    (registry if registry is not None else REGISTRY).register(collector)
    return collector
