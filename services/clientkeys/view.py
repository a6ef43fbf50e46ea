"""What a client-side key's holder sees of an environment's ruleset, and the request limits of the client door.

``ClientViews.of(ruleset)``: the flags it may evaluate and ``seq``, the stream sequence of the last change that
can change any of their evaluations, or the set of flags itself (a flag that stops being available). The client
door's ETags and event stream follow ``seq``, not the environment's sequence: a change to a flag that is not
available (or to a segment none of the available flags uses) sends no event and changes no ETag, so it cannot
be noticed from a browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..tokens import RateLimiter
from .model import depends_on, visible


@dataclass(frozen=True)
class ClientView:
    #: The flags a client-side key may evaluate, sorted.
    keys: tuple[str, ...]
    #: Stream sequence of the last event that can change their evaluation (0: none yet).
    seq: int


class ClientViews:
    """``of(ruleset)``: the view of an SDK ``Ruleset``, computed once per ruleset (one per change). One per
    process that serves the client door (the admin app): the last view of each environment is what the next
    one is compared with (a flag that stopped being visible), so views of different event streams must never
    share one."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Any, ClientView]] = {}

    def of(self, ruleset: Any) -> ClientView:
        where = (ruleset.project, ruleset.environment)
        cached = self._last.get(where)
        if cached is not None and cached[0] is ruleset:
            return cached[1]
        keys = tuple(visible(ruleset.flags))
        subjects = depends_on(keys, ruleset.flags, ruleset.segments)
        versions = ruleset.versions
        seq = max((versions.get(s, 0) for s in subjects), default=0)
        if cached is not None:
            before = cached[1]
            # never backwards; and a flag that stopped being visible (unmarked, archived) is a change too, though
            # its own version is no longer among those above: the newest sequence then stands for it
            seq = max(seq, before.seq, ruleset.seq if keys != before.keys else 0)
        view = ClientView(keys=keys, seq=seq)
        self._last[where] = (ruleset, view)
        return view


class ClientLimits:
    """Requests of the client door: ``per_address`` per second per client address (burst ``address_burst``),
    and ``per_key`` per second per client-side key (burst ``key_burst``), in this process.

    Each admin replica limits on its own (reads are too frequent for a shared bucket per request): behind N
    replicas a key gets up to N times ``per_key``."""

    def __init__(
        self,
        per_address: float = 20.0,
        address_burst: int = 100,
        per_key: float = 2000.0,
        key_burst: int = 4000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addresses = RateLimiter(per_address, address_burst, clock)
        self.keys = RateLimiter(per_key, key_burst, clock)

    def address(self, address: str) -> float:
        """0 after spending one request of this address, else the seconds to wait."""
        return self.addresses.take(address)

    def key(self, key: str) -> float:
        return self.keys.take(key)
