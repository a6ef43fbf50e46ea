"""A canonical hash of a set of entity states, to prove two folds (projector, SDK, rebuild) agree."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")


def canonical_json(state: Any) -> bytes:
    """Deterministic JSON of a state: struct fields and dict keys sorted."""
    return _encoder.encode(state)


def state_hash(states: Iterable[tuple[str, Any]]) -> str:
    """sha256 over ``(subject, state)`` pairs sorted by subject. States may be Structs or canonical bytes."""
    digest = hashlib.sha256()
    for subject, state in sorted(states, key=lambda item: item[0]):
        body = state if isinstance(state, bytes | bytearray) else canonical_json(state)
        digest.update(subject.encode())
        digest.update(b"\x00")
        digest.update(bytes(body))
        digest.update(b"\x00")
    return digest.hexdigest()
