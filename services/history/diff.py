"""Field-level differences between two states of an entity (or two environments). Pure: no I/O.

States are compared as plain JSON values (``msgspec.to_builtins`` of the domain Structs). Lists of objects that
carry an identity (``key``, ``id``, ``flag`` or ``variation``, unique within the list) are matched by it, so a
reordered list reads as a move, not as every item changing; lists of scalars (tags, included keys, clause
values) are compared as sets (added / removed items). Rollout weights are shown as percentages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from msgspec import Struct

from ...events.model import WEIGHT_TOTAL

#: Fields that identify an item of a list of objects, tried in this order.
IDENTITIES = ("key", "id", "flag", "variation")


class Change(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One difference. ``op``: changed, added, removed, moved (a list item at another place), or items
    (a list of scalars gained ``added`` and lost ``removed`` items)."""

    path: str
    op: str
    old: Any = None
    new: Any = None
    added: list[Any] | None = None
    removed: list[Any] | None = None
    text: str = ""


def plain(state: Any) -> Any:
    """A domain value (or already plain JSON) as plain JSON values (objects, lists, scalars)."""
    return msgspec.json.decode(msgspec.json.encode(state))


def diff(old: Any, new: Any) -> list[Change]:
    """Differences from ``old`` to ``new`` (domain Structs or plain JSON); ``old=None``: created."""
    out: list[Change] = []
    _walk(plain(old), plain(new), "", out)
    return out


def show(value: Any, path: str = "") -> str:
    """A value as shown in a change line: JSON, weights as percentages."""
    if path.endswith("weight") and isinstance(value, int) and not isinstance(value, bool):
        return f"{value * 100 / WEIGHT_TOTAL:g}%"
    return msgspec.json.encode(value).decode()


def _line(change: Change) -> str:
    p = change.path or "(state)"
    if change.op == "changed":
        return f"{p}: {show(change.old, p)} -> {show(change.new, p)}"
    if change.op == "added":
        return f"{p}: added {show(change.new, p)}"
    if change.op == "removed":
        return f"{p}: removed {show(change.old, p)}"
    if change.op == "moved":
        return f"{p}: moved from position {change.old} to {change.new}"
    parts = []
    if change.added:
        parts.append("added " + ", ".join(show(v) for v in change.added))
    if change.removed:
        parts.append("removed " + ", ".join(show(v) for v in change.removed))
    return f"{p}: {'; '.join(parts)}"


def _emit(out: list[Change], **fields: Any) -> None:
    change = Change(**fields)
    out.append(msgspec.structs.replace(change, text=_line(change)))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for name in [*new, *(k for k in old if k not in new)]:
            sub = _join(path, name)
            if name not in old:
                _emit(out, path=sub, op="added", new=new[name])
            elif name not in new:
                _emit(out, path=sub, op="removed", old=old[name])
            else:
                _walk(old[name], new[name], sub, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        _walk_list(old, new, path, out)
        return
    if old is None and path == "":
        _emit(out, path=path, op="added", new=new)
    elif new is None and path == "":
        _emit(out, path=path, op="removed", old=old)
    else:
        _emit(out, path=path, op="changed", old=old, new=new)


def identity(items: Iterable[Any]) -> str | None:
    """The field identifying every item of a list of objects, if there is one (present and unique)."""
    items = list(items)
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for name in IDENTITIES:
        values = [i.get(name) for i in items]
        if all(isinstance(v, str) for v in values) and len(set(values)) == len(values):
            return name
    return None


def _walk_list(old: list[Any], new: list[Any], path: str, out: list[Change]) -> None:
    if all(not isinstance(v, dict | list) for v in (*old, *new)):
        old_set, new_set = _as_set(old), _as_set(new)
        if old_set is not None and new_set is not None and old_set != new_set:
            added = [v for v in new if _hashable(v) not in old_set]
            removed = [v for v in old if _hashable(v) not in new_set]
            _emit(out, path=path, op="items", added=added, removed=removed)
            return
        if old_set is not None and old_set == new_set and len(old) == len(new):
            _emit(out, path=path, op="changed", old=old, new=new)  # same items, another order
            return
    ident = identity(old) if old else identity(new)
    if ident is not None and (identity(new) if new else ident) != ident:
        ident = None
    if ident is None:
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(old):
                _emit(out, path=sub, op="added", new=new[i])
            elif i >= len(new):
                _emit(out, path=sub, op="removed", old=old[i])
            else:
                _walk(old[i], new[i], sub, out)
        return
    old_at: Mapping[str, int] = {item[ident]: i for i, item in enumerate(old)}
    new_ids = {item[ident] for item in new}
    kept_old_order = [item[ident] for item in old if item[ident] in new_ids]
    kept_new_order = [item[ident] for item in new if item[ident] in old_at]
    reordered = kept_old_order != kept_new_order
    for i, item in enumerate(new):
        name = item[ident]
        sub = f"{path}[{i}]"
        if name not in old_at:
            _emit(out, path=sub, op="added", new=item)
            continue
        j = old_at[name]
        if reordered and kept_old_order.index(name) != kept_new_order.index(name):
            _emit(out, path=f"{path}[{ident}={name}]", op="moved", old=j, new=i)
        _walk(old[j], item, sub, out)
    for j, item in enumerate(old):
        if item[ident] not in new_ids:
            _emit(out, path=f"{path}[{j}]", op="removed", old=item)


def _hashable(value: Any) -> Any:
    return (type(value).__name__, value)


def _as_set(values: list[Any]) -> set[Any] | None:
    try:
        return {_hashable(v) for v in values}
    except TypeError:
        return None


def lines(changes: Iterable[Change]) -> list[str]:
    return [c.text for c in changes]
