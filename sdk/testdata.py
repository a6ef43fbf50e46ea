"""``TestData``: flags set in code, for the unit tests of an application that uses Flagstream.

::

    td = TestData()
    td.flag("new-checkout").on(True)                          # a boolean flag, on: serves True
    td.flag("button").variations("blue", "green").serve("green").value_for("user-1", "blue")
    client = FlagstreamClient.from_test_data(td)              # ready at once, never connects
    client.bool_variation("new-checkout", {"key": "user-1"}, False)  # True
    td.flag("new-checkout").on(False)                         # applies at once (and fires on_change)

A new flag is a boolean flag that is on and serves ``True``; ``on(False)`` makes it serve its off value
(``False`` for a boolean flag, else the first variation). For anything richer (rules, rollouts, segments)
give whole domain values: ``td.update(Flag(...))``, ``td.update_segment(Segment(...))``.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from .cache import RulesetCache
from .events import DEFAULT_PROJECT, Flag, FlagKind, Segment, Serve, Target, Variation
from .persistence import build_ruleset
from .ruleset import Ruleset

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _kind_of(values: list[Any]) -> FlagKind:
    if all(isinstance(v, bool) for v in values):
        return FlagKind.BOOLEAN
    if all(isinstance(v, str) for v in values):
        return FlagKind.STRING
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return FlagKind.NUMBER
    return FlagKind.JSON


def _variation_key(value: Any, index: int) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and _KEY.fullmatch(value):
        return value
    return f"v{index}"


class FlagBuilder:
    """One flag of a ``TestData``; every method applies the change at once and returns the builder."""

    def __init__(self, data: TestData, key: str) -> None:
        self._data = data
        self.key = key
        self._values: list[Any] = [True, False]
        self._on = True
        self._serve: Any = True
        self._off: Any = False
        self._targets: dict[str, Any] = {}  # "kind\0key" -> value

    def on(self, enabled: bool = True) -> FlagBuilder:
        """Targeting on (serve ``serve``'s value and targets) or off (serve the off value)."""
        self._on = enabled
        return self._apply()

    def variations(self, *values: Any) -> FlagBuilder:
        """The values the flag can serve; it then serves the first (on or off) until told otherwise."""
        if not values:
            raise ValueError("a flag needs at least one value")
        self._values = list(values)
        self._serve = self._off = values[0]
        self._targets = {k: v for k, v in self._targets.items() if v in self._values}
        return self._apply()

    def serve(self, value: Any) -> FlagBuilder:
        """Serve ``value`` to everyone not targeted (added to the variations if new)."""
        self._add(value)
        self._serve = value
        return self._apply()

    value = serve

    def off_value(self, value: Any) -> FlagBuilder:
        """Served while the flag is off."""
        self._add(value)
        self._off = value
        return self._apply()

    def value_for(self, context_key: str, value: Any, kind: str = "user") -> FlagBuilder:
        """Serve ``value`` to the context with this key (of this kind) while the flag is on."""
        self._add(value)
        self._targets[f"{kind}\0{context_key}"] = value
        return self._apply()

    def _add(self, value: Any) -> None:
        if value not in self._values:
            self._values.append(value)

    def build(self) -> Flag:
        keys: list[str] = []
        for i, value in enumerate(self._values):
            key = _variation_key(value, i)
            keys.append(key if key not in keys else f"v{i}")

        def key_of(value: Any) -> str:
            return keys[self._values.index(value)]

        grouped: dict[tuple[str, str], list[str]] = {}
        for target, value in self._targets.items():
            kind, context_key = target.split("\0", 1)
            grouped.setdefault((kind, key_of(value)), []).append(context_key)
        return Flag(
            key=self.key,
            kind=_kind_of(self._values),
            on=self._on,
            variations=tuple(Variation(key=k, value=v) for k, v in zip(keys, self._values, strict=True)),
            off_variation=key_of(self._off),
            fallthrough=Serve(variation=key_of(self._serve)),
            targets=tuple(
                Target(variation=variation, values=tuple(values), context_kind=kind)
                for (kind, variation), values in grouped.items()
            ),
        )

    def _apply(self) -> FlagBuilder:
        self._data.update(self.build())
        return self


class TestData:
    """Flags for tests, applied at once to every client built with ``from_test_data(td)``."""

    __test__ = False  # not a pytest test class

    def __init__(self, project: str = DEFAULT_PROJECT, environment: str = "test") -> None:
        self.project = project
        self.environment = environment
        self._flags: dict[str, Flag] = {}
        self._segments: dict[str, Segment] = {}
        self._builders: dict[str, FlagBuilder] = {}
        self._caches: list[RulesetCache] = []
        self._seq = 0
        self._lock = threading.RLock()  # a listener may change the test data again

    def flag(self, key: str) -> FlagBuilder:
        """The builder of flag ``key``, created (boolean, on, serving ``True``) on first use."""
        with self._lock:
            builder = self._builders.get(key)
            if builder is None:
                builder = self._builders[key] = FlagBuilder(self, key)
                new = True
            else:
                new = False
        return builder._apply() if new else builder

    def update(self, flag: Flag) -> None:
        """Set a whole flag (rules, rollouts, prerequisites...)."""
        with self._lock:
            self._flags[flag.key] = flag
            self._publish()

    def update_segment(self, segment: Segment) -> None:
        with self._lock:
            self._segments[segment.key] = segment
            self._publish()

    def ruleset(self) -> Ruleset:
        return build_ruleset(
            self.project, self.environment, self._flags.values(), self._segments.values(), seq=self._seq
        )

    def _attach(self, cache: RulesetCache) -> None:
        with self._lock:
            self._caches.append(cache)
            cache.replace(self.ruleset())

    def _publish(self) -> None:
        self._seq += 1
        for cache in self._caches:
            cache.replace(self.ruleset())  # one each: a client counts its evaluations on its own compiled flags
