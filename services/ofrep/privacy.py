"""Private context attributes: used to evaluate, never stored or sent on.

An application marks attributes private by listing their names in the context's ``privateAttributes``
(OFREP context: ``{"targetingKey": "u1", "email": "ada@example.com", "privateAttributes": ["email"]}``; in a
multi-kind context a member's attribute is ``"<kind>/<name>"``, or a member may carry its own list).
:func:`split` takes the list out of the context (it is no attribute) and returns it; the evaluation sees the
whole context. Whatever leaves the evaluating process (the debug log line of an evaluation, an ETag) is built
from :func:`redacted` or from the answer, never from the private values.

The targeting key cannot be private: it is who the evaluation is for (bucketing, exposures need it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The context attribute that lists the private ones.
PRIVATE = "privateAttributes"
#: What a private value is replaced with wherever a context is shown.
REDACTED = "[private]"


class PrivateAttributesError(ValueError):
    """``privateAttributes`` is not a list of attribute names (or names the targeting key)."""


def _names(raw: Any, where: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
        raise PrivateAttributesError(f"{where}{PRIVATE} must be a list of attribute names")
    if "key" in raw or "targetingKey" in raw:
        raise PrivateAttributesError(f"{where}{PRIVATE}: the targeting key cannot be private")
    return frozenset(raw)


def split(context: Any) -> tuple[Any, frozenset[str]]:
    """(the context without ``privateAttributes`` lists, the private names: ``attr`` or ``kind/attr``).

    ``context`` is a Flagstream context (``{"key": ...}``, one kind, or ``multi``). Raises
    ``PrivateAttributesError`` for a list that is not one."""
    if not isinstance(context, Mapping):
        return context, frozenset()
    names: set[str] = set()
    out = dict(context)
    if PRIVATE in out:
        names |= _names(out.pop(PRIVATE), "")
    if out.get("kind") == "multi":
        for kind, member in list(out.items()):
            if isinstance(member, Mapping) and PRIVATE in member:
                member = dict(member)
                names |= {f"{kind}/{n}" for n in _names(member.pop(PRIVATE), f"{kind}.")}
                out[kind] = member
    return out, frozenset(names)


def redacted(context: Any, private: frozenset[str]) -> Any:
    """The context with every private attribute's value replaced by ``REDACTED`` (for anything that leaves)."""
    if not private or not isinstance(context, Mapping):
        return context
    multi = context.get("kind") == "multi"
    out: dict[str, Any] = {}
    for name, value in context.items():
        if multi and isinstance(value, Mapping):
            out[name] = {
                n: (REDACTED if f"{name}/{n}" in private or (name == "user" and n in private) else v)
                for n, v in value.items()
            }
        else:
            out[name] = REDACTED if name in private else value
    return out
