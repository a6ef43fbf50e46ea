"""Limits on what one caller can make the admin do: writes per token (token buckets), list lengths per request.

The request body is capped elsewhere (``routes.MAX_BODY``, 413) and regular expressions are vetted by the
engine (``sdk/linear_regex.regex_problem``: length, RE2 syntax). ``RateLimiter`` holds its buckets in memory;
the admin shares them between replicas through NATS (``shared_rate.py``) and falls back to this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..validation import Problem
from .admin.errors import InvalidInput

#: Longest list allowed under each field name, wherever it appears in a flag, segment or environment body.
MAX_ITEMS: dict[str, int] = {
    "variations": 100,  # a flag's variations, and a rollout's weighted variations
    "rules": 500,  # a flag's or a segment's rules
    "clauses": 50,  # per rule
    "values": 50_000,  # a clause's values, a target's keys
    "targets": 100,  # one per variation at most, in practice
    "prerequisites": 50,
    "tags": 50,
    "included": 100_000,  # a segment's listed keys
    "excluded": 100_000,
}
#: Deepest nesting of JSON arrays and objects in a body (variation values are free-form JSON).
MAX_DEPTH = 32


def check_lengths(data: Any) -> Any:
    """``data`` unchanged, or ``InvalidInput`` (422) naming the JSON path of every list that is too long."""
    problems: list[Problem] = []
    _walk(data, "$", 0, problems)
    if problems:
        raise InvalidInput(f"{problems[0].path}: {problems[0].message}", problems)
    return data


def _walk(value: Any, path: str, depth: int, problems: list[Problem]) -> None:
    if depth > MAX_DEPTH:
        problems.append(Problem(path, f"nested deeper than {MAX_DEPTH} levels"))
        return
    if isinstance(value, dict):
        for name, item in value.items():
            child = f"{path}.{name}"
            limit = MAX_ITEMS.get(name) if isinstance(name, str) else None
            if limit is not None and isinstance(item, list) and len(item) > limit:
                problems.append(Problem(child, f"at most {limit} items, got {len(item)}"))
                continue
            _walk(item, child, depth + 1, problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                _walk(item, f"{path}[{i}]", depth + 1, problems)


class RateLimiter:
    """A token bucket per key: ``burst`` writes at once, refilled at ``rate`` per second.

    ``take(key)`` spends one and returns 0, or returns the seconds until one is available (nothing spent).
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > 100_000:  # forget idle, full buckets so the map cannot grow without bound
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}
        return (1.0 - tokens) / self.rate
