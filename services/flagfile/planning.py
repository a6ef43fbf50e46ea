"""Flags as code, the pure part: the export file of one environment and the plan that would make an environment
match it. No I/O here (``services/cli/flagfile.py`` reads and writes through the admin API).

The file (YAML or JSON, same shape)::

    flagstream: 1            # file format version
    project: default         # where it was exported from (informational: apply targets --env/--project)
    environment: staging
    segments:
      beta-testers: {included: [alice, bob]}
    flags:
      new-checkout:          # the flag key
        kind: boolean
        on: true
        rules: [...]

Entities are mappings keyed by their key; keys are sorted and fields equal to their default are left out (``on``
and ``kind`` of a flag are always written), so a change to one flag is a small diff in Git. Loading puts the
defaults back, so ``load(dump(f)) == f``.

A plan lists, per flag and segment: ``create`` (absent here), ``update`` (with the changed top-level fields),
``restore`` (archived here, active in the file), ``archive`` (archived in the file, or absent from the file with
``prune``); anything equal is left alone. Each change carries the version (stream sequence) read when planning:
applying it sends that as ``If-Match``, so a change made in between is a conflict for that entity only.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import NODEFAULT, Struct

from ...events import Flag, Segment
from ..changes import InvalidInput, convert

FORMAT_VERSION = 1
FORMATS = ("yaml", "json")
#: Fields of a flag written even when they hold their default (they are what a reader looks for first).
ALWAYS = {"flag": ("kind", "on")}
_TOP_LEVEL = {"flagstream", "project", "environment", "flags", "segments"}


class FlagFileError(ValueError):
    """The file cannot be used: the message names the place (``flags.checkout.rules[0]``) and the problem."""


@dataclass(frozen=True)
class FlagFile:
    flags: dict[str, Flag] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    #: Where it came from (informational).
    project: str = ""
    environment: str = ""


# -- the file ----------------------------------------------------------------------------------------------


def compact(value: Any, always: Iterable[str] = ()) -> Any:
    """JSON-ready builtins of a domain value, fields equal to their default left out (recursively)."""
    if isinstance(value, Struct):
        keep = set(always)
        out: dict[str, Any] = {}
        for info in msgspec.structs.fields(value):
            item = getattr(value, info.name)
            default = info.default if info.default is not NODEFAULT else NODEFAULT
            if default is NODEFAULT and info.default_factory is not NODEFAULT:
                default = info.default_factory()
            if info.name not in keep and default is not NODEFAULT and item == default:
                continue
            out[info.encode_name] = compact(item)
        return out
    if isinstance(value, tuple | list):
        return [compact(v) for v in value]
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    return msgspec.to_builtins(value)


def to_document(flagfile: FlagFile) -> dict[str, Any]:
    def entity(state: Flag | Segment, kind: str) -> dict[str, Any]:
        body = compact(state, ALWAYS.get(kind, ()))
        body.pop("key", None)
        return body  # type: ignore[no-any-return]

    return {
        "flagstream": FORMAT_VERSION,
        "project": flagfile.project,
        "environment": flagfile.environment,
        "segments": {k: entity(s, "segment") for k, s in sorted(flagfile.segments.items())},
        "flags": {k: entity(f, "flag") for k, f in sorted(flagfile.flags.items())},
    }


def dump(flagfile: FlagFile, fmt: str = "yaml") -> str:
    """The file's text: stable (sorted keys, defaults left out), ending with a newline."""
    document = to_document(flagfile)
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    import yaml

    return str(yaml.safe_dump(document, sort_keys=True, allow_unicode=True, default_flow_style=False, width=120))


def parse(text: str) -> Any:
    """YAML or JSON text -> builtins (JSON is tried first; YAML needs PyYAML)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml
    except ImportError:
        raise FlagFileError("not valid JSON (install PyYAML to read YAML files)") from None
    try:
        return yaml.load(text, Loader=_loader())  # a SafeLoader, see _loader
    except yaml.YAMLError as exc:
        raise FlagFileError(f"not valid YAML or JSON: {' '.join(str(exc).split())}") from None


def _loader() -> type[Any]:
    """PyYAML's SafeLoader with YAML 1.2 scalars: only true/false are booleans (``on: yes`` is not ``True: True``)
    and dates stay strings, so a hand-written ``on: true`` means the field ``on``."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    dropped = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
    Loader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] not in dropped]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return Loader


def load(text: str) -> FlagFile:
    """Parse and check a file; ``FlagFileError`` naming the first problem."""
    data = parse(text)
    if not isinstance(data, dict):
        raise FlagFileError("expected a mapping at the top (flagstream, flags, segments...)")
    unknown = sorted(set(map(str, data)) - _TOP_LEVEL)
    if unknown:
        raise FlagFileError(
            f"unknown top-level field(s): {', '.join(unknown)} (known: {', '.join(sorted(_TOP_LEVEL))})"
        )
    version = data.get("flagstream", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise FlagFileError(
            f"flagstream: file format {version!r} is not supported (this version reads {FORMAT_VERSION})"
        )
    return FlagFile(
        flags=_entities(data.get("flags"), "flags", Flag),
        segments=_entities(data.get("segments"), "segments", Segment),
        project=str(data.get("project") or ""),
        environment=str(data.get("environment") or ""),
    )


def _entities(section: Any, name: str, state_type: type[Any]) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise FlagFileError(f"{name}: expected a mapping of key -> {name[:-1]}, got {type(section).__name__}")
    out: dict[str, Any] = {}
    for key, body in section.items():
        where = f"{name}.{key}"
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise FlagFileError(f"{where}: expected a mapping, got {type(body).__name__}")
        if "key" in body and body["key"] != key:
            raise FlagFileError(f"{where}: key {body['key']!r} differs from the mapping key {key!r}")
        try:
            out[str(key)] = convert({**body, "key": key}, state_type)
        except InvalidInput as exc:
            raise FlagFileError(f"{where}: {exc.message.replace('$.', '').replace('$', 'here')}") from None
    return out


# -- the plan ----------------------------------------------------------------------------------------------


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RESTORE = "restore"
    ARCHIVE = "archive"


SIGN = {Action.CREATE: "+", Action.UPDATE: "~", Action.RESTORE: "+", Action.ARCHIVE: "-"}


@dataclass(frozen=True)
class Current:
    """An entity as the environment has it now, with its version (the ETag)."""

    state: Flag | Segment
    version: int


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    """What applying does to one entity. ``fields``: an update made before archiving / after restoring."""

    kind: str  # "flag" or "segment"
    key: str
    action: Action
    #: The state to write (create/update/restore); the current one for an archive.
    state: Flag | Segment
    #: Version read while planning (0: absent), sent as If-Match.
    version: int = 0
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    unchanged: int

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)


