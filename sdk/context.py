"""Evaluation contexts: who a flag is evaluated for. Pure, no I/O, never raises.

Accepted shapes (LaunchDarkly-compatible), normalised to ``{kind: attributes}``:

* ``{"key": "u1", "state": "CA"}`` -- a plain mapping with a string ``key`` is one ``user`` context;
* ``{"kind": "organization", "key": "o1", ...}`` -- one context of that kind;
* ``{"kind": "multi", "user": {"key": "u1", ...}, "organization": {"key": "o1", ...}}`` -- several kinds;
* ``None`` -- no context at all: nothing can match a clause, a target or be bucketed, but flags still serve.

Anything else (no string ``key``, a non-string or empty kind, a ``multi`` without members...) is malformed:
:func:`normalize` returns ``None`` and the engine answers with a ``MALFORMED_CONTEXT`` error detail.
The attribute ``kind`` is reserved; ``key`` is the targeting key of its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Contexts = Mapping[str, Mapping[str, Any]]

_NONE: Contexts = {}


def normalize(context: Any) -> Contexts | None:
    """``{kind: attributes}`` for a well-formed context (``{}`` for ``None``); ``None`` if malformed."""
    try:
        return _normalize(context)
    except Exception:
        return None


def _normalize(context: Any) -> Contexts | None:
    if context is None:
        return _NONE
    if not isinstance(context, Mapping):
        return None
    kind = context.get("kind")
    if kind is None:
        return {"user": context} if isinstance(context.get("key"), str) else None
    if not isinstance(kind, str) or not kind:
        return None
    if kind != "multi":
        return {kind: context} if isinstance(context.get("key"), str) else None
    out: dict[str, Mapping[str, Any]] = {}
    for name, member in context.items():
        if name == "kind":
            continue
        if not isinstance(name, str) or not name or name == "multi":
            return None
        if not isinstance(member, Mapping) or not isinstance(member.get("key"), str):
            return None
        out[name] = member
    return out or None
