"""Partial updates: JSON Merge Patch (RFC 7386), applied to the current state, then read back as a whole.

A merge patch is a JSON object shaped like the entity: each member it names replaces that member; an object
value is merged into the current object (recursively); ``null`` removes the member, which then has its model
default (a field without a default cannot be removed: the result is refused naming it); an array is replaced
whole. The result goes through the same strict reading as a whole body (unknown fields and wrong types named by
their JSON path), and the service then validates it as a whole entity, so a patch can never leave an entity in a
state a full write could not have made.

Pure: no I/O. Used by the admin API's PATCH routes; anything that edits an entity by a partial document (flags
across environments, flags as code) builds on :func:`apply_merge_patch`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from ...validation import Problem
from .commands import convert, key_places
from .errors import InvalidInput

#: The media type of a merge patch (RFC 7386, section 4).
MERGE_PATCH = "application/merge-patch+json"

T = TypeVar("T")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 ``MergePatch(Target, Patch)``, on decoded JSON values. ``target`` is not modified."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def apply_merge_patch(state: T, patch: Any, result_type: type[Any] | None = None) -> T:
    """``state`` (a domain Struct) with the merge patch ``patch`` applied, read as a whole ``result_type`` (by
    default ``type(state)``). ``InvalidInput`` (with JSON paths) if the patch is not an object or the result
    is not a valid whole: an unknown field, a wrong type, a required field removed."""
    if not isinstance(patch, dict):
        raise InvalidInput(
            f"a merge patch is a JSON object, got {type(patch).__name__}", [Problem("$", "expected a JSON object")]
        )
    current = msgspec.to_builtins(state)
    merged = merge_patch(current, patch)
    # A key ending in a newline that an earlier version wrote stays (a patch of other fields keeps working); a
    # patch may not bring a new one.
    kept = key_places(current, mi.type_info(type(state)))
    return convert(merged, result_type or type(state), kept=kept)  # type: ignore[no-any-return]
