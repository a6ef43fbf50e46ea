"""Metrics the SDK clients send about what the application saw (``client.track``), for release plans and experiment
results (``services/release``).

One message kind, ``flagstream-telemetry.<project>.<environment>.metrics``: a ``MetricsBatch`` per client every
second or so, published over core NATS like the rest of telemetry (the SDK's NATS credential may publish under
``flagstream-telemetry.<p>.<env>.>`` and nowhere else). Unlike heartbeats, these messages are kept for a while in a
JetStream stream of their own (``FLAGSTREAM_METRICS``, limited in age and size, never part of the event log), so an
admin replica that takes over a release plan reads the plan's data again from the step's start.

Per batch and per context (the randomization unit: the evaluation context's key):

* ``Exposed``: the context was served ``variation`` of ``flag`` by a percentage rollout, ``count`` times, from the
  ruleset at stream sequence ``seq``.
* ``Tracked``: ``count`` calls of ``track(metric, context, value)``, with the sum of their values, attributed to
  what the flags in a percentage rollout last served that context in this client (``served``).
* ``Unexposed``: tracked calls of a context that no flag in a rollout had served in this client: not attributed,
  only counted (so a person can see how much of a metric nothing could be said about).

The rows are arrays on the wire (``array_like``), to keep a batch of thousands small. Evolution rules as for events:
a new field goes at the end of a row with a default, a field never changes type, unknown trailing fields are ignored.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec import Struct

from .telemetry import TELEMETRY_PREFIX

#: The message kind's last subject token.
METRICS_KIND = "metrics"
#: A metric name: letters, digits, ``-``, ``_`` and ``.`` (``errors``, ``http.latency_ms``, ``checkout-converted``).
#: Checks read it whole (``fullmatch``): with ``re.match`` its ``$`` also takes a final newline. Decoders do not
#: check it (a name an earlier SDK sent, newline and all, still decodes).
METRIC_PATTERN = r"^[A-Za-z0-9_.-]+$"
METRIC_MAX = 100


class Exposed(Struct, frozen=True, array_like=True):
    flag: str
    variation: str
    #: The context's identity: its key for a ``user`` context, ``kind:key`` for another kind, the sorted
    #: ``kind:key`` pairs joined with ``:`` for a multi-kind context.
    context: str
    count: int
    #: The stream sequence of the ruleset those evaluations used (the highest): the admin side counts an exposure
    #: in a release step only from the step's own write on. 0 from an SDK that did not say.
    seq: int = 0


class Tracked(Struct, frozen=True, array_like=True):
    metric: str
    context: str
    #: ``track`` calls.
    count: int
    #: The sum of their values (0 when none had one) and how many had one.
    total: float = 0.0
    valued: int = 0
    #: ``(flag, variation)`` pairs: what each flag in a rollout last served this context, sorted by flag.
    served: tuple[tuple[str, str], ...] = ()
    #: For each pair, the stream sequence of the ruleset of that exposure (empty from an SDK that did not say).
    seqs: tuple[int, ...] = ()


class Unexposed(Struct, frozen=True, array_like=True):
    metric: str
    count: int


class MetricsBatch(Struct, frozen=True, kw_only=True):
    """What one client saw between ``since`` and ``until``."""

    instance_id: str
    project: str
    environment: str
    since: datetime
    until: datetime
    exposed: tuple[Exposed, ...] = ()
    tracked: tuple[Tracked, ...] = ()
    unexposed: tuple[Unexposed, ...] = ()
    #: Records the client could not keep (its queue or its unsent rows were full) since its previous batch.
    dropped: int = 0
    #: ``track`` calls refused since its previous batch (a metric name or a value that is none).
    invalid: int = 0


def metrics_subject(project: str, environment: str) -> str:
    return f"{TELEMETRY_PREFIX}.{project}.{environment}.{METRICS_KIND}"


def metrics_filter(project: str = "*", environment: str = "*") -> str:
    return f"{TELEMETRY_PREFIX}.{project}.{environment}.{METRICS_KIND}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MetricsBatch)


def encode_metrics(batch: MetricsBatch) -> bytes:
    return _encoder.encode(batch)


def decode_metrics(data: bytes) -> MetricsBatch:
    """Raises ``msgspec.DecodeError`` / ``msgspec.ValidationError`` for a message that is not a batch."""
    return _decoder.decode(data)
