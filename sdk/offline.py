"""Offline mode: a client that starts from an exported flag file (or test data) and never connects.

The file is JSON (YAML too when PyYAML is installed, for ``.yaml``/``.yml`` files)::

    {"project": "default", "environment": "production",
     "flags": [{"key": "new-checkout", "on": true}, ...],
     "segments": [{"key": "beta-testers", "included": ["user-1"]}, ...]}

Flags and segments are the domain values of :mod:`flagstream.events` (the same JSON the admin API takes).
A bad file raises :class:`FlagFileError` naming the file and the JSON path of the fault.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from .cache import ClientStatus
from .events import DEFAULT_PROJECT, Flag, Segment
from .persistence import build_ruleset
from .ruleset import Ruleset
from .validation import validate_flag, validate_segment


class FlagFile(msgspec.Struct, kw_only=True):
    project: str = DEFAULT_PROJECT
    environment: str
    flags: list[Flag] = []
    segments: list[Segment] = []


class FlagFileError(ValueError):
    """The flag file cannot be used; the message names the file and the JSON path of the fault."""


def load_flag_file(path: str | os.PathLike[str]) -> FlagFile:
    """Read and check a flag file; raises ``FlagFileError``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlagFileError(f"{path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml  # noqa: F401  (msgspec.yaml needs it)
            except ImportError as exc:
                raise FlagFileError(f"{path}: YAML flag files need PyYAML (pip install pyyaml)") from exc
            flag_file = msgspec.yaml.decode(data, type=FlagFile)
        else:
            flag_file = msgspec.json.decode(data, type=FlagFile)
    except msgspec.DecodeError as exc:
        raise FlagFileError(f"{path}: {exc}") from exc
    problems = _problems(flag_file)
    if problems:
        raise FlagFileError(f"{path}: " + "; ".join(problems))
    return flag_file


def _problems(flag_file: FlagFile) -> list[str]:
    out: list[str] = []
    segments = {s.key: s for s in flag_file.segments}
    flags = {f.key: f for f in flag_file.flags}
    for kind, items in (("flags", flag_file.flags), ("segments", flag_file.segments)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.key in seen:
                out.append(f"duplicate key {item.key!r} - at `$.{kind}[{i}].key`")
            seen.add(item.key)
    for i, flag in enumerate(flag_file.flags):
        for p in validate_flag(flag, segments=segments, flags=flags):
            out.append(f"{p.message} - at `$.flags[{i}]{p.path[1:]}`")
    for i, segment in enumerate(flag_file.segments):
        for p in validate_segment(segment):
            out.append(f"{p.message} - at `$.segments[{i}]{p.path[1:]}`")
    return out


def ruleset_of(flag_file: FlagFile) -> Ruleset:
    return build_ruleset(flag_file.project, flag_file.environment, flag_file.flags, flag_file.segments)


def export_flag_file(ruleset: Ruleset) -> bytes:
    """The flag file (JSON) of a client's current flags: ``path.write_bytes(export_flag_file(client.ruleset))``."""
    flag_file = FlagFile(
        project=ruleset.project,
        environment=ruleset.environment,
        flags=[f for f in ruleset.flags.values() if not f.archived],
        segments=[s for s in ruleset.segments.values() if not s.archived],
    )
    return msgspec.json.format(msgspec.json.encode(flag_file))


class StaticSource:
    """Stands in for the NATS edge of an offline client: loaded from the start, never connects."""

    bad_events = 0
    last_error: BaseException | None = None
    connection = None

    def __init__(self, on_ready: Callable[[], None]) -> None:
        self.status = ClientStatus.READY
        on_ready()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.status = ClientStatus.CLOSED

    def replace_on_first_load(self) -> None:
        pass
