"""Evaluation contexts: who a flag is evaluated for. Pure, no I/O, never raises.

Accepted shapes (LaunchDarkly-compatible), normalised to ``{kind: attributes}``:

* ``{"key": "u1", "state": "CA"}`` -- a plain mapping with a string ``key`` is one ``user`` context;
* ``{"kind": "organization", "key": "o1", ...}`` -- one context of that kind;
* ``{"kind": "multi", "user": {"key": "u1", ...}, "organization": {"key": "o1", ...}}`` -- several kinds;
* ``None`` -- no context at all: nothing can match a clause, a target or be bucketed, but flags still serve.

A whole number as a ``key`` (``42``, or ``42.0``) is that context's key as its decimal string (``"42"``), as
other SDKs do: targets, clauses and rollouts see ``"42"``. Anything else (no ``key``, a key that is a boolean, a
fraction, a list..., a non-string or empty kind, a ``multi`` without members...) is malformed: :func:`normalize`
returns ``None``, the engine answers with a ``MALFORMED_CONTEXT`` error detail, and :func:`problem` says why.
The attribute ``kind`` is reserved; ``key`` is the targeting key of its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bucketing import bucket_text

Contexts = Mapping[str, Mapping[str, Any]]

_NONE: Contexts = {}


def normalize(context: Any) -> Contexts | None:
    """``{kind: attributes}`` for a well-formed context (``{}`` for ``None``); ``None`` if malformed."""
    try:
        return _normalize(context)
    except Exception:
        return None


def problem(context: Any) -> str | None:
    """Why ``context`` cannot be used, in words (no attribute value is repeated), or ``None`` if it can."""
    try:
        return _problem(context)
    except Exception as exc:
        return f"reading it failed ({type(exc).__name__})"


def _keyed(attributes: Any) -> Mapping[str, Any] | None:
    """``attributes`` with a string ``key`` (a whole number's made its decimal string), or ``None``."""
    if not isinstance(attributes, Mapping):
        return None
    key = attributes.get("key")
    if isinstance(key, str):
        return attributes
    text = bucket_text(key)
    return None if text is None else {**attributes, "key": text}


def _normalize(context: Any) -> Contexts | None:
    if context is None:
        return _NONE
    if not isinstance(context, Mapping):
        return None
    kind = context.get("kind")
    if kind is None:
        single = _keyed(context)
        return None if single is None else {"user": single}
    if not isinstance(kind, str) or not kind:
        return None
    if kind != "multi":
        single = _keyed(context)
        return None if single is None else {kind: single}
    out: dict[str, Mapping[str, Any]] = {}
    for name, member in context.items():
        if name == "kind":
            continue
        if not isinstance(name, str) or not name or name == "multi":
            return None
        keyed = _keyed(member)
        if keyed is None:
            return None
        out[name] = keyed
    return out or None


def _key_problem(attributes: Mapping[str, Any]) -> str | None:
    if "key" not in attributes:
        return "no 'key'"
    key = attributes["key"]
    if isinstance(key, str) or bucket_text(key) is not None:
        return None
    what = repr(key) if isinstance(key, float) else type(key).__name__
    return f"'key' must be a string or a whole number, not {what}"


def _problem(context: Any) -> str | None:
    if context is None:
        return None
    if not isinstance(context, Mapping):
        return f"a context is a mapping (dict) or None, not {type(context).__name__}"
    kind = context.get("kind")
    if kind is not None and (not isinstance(kind, str) or not kind):
        return "'kind' must be a non-empty string"
    if kind != "multi":
        return _key_problem(context)
    members = 0
    for name, member in context.items():
        if name == "kind":
            continue
        if not isinstance(name, str) or not name or name == "multi":
            return f"a multi context's member names are kinds (non-empty strings, not 'multi'), not {name!r}"
        if not isinstance(member, Mapping):
            return f"member {name!r}: a mapping (dict), not {type(member).__name__}"
        found = _key_problem(member)
        if found is not None:
            return f"member {name!r}: {found}"
        members += 1
    return None if members else "a multi context needs at least one member"
