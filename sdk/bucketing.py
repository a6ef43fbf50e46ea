"""Sticky percentage bucketing: pure, no I/O, the same answer on every machine, process and restart.

    bucket = mmh3.hash(f"{salt}.{value}", seed=0, signed=False) % 100_000

``salt`` is the flag's ``salt`` (or its key when empty); for a segment rule, the segment's salt (or key).
``value`` is the bucketing attribute as text: a string as is, an integer (or an integral float) in decimal
(``42`` and ``42.0`` both give ``"42"``). Other values (missing, booleans, fractional numbers, lists...)
cannot be bucketed: :func:`bucket_text` returns ``None``.

A rollout walks its weights cumulatively and serves the first variation whose cumulative weight is above the
bucket, so raising a weight only adds buckets to that variation (as long as the variations keep their
order). docs/targeting.md pins the formula; tests/engine pins golden values.

Imported flags keep the bucketing of their original system (``Rollout.algorithm``): ``flagstream.schemes``
computes each scheme as its home system does (docs/migration.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import mmh3

TOTAL = 100_000

FLAGSTREAM = "flagstream"
UNLEASH = "unleash"
UNLEASH_VARIANT = "unleash_variant"
FLAGD = "flagd"
#: The murmur3 seed Unleash hashes variant stickiness with.
UNLEASH_VARIANT_SEED = 86028157
#: flagd divides the absolute signed hash by this (Go's math.MaxInt32).
MAX_INT32 = 2**31 - 1

_hash = mmh3.hash


def bucket_text(value: Any) -> str | None:
    """The text a value is bucketed by, or ``None`` if it cannot be bucketed."""
    t = type(value)
    if t is str:
        return value
    try:
        if t is int:
            return str(value)
        if t is float and math.isfinite(value) and value.is_integer():
            return str(int(value))
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(int(value))
    except ValueError:  # an integer with more digits than Python converts to text
        return None
    return None


def bucket(salt: str, text: str) -> int:
    """The bucket of ``text`` under ``salt``: an integer in ``[0, 100_000)``."""
    return _hash(f"{salt}.{text}", 0, False) % TOTAL


def cumulative(weights: Iterable[int]) -> tuple[int, ...]:
    """Running sums of ``weights``: variation ``i`` gets the buckets in ``[sum[i-1], sum[i])``."""
    out: list[int] = []
    total = 0
    for w in weights:
        total += w
        out.append(total)
    return tuple(out)