def field_changes(before: Struct, after: Struct) -> tuple[FieldChange, ...]:
    """Top-level fields that differ (``archived`` is an action of its own, never a field change)."""
    out = []
    for info in msgspec.structs.fields(after):
        if info.name in ("archived", "key"):
            continue
        old, new = getattr(before, info.name), getattr(after, info.name)
        if old != new:
            out.append(FieldChange(info.encode_name, compact(old), compact(new)))
    return tuple(out)


def _entity_changes(
    kind: str, desired: Mapping[str, Any], current: Mapping[str, Current], prune: bool
) -> tuple[list[Change], int]:
    changes: list[Change] = []
    unchanged = 0
    for key in sorted(desired):
        want = desired[key]
        have = current.get(key)
        if have is None:
            if want.archived:  # archived in the file and absent here: nothing to bring over
                unchanged += 1
            else:
                changes.append(Change(kind, key, Action.CREATE, want))
            continue
        fields = field_changes(have.state, want)
        if want.archived and not have.state.archived:
            changes.append(Change(kind, key, Action.ARCHIVE, want, have.version, fields))
        elif have.state.archived and not want.archived:
            changes.append(Change(kind, key, Action.RESTORE, want, have.version, fields))
        elif fields and not want.archived:
            changes.append(Change(kind, key, Action.UPDATE, want, have.version, fields))
        else:
            unchanged += 1
    for key in sorted(set(current) - set(desired)):
        have = current[key]
        if prune and not have.state.archived:
            changes.append(Change(kind, key, Action.ARCHIVE, have.state, have.version))
    return changes, unchanged


def _prerequisites_first(changes: list[Change]) -> list[Change]:
    """Flag writes ordered so a flag's prerequisites are written before it (keys order otherwise)."""
    by_key = {c.key: c for c in changes}
    done: set[str] = set()
    out: list[Change] = []

    def visit(change: Change, path: frozenset[str]) -> None:
        if change.key in done or change.key in path:
            return
        for prerequisite in getattr(change.state, "prerequisites", ()):
            if prerequisite.flag in by_key:
                visit(by_key[prerequisite.flag], path | {change.key})
        done.add(change.key)
        out.append(change)

    for change in changes:
        visit(change, frozenset())
    return out


def plan(
    desired: FlagFile,
    flags: Mapping[str, Current],
    segments: Mapping[str, Current],
    *,
    prune: bool = False,
) -> Plan:
    """The changes that make an environment (``flags``, ``segments``: its current entities) match ``desired``,
    in the order they must be applied: segments, then flags (prerequisites first), then flag archives (a flag
    before its prerequisites), then segment archives (a segment is archived only once no flag uses it)."""
    flag_changes, flags_same = _entity_changes("flag", desired.flags, flags, prune)
    segment_changes, segments_same = _entity_changes("segment", desired.segments, segments, prune)

    def writes(cs: list[Change]) -> list[Change]:
        return [c for c in cs if c.action is not Action.ARCHIVE]

    def archives(cs: list[Change]) -> list[Change]:
        return [c for c in cs if c.action is Action.ARCHIVE]

    ordered = [
        *writes(segment_changes),
        *_prerequisites_first(writes(flag_changes)),
        *reversed(_prerequisites_first(archives(flag_changes))),  # a flag before the flags it needs
        *archives(segment_changes),
    ]
    return Plan(tuple(ordered), flags_same + segments_same)


# -- rendering ---------------------------------------------------------------------------------------------

VALUE_WIDTH = 100


def show(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def describe(change: Change) -> str:
    """One line for a change: ``~ flag checkout (version 12)``."""
    version = f" (version {change.version})" if change.version else ""
    action = "" if change.action in (Action.CREATE, Action.UPDATE) else f" [{change.action}]"
    return f"{SIGN[change.action]} {change.kind} {change.key}{version}{action}"


def render(result: Plan, where: str) -> str:
    """The plan as a person reads it, like ``terraform plan``."""
    if not result.changes:
        return f"No changes: {where} matches the file ({result.unchanged} unchanged)."
    lines = [f"Plan for {where}:"]
    for change in result.changes:
        lines.append(f"  {describe(change)}")
        for f in change.fields:
            lines.append(f"      {f.name}: {show(f.before)} -> {show(f.after)}")
    counts = ", ".join(f"{result.count(a)} to {a}" for a in Action)
    lines.append(f"Plan: {counts}; {result.unchanged} unchanged.")
    return "\n".join(lines)
