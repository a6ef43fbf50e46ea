"""Request bodies and their strict decoding.

The domain Structs ignore unknown fields (stored events must evolve), so requests get ONE extra strictness
mechanism: the decoded JSON is walked against the target type's ``msgspec.inspect`` info and any field the
type does not know is reported with its JSON path. Then ``msgspec.convert`` checks types and constraints.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import UNSET, Struct, UnsetType

from ...events import MAX_SEQ, Environment, Flag, Segment, whole_number
from ...events.model import KEY_MAX, KEY_PATTERN, Key
from ...validation import Problem
from .errors import InvalidInput, MalformedRequest

T = TypeVar("T")

KEY_RULE = f"use 1 to {KEY_MAX} letters, digits, '-' or '_'"
#: ``KEY_PATTERN`` read whole: with ``fullmatch`` the ``$`` no longer lets a trailing newline through.
_KEY_RE = re.compile(KEY_PATTERN)


class FlagBody(Flag, frozen=True, kw_only=True):
    """A whole flag, as sent to create or replace one, with an optional change comment."""

    comment: str = ""


class SegmentBody(Segment, frozen=True, kw_only=True):
    comment: str = ""


class EnvironmentBody(Environment, frozen=True, kw_only=True):
    comment: str = ""
    #: On creation: the environment whose flag configurations (and segments) the new one starts with; empty:
    #: every flag of the project starts off.
    copy_from: Key | Literal[""] = ""


class ActionBody(Struct, frozen=True, kw_only=True):
    """Body of on/off/archive/restore: only a comment (the body may be empty)."""

    comment: str = ""


def _patch_type(name: str, base: type[Struct]) -> type[Struct]:
    """A Struct with every top-level field of ``base`` optional: UNSET (not sent) is told apart from null."""
    fields: list[tuple[str, Any, Any]] = [
        (f.name, f.type | UnsetType, UNSET)  # type: ignore[operator]
        for f in msgspec.structs.fields(base)
    ]
    fields.append(("comment", str, ""))
    return msgspec.defstruct(name, fields, kw_only=True, frozen=True, module=__name__)


#: Fields a whole-entity body (PUT) may leave out, with what they then are: the key (the URL's), ``archived`` and
#: ``deleted`` (changed only by their actions). Every other field must be sent: a PUT replaces the whole entity,
#: and a field left out would otherwise be reset to its default without anyone asking (use PATCH to change a few).
REPLACE_OPTIONAL: dict[str, Any] = {"key": "", "archived": False, "deleted": False}


def _replace_type(name: str, base: type[Struct]) -> type[Struct]:
    """A Struct with every top-level field of ``base`` required but those of ``REPLACE_OPTIONAL``, plus a comment."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        (f.name, f.type, REPLACE_OPTIONAL[f.name]) if f.name in REPLACE_OPTIONAL else (f.name, f.type)
        for f in msgspec.structs.fields(base)
    ]
    fields.append(("comment", str, ""))
    return msgspec.defstruct(name, fields, kw_only=True, frozen=True, module=__name__)


FlagReplace = _replace_type("FlagReplace", Flag)
SegmentReplace = _replace_type("SegmentReplace", Segment)


def require_whole(data: Any, body_type: type[Struct], what: str) -> Any:
    """``data`` unchanged if it has every required top-level field of ``body_type``; else ``InvalidInput`` naming
    each missing one (a whole-entity write never resets a field the client did not mention)."""
    if not isinstance(data, dict):
        return data
    missing = [f.name for f in msgspec.structs.fields(body_type) if f.required and f.name not in data]
    if missing:
        names = ", ".join(missing)
        raise InvalidInput(
            f"a PUT replaces the whole {what}, and the body has no {names}: send the {what} as GET returns it "
            f"(with your changes), or PATCH only the fields to change (application/merge-patch+json)",
            [Problem(f"$.{name}", "missing: a PUT carries every field") for name in missing],
        )
    return data


FlagPatch = _patch_type("FlagPatch", Flag)
SegmentPatch = _patch_type("SegmentPatch", Segment)
EnvironmentPatch = _patch_type("EnvironmentPatch", Environment)


def check_key(value: str, what: str) -> str:
    """A key from the URL: letters, digits, '-' and '_' (they become NATS subject tokens)."""
    if not (_KEY_RE.fullmatch(value) and len(value) <= KEY_MAX):
        raise MalformedRequest(f"invalid {what} {value!r}: {KEY_RULE}")
    return value


def whole(value: str, what: str, *, low: int = 0, high: int = MAX_SEQ, meaning: str = "a stream sequence") -> int:
    """A whole number from a URL or a header: ASCII digits from ``low`` to ``high`` (``events.whole_number``), else
    a 400 naming ``what`` and what it must be."""
    number = whole_number(value, high)
    if number is None or number < low:
        raise MalformedRequest(f"{what} must be {meaning} (a whole number from {low} to {high}), got {value!r}")
    return number


def parse_json(body: bytes, *, allow_empty: bool = False) -> Any:
    if not body.strip():
        if allow_empty:
            return {}
        raise MalformedRequest("the request needs a JSON body")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise MalformedRequest("malformed JSON: nested too deeply") from None


