"""Exposure records: which context was served which variation of which flag, handed to an application callback.

An evaluation only appends a tuple to a bounded queue (nothing is built, no lock taken, no I/O); a daemon
thread builds the ``Exposure`` records and calls the callback. A full queue drops the new record and counts it
in ``dropped``; a callback that raises is logged and counted in ``callback_errors``, never seen by evaluations.

Sampling is deterministic: with ``sample_rate`` below 1, a (flag, context key) pair is either always recorded
or never (murmur3 of ``flag_key + "/" + context_key`` against the rate), so a sampled user's exposures are
complete; evaluations without a context key are kept with the same probability by flag key alone.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import mmh3
from msgspec import Struct

from .context import normalize
from .evaluation import EvaluationDetail, ReasonKind

log = logging.getLogger("flagstream.client")


class Exposure(Struct, frozen=True, kw_only=True):
    flag_key: str
    #: The variation key served (``None`` when the caller's default was served because of an error).
    variation: str | None
    #: The targeting key; for a multi-kind context ``kind:key`` pairs sorted by kind and joined with ``:``.
    context_key: str | None
    #: ``user``, another kind, ``multi``; ``None`` without a (well-formed) context.
    context_kind: str | None
    #: Stream sequence of the ruleset used.
    seq: int
    reason: ReasonKind
    #: Wall time of the evaluation, seconds since the epoch.
    timestamp: float


ExposureCallback = Callable[[Exposure], None]


def context_identity(context: Any) -> tuple[str | None, str | None]:
    """(kind, key) of a context as an exposure names it; (None, None) if it has no usable key. A whole number as a
    key is named by its decimal string, as evaluation sees it (``flagstream.context``)."""
    if type(context) is dict and "kind" not in context:  # the common case: a plain user dict
        key = context.get("key")
        if type(key) is str:
            return "user", key
    contexts = normalize(context)
    if not contexts:
        return None, None
    if context.get("kind") != "multi":
        ((kind, attributes),) = contexts.items()
        return kind, attributes["key"]
    return "multi", ":".join(f"{name}:{contexts[name]['key']}" for name in sorted(contexts))


_SCALE = 2**32


class ExposureRecorder:
    """Queues exposures from evaluations (``observe``) and delivers them to ``callback`` on its own thread."""

    def __init__(self, callback: ExposureCallback, sample_rate: float = 1.0, max_queue: int = 10_000) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("sample_rate must be between 0 and 1")
        self.callback = callback
        self.sample_rate = sample_rate
        self.max_queue = max_queue
        #: Records dropped because the queue was full; callback calls that raised; records delivered.
        self.dropped = 0
        self.callback_errors = 0
        self.delivered = 0
        self._threshold = int(sample_rate * _SCALE)
        self._queue: collections.deque[tuple[str, str | None, str | None, EvaluationDetail, float]]
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        #: Called by ``close()`` (the client sets it to stop observing).
        self.on_close: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._drain, name="flagstream-exposures", daemon=True)
        self._thread.start()

    def observe(self, key: str, context: Any, detail: EvaluationDetail) -> None:
        """Called after each evaluation: cheap, never blocks."""
        kind, context_key = context_identity(context)  # now: the application may reuse its context dict
        if self._threshold < _SCALE:
            text = key if context_key is None else f"{key}/{context_key}"
            if mmh3.hash(text, signed=False) >= self._threshold:
                return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append((key, kind, context_key, detail, time.time()))
        if len(queue) == 1:
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop receiving, deliver what is queued (for at most ``timeout`` seconds), then stop."""
        if self.on_close is not None:
            self.on_close()
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _drain(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            while queue:
                self._deliver(*queue.popleft())
            if self._closing:
                return

    def _deliver(self, key: str, kind: str | None, ckey: str | None, detail: EvaluationDetail, at: float) -> None:
        try:
            record = Exposure(
                flag_key=key,
                variation=detail.variation,
                context_key=ckey,
                context_kind=kind,
                seq=detail.seq,
                reason=detail.reason.kind,
                timestamp=at,
            )
            self.callback(record)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors == 1 or self.callback_errors % 1000 == 0:
                log.exception("flagstream: exposure callback failed (%d times so far)", self.callback_errors)
        else:
            self.delivered += 1
