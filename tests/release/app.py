"""A simulated application: a real SDK client evaluating a flag for its users at a steady rate and tracking errors,
which happen more often with one variation than with the other (or equally often: an A/A run).

Deterministic: user ``i`` is visited in a fixed order (a seeded shuffle, again and again), and whether visit ``k`` of
a user fails is a seeded hash of ``(user, k)`` against the error rate of the variation the flag served. Timing (the
machine's load) changes only how far along that one sequence the guardian has read when it looks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import mmh3

from flagstream import AsyncFlagstreamClient


@dataclass
class SimulatedApp:
    client: AsyncFlagstreamClient
    flag: str
    #: Error rate per evaluation, by the variation served (the rest: ``base``).
    rates: dict[str, float]
    base: float = 0.01
    users: int = 2_000
    #: Evaluations per second, and how many per tick of the loop.
    rate: float = 400.0
    seed: int = 7
    metric: str = "errors"
    #: Counts of what it did, by variation: evaluations and errors tracked.
    evaluations: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    #: Called with (variation, user) on each evaluation (e.g. to change rates at an onset).
    on_evaluation: Callable[[str, str], None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        order = list(range(self.users))
        random.Random(self.seed).shuffle(order)
        visits = [0] * self.users
        tick = 0.05
        per_tick = max(1, int(self.rate * tick))
        position = 0
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            for _ in range(per_tick):
                i = order[position % self.users]
                position += 1
                user = {"key": f"user-{i}"}
                variation = self.client.variation_detail(self.flag, user, False).variation or "default"
                visit = visits[i]
                visits[i] += 1
                self.evaluations[variation] = self.evaluations.get(variation, 0) + 1
                threshold = int(self.rates.get(variation, self.base) * 2**32)
                if mmh3.hash(f"{self.seed}:{i}:{visit}", signed=False) < threshold:
                    self.client.track(self.metric, user)
                    self.errors[variation] = self.errors.get(variation, 0) + 1
                if self.on_evaluation is not None:
                    self.on_evaluation(variation, user["key"])
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > 1.0:  # far behind (a loaded machine): do not try to catch up in a burst
                next_at = loop.time()