def unknown_fields(value: Any, info: mi.Type, path: str = "$") -> list[str]:
    """JSON paths of object members that ``info`` does not define (recursively)."""
    if isinstance(info, mi.Metadata):
        return unknown_fields(value, info.type, path)
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        known = {f.encode_name: f for f in info.fields}
        found: list[str] = []
        for name, item in value.items():
            field = known.get(name)
            if field is None:
                found.append(f"{path}.{name}")
            else:
                found.extend(unknown_fields(item, field.type, f"{path}.{name}"))
        return found
    if isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if len(structs) == 1:
            return unknown_fields(value, structs[0], path)
        return []
    if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType) and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in unknown_fields(item, info.item_type, f"{path}[{i}]")]
    if isinstance(info, mi.TupleType) and isinstance(value, list):
        return [
            p
            for i, (item, t) in enumerate(zip(value, info.item_types, strict=False))
            for p in unknown_fields(item, t, f"{path}[{i}]")
        ]
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        return [p for k, item in value.items() for p in unknown_fields(item, info.value_type, f"{path}.{k}")]
    return []


_ARRAYS = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)


def _is_key(info: mi.Type) -> bool:
    return isinstance(info, mi.StrType) and info.pattern == KEY_PATTERN


def newline_keys(value: Any, info: mi.Type, path: str = "$") -> list[tuple[str, str]]:
    """(JSON path, key) of each key in ``value`` (typed ``Key`` by ``info``) that ends in a newline (recursively).
    ``value`` is decoded JSON, or ``msgspec.to_builtins`` of a Struct (arrays are then tuples).

    ``KEY_PATTERN`` ends in ``$``, which Python's ``re`` (and so msgspec's check) also matches before a final
    newline: "a" and a newline pass as a key. Events keep that tolerance (a key an earlier version wrote still
    decodes); a request may not write a new one (``convert``).
    """
    if isinstance(info, mi.Metadata):
        return newline_keys(value, info.type, path)
    if isinstance(value, str):
        types = info.types if isinstance(info, mi.UnionType) else (info,)
        return [(path, value)] if value.endswith("\n") and any(_is_key(t) for t in types) else []
    if isinstance(info, mi.UnionType):
        return [p for t in info.types if not isinstance(t, mi.StrType) for p in newline_keys(value, t, path)]
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f for f in info.fields}
        return [
            p
            for name, item in value.items()
            if (field := fields.get(name)) is not None
            for p in newline_keys(item, field.type, f"{path}.{name}")
        ]
    if isinstance(info, _ARRAYS) and isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in newline_keys(item, info.item_type, f"{path}[{i}]")]
    if isinstance(info, mi.TupleType) and isinstance(value, list | tuple):
        return [
            p
            for i, (item, t) in enumerate(zip(value, info.item_types, strict=False))
            for p in newline_keys(item, t, f"{path}[{i}]")
        ]
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        found: list[tuple[str, str]] = []
        for k, item in value.items():
            found += newline_keys(k, info.key_type, f"{path}.{k}")
            found += newline_keys(item, info.value_type, f"{path}.{k}")
        return found
    return []


def _explain(message: str) -> str:
    """Make msgspec's key-pattern message readable by a person."""
    return re.sub(r"Expected `str` matching regex '[^']*'", f"Expected a key ({KEY_RULE})", message)


_INDEX = re.compile(r"\[\d+\]")


def key_places(value: Any, info: mi.Type) -> frozenset[tuple[str, str]]:
    """(place, key) of each key ending in a newline in ``value``: the place is the JSON path without indexes
    (``$.variations[].key``), so a key kept where it was is told from the same text put somewhere else."""
    return frozenset((_INDEX.sub("[]", path), key) for path, key in newline_keys(value, info))


def convert(data: Any, target: type[T], *, kept: frozenset[tuple[str, str]] = frozenset()) -> T:
    """Decoded JSON -> ``target``: unknown fields and wrong types are ``InvalidInput`` naming the path.

    A key ending in a newline (which ``Key`` lets through, for the events an earlier version wrote) is refused too,
    unless ``kept`` has it at that place (``key_places``): the entity a merge patch applies to had it there."""
    if not isinstance(data, dict):
        raise InvalidInput(f"Expected a JSON object, got {type(data).__name__}", [Problem("$", "expected an object")])
    info = mi.type_info(target)
    unknown = unknown_fields(data, info)
    if unknown:
        problems = [Problem(p, "unknown field") for p in unknown]
        raise InvalidInput(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}", problems)
    try:
        converted = msgspec.convert(data, target)
    except msgspec.ValidationError as exc:
        message = _explain(str(exc))
        path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "$"
        raise InvalidInput(message, [Problem(path, message.split(" - at `")[0])]) from None
    newline = [path for path, key in newline_keys(data, info) if (_INDEX.sub("[]", path), key) not in kept]
    if newline:
        what = f"Expected a key ({KEY_RULE}), got one ending in a newline"
        raise InvalidInput(f"{what} - at `{newline[0]}`", [Problem(p, what) for p in newline])
    return converted


def without_comment(body: Struct, state_type: type[Any]) -> tuple[Any, str]:
    """Split a ``*Body`` into the domain state and the comment."""
    values = msgspec.structs.asdict(body)
    comment = values.pop("comment", "")
    values.pop("copy_from", None)  # a creation option, not part of the state
    return state_type(**values), comment


def patch_changes(body: Struct) -> tuple[dict[str, Any], str]:
    """The fields actually sent in a ``*Patch`` and the comment."""
    values = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET}
    comment = values.pop("comment", "")
    return values, comment
