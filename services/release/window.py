"""What the SDKs reported about one flag since some moment, per context, ready for the statistics. Pure, no I/O.

``FlagWindow.add(batch)`` takes the SDKs' ``MetricsBatch`` messages (``events/tracking.py``) in the order the metrics
stream holds them. Each context (the unit of the analysis) is in the arm of the variation the flag's rollout served it
last; what it tracked under that variation is its data. A context that moves to another variation (a bigger step)
starts afresh there: what it did under the old one is left out, never counted on the wrong side.

What cannot be attributed to the flag is counted, not used: ``unexposed`` (tracked by contexts no rollout had served
in their SDK), ``elsewhere`` (tracked by contexts that only other flags' rollouts had served) and ``before``
(attributed to what the flag served before ``since_seq``: a release step counts a context only once its SDK has
evaluated the flag with the step's own write; batches straddle the step by up to a second).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ...events.tracking import MetricsBatch

#: Per context: [variation, {metric: [events, sum of values, events with a value]}]
_Entry = list


@dataclass
class FlagWindow:
    flag: str
    #: Batches older than this (their ``until``) are left out.
    since: datetime | None = None
    #: Exposures (and what they attribute) from a ruleset older than this stream sequence are left out: for a
    #: release step, its own write (what the SDK served before it is not what the step compares).
    since_seq: int = 0
    contexts: dict[str, _Entry] = field(default_factory=dict)
    unexposed: Counter[str] = field(default_factory=Counter)
    elsewhere: Counter[str] = field(default_factory=Counter)
    before: Counter[str] = field(default_factory=Counter)
    #: Batches read, and how many of the SDKs' own records they say were dropped or refused.
    batches: int = 0
    dropped: int = 0
    invalid: int = 0
    metrics: set[str] = field(default_factory=set)

    def add(self, batch: MetricsBatch) -> None:
        if self.since is not None and batch.until < self.since:
            return
        self.batches += 1
        self.dropped += batch.dropped
        self.invalid += batch.invalid
        flag = self.flag
        contexts = self.contexts
        since_seq = self.since_seq
        for row in batch.exposed:
            if row.flag != flag or (row.seq and row.seq < since_seq):
                continue
            entry = contexts.get(row.context)
            if entry is None:
                contexts[row.context] = [row.variation, {}]
            elif entry[0] != row.variation:
                entry[0], entry[1] = row.variation, {}
        for row in batch.tracked:
            self.metrics.add(row.metric)
            at = next((i for i, (f, _) in enumerate(row.served) if f == flag), None)
            if at is None:
                self.elsewhere[row.metric] += row.count
                continue
            variation = row.served[at][1]
            if since_seq and at < len(row.seqs) and row.seqs[at] and row.seqs[at] < since_seq:
                self.before[row.metric] += row.count  # attributed to what was served before the step
                continue
            entry = contexts.get(row.context)
            if entry is None:
                entry = contexts[row.context] = [variation, {}]
            elif entry[0] != variation:
                continue  # done under a variation this context has since left
            totals = entry[1].get(row.metric)
            if totals is None:
                entry[1][row.metric] = [row.count, row.total, row.valued]
            else:
                totals[0] += row.count
                totals[1] += row.total
                totals[2] += row.valued
        for row in batch.unexposed:
            self.metrics.add(row.metric)
            self.unexposed[row.metric] += row.count

    def add_all(self, batches: Iterable[MetricsBatch]) -> None:
        for batch in batches:
            self.add(batch)

    def users(self) -> Counter[str]:
        """Contexts per variation."""
        return Counter(entry[0] for entry in self.contexts.values())

    def values(self, metric: str, kind: str) -> dict[str, np.ndarray]:
        """Per variation, each context's value of ``metric``: its events (``count``), whether it had any
        (``proportion``), the mean of its values (``mean``: contexts without a value left out)."""
        out: dict[str, list[float]] = {}
        for variation, metrics in self.contexts.values():
            totals = metrics.get(metric)
            if kind == "mean":
                if totals is None or totals[2] == 0:
                    continue
                value = totals[1] / totals[2]
            elif kind == "proportion":
                value = 1.0 if totals is not None and totals[0] > 0 else 0.0
            else:
                value = float(totals[0]) if totals is not None else 0.0
            out.setdefault(variation, []).append(value)
        return {v: np.asarray(values, dtype=float) for v, values in out.items()}

    def tracked(self, metric: str) -> int:
        """Events of ``metric`` counted for this flag (attributed to one of its variations)."""
        return sum(int(m[metric][0]) for _, m in self.contexts.values() if metric in m)
