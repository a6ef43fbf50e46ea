"""A flag across the environments of its project, pure: the current state in every environment in, the events
that make a change out (one per environment it touches, appended together as one atomic batch).

A flag exists in every environment of its project. What it *is* (``PROJECT_FIELDS``: name, kind, variations,
tags, lifecycle, archived...) is written to all of them at once; what it *does* (``ENVIRONMENT_FIELDS``: on/off,
targets, rules, default and off variations, prerequisites) to one. Each environment's event carries the whole
flag as that environment sees it, so an SDK reads its own environment and nothing else.

Data written before flags were project-wide may hold a key in some environments only, or with different
names or variations per environment. Nothing is rewritten: each environment keeps serving what it serves. The
project-wide part is read from the environment written last (``ProjectFlag.definition``), the others are
reported as ``diverged``, and the next project-wide change writes one definition to every environment (creating
the flag, off, where it is missing) -- refused while an environment still serves a variation it would remove.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ...events import (
    ENVIRONMENT_FIELDS,
    PROJECT_FIELDS,
    Event,
    Flag,
    FlagArchived,
    FlagCreated,
    FlagDeleted,
    FlagRestored,
    FlagToggled,
    FlagUpdated,
)
from ...validation import Problem
from .decide import FLAG, Context, make_event
from .errors import Conflict, InvalidInput, NotFound
from .store import Stored

#: Project-wide fields a write may set (``archived`` and ``deleted`` change only through their actions).
DEFINITION_FIELDS: tuple[str, ...] = tuple(f for f in PROJECT_FIELDS if f not in ("key", "archived", "deleted"))
#: Project-wide fields that change nothing an SDK answers: a token limited to some environments may change
#: them (they are written to the others too). Everything else written outside its environments is refused.
DESCRIPTIVE_FIELDS: tuple[str, ...] = ("name", "description", "tags", "maintainer", "lifecycle", "remove_by")


@dataclass(frozen=True)
class ProjectFlag:
    """One flag key in a project: its last stored event in each environment where it was ever written."""

    project: str
    key: str
    #: Every environment of the project, sorted by key.
    environments: tuple[str, ...]
    states: Mapping[str, Stored]

    def flag(self, environment: str) -> Flag | None:
        """The flag in ``environment`` (None: not there, or deleted)."""
        stored = self.states.get(environment)
        if stored is None or stored.event.flag.deleted:  # type: ignore[attr-defined]
            return None
        return stored.event.flag  # type: ignore[attr-defined, no-any-return]

    @property
    def live(self) -> dict[str, Flag]:
        return {env: flag for env in self.environments if (flag := self.flag(env)) is not None}

    @property
    def exists(self) -> bool:
        return bool(self.live)

    @property
    def version(self) -> int:
        """The project-wide version (the ETag of the whole flag): the stream sequence of its latest event in any
        environment. Any change anywhere moves it."""
        return max((s.seq for s in self.states.values()), default=0)

    @property
    def definition(self) -> Flag | None:
        """The flag as written last, in whichever environment: its project-wide fields are the flag's."""
        live = [(self.states[env].seq, flag) for env, flag in self.live.items()]
        return max(live, key=lambda item: item[0])[1] if live else None

    def diverged(self) -> dict[str, list[str]]:
        """Environments whose project-wide fields differ from ``definition`` (data written before flags were
        project-wide), with the fields that differ."""
        definition = self.definition
        if definition is None:
            return {}
        out = {}
        for env, flag in self.live.items():
            fields = [f for f in DEFINITION_FIELDS if getattr(flag, f) != getattr(definition, f)]
            if flag.archived != definition.archived:
                fields.append("archived")
            if fields:
                out[env] = fields
        return out

    def missing(self) -> list[str]:
        """Environments where the flag does not exist while it exists elsewhere in the project."""
        return [env for env in self.environments if self.flag(env) is None] if self.exists else []

    def require(self, environment: str | None = None) -> Flag:
        """The flag in ``environment`` (None: its project-wide definition); NotFound if it is not there."""
        if environment is not None:
            flag = self.flag(environment)
            if flag is None:
                raise NotFound(f"flag {self.key!r} not found in environment {environment!r}")
            return flag
        definition = self.definition
        if definition is None:
            raise NotFound(f"flag {self.key!r} not found in project {self.project!r}")
        return definition


@dataclass(frozen=True)
class Write:
    """One event of a change: the environment, the event, and the version it replaces (0: a new subject)."""

    environment: str
    event: Event
    expected_seq: int


def definition_of(flag: Flag) -> dict[str, Any]:
    return {f: getattr(flag, f) for f in DEFINITION_FIELDS}


def configuration_of(flag: Flag) -> dict[str, Any]:
    return {f: getattr(flag, f) for f in ENVIRONMENT_FIELDS}


def blank(template: Flag) -> Flag:
    """The flag as a new environment gets it: the project-wide part of ``template``, off, no targets, rules or
    prerequisites, the same default and off variations."""
    return msgspec.structs.replace(template, on=False, targets=(), rules=(), prerequisites=())


def served_variations(flag: Flag) -> dict[str, str]:
    """The variations the flag's configuration serves, each with where (for an error naming it)."""
    served: dict[str, str] = {}

    def note(variation: str | None, where: str) -> None:
        if variation is not None:
            served.setdefault(variation, where)

    note(flag.off_variation, "as its off variation")
    for target in flag.targets:
        note(target.variation, "to individual targets")
    for i, rule in enumerate(flag.rules):
        note(rule.serve.variation, f"by rule {i + 1} ({rule.id})")
        for weighted in rule.serve.rollout.variations if rule.serve.rollout else ():
            if weighted.weight:
                note(weighted.variation, f"by the rollout of rule {i + 1} ({rule.id})")
    note(flag.fallthrough.variation, "by the default rule")
    for weighted in flag.fallthrough.rollout.variations if flag.fallthrough.rollout else ():
        if weighted.weight:
            note(weighted.variation, "by the default rollout")
    return served


def _check_variations(environment: str, before: Flag | None, after: Flag) -> None:
    """A variation the environment's configuration serves cannot be removed from the flag."""
    if before is None:
        return
    removed = {v.key for v in before.variations} - {v.key for v in after.variations}
    for variation, where in served_variations(after).items():
        if variation in removed:
            raise InvalidInput(
                f"variation {variation!r} is served in {environment} {where}: change that first",
                [Problem("$.variations", f"{variation!r} is served in {environment} {where}")],
            )


def _write(cls: type[Event], environment: str, flag: Flag, pf: ProjectFlag, ctx: Context) -> Write:
    current = pf.states.get(environment)
    revision = current.event.version + 1 if current is not None else 1
    env_ctx = dataclasses.replace(ctx, environment=environment)
    return Write(environment, make_event(cls, FLAG, flag, env_ctx, revision), current.seq if current else 0)


def create(pf: ProjectFlag, environment: str | None, flag: Flag, ctx: Context) -> list[Write]:
    """The flag in every environment of the project: ``flag`` itself in ``environment`` (None: in none, only
    its definition), blank elsewhere."""
    if pf.exists:
        where = ", ".join(sorted(pf.live))
        raise Conflict(f"flag {flag.key!r} already exists in project {pf.project!r} (in {where})")
    if flag.archived or flag.deleted:
        raise InvalidInput("a new flag cannot be archived", [Problem("$.archived", "must be false on create")])
    return [_write(FlagCreated, env, flag if env == environment else blank(flag), pf, ctx) for env in pf.environments]


def change(
    pf: ProjectFlag,
    ctx: Context,
    *,
    definition: Mapping[str, Any] | None = None,
    configurations: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Write]:
    """Set project-wide fields (``definition``: written to every environment, and so creating the flag where it
    is missing) and per-environment fields (``configurations``: environment -> fields). Nothing for what
    already is so."""
    current = pf.require()
    configurations = configurations or {}
    for env in configurations:
        if env not in pf.environments:
            raise NotFound(f"environment {env!r} not found in project {pf.project!r}")
    if current.archived:
        raise Conflict(f"flag {pf.key!r} is archived: restore it before changing it")
    unknown = [f for f in definition or {} if f not in DEFINITION_FIELDS]
    if unknown:
        raise InvalidInput(f"not project-wide fields: {', '.join(unknown)}", [Problem(f"$.{f}", "") for f in unknown])
    new_definition = {**definition_of(current), **(definition or {})}
    writes = []
    for env in pf.environments:
        before = pf.flag(env)
        base = before if before is not None else blank(current)
        if definition is not None or (before is None and env in configurations):
            after = msgspec.structs.replace(base, **new_definition)
        else:
            after = base
        if env in configurations:
            wrong = [f for f in configurations[env] if f not in ENVIRONMENT_FIELDS]
            if wrong:
                raise InvalidInput(
                    f"not per-environment fields: {', '.join(wrong)} (they are the same in every environment)",
                    [Problem(f"$.environments.{env}.{f}", "project-wide") for f in wrong],
                )
            after = msgspec.structs.replace(after, **configurations[env])
        if (before is not None and after == before) or (
            before is None and definition is None and env not in configurations
        ):
            continue
        _check_variations(env, before, after)
        writes.append(_write(FlagUpdated if before is not None else FlagCreated, env, after, pf, ctx))
    return writes


def replace_in(pf: ProjectFlag, environment: str, flag: Flag, ctx: Context) -> list[Write]:
    """A whole flag as one environment sees it (``PUT .../environments/E/flags/K``): its configuration in
    ``environment``, and its project-wide fields, if they changed, in every environment."""
    before = pf.require(environment)
    if flag.archived != before.archived or flag.deleted:
        raise InvalidInput(
            "archived cannot be changed by an update", [Problem("$.archived", "use the archive or restore action")]
        )
    new_definition = definition_of(flag)
    return change(
        pf,
        ctx,
        definition=new_definition if new_definition != definition_of(before) else None,
        configurations={environment: configuration_of(flag)},
    )


def toggle(pf: ProjectFlag, environment: str, on: bool, ctx: Context) -> list[Write]:
    flag = pf.require(environment)
    if flag.archived:
        raise Conflict(f"flag {pf.key!r} is archived: restore it before changing it")
    if flag.on == on:
        return []
    return [_write(FlagToggled, environment, msgspec.structs.replace(flag, on=on), pf, ctx)]


def archive(pf: ProjectFlag, archived: bool, ctx: Context, used_by: Mapping[str, Iterable[str]]) -> list[Write]:
    """Archive (or restore) the flag in every environment. ``used_by``: environment -> active flags that have
    it as a prerequisite there (archiving it would leave them pointing at nothing)."""
    pf.require()
    blocking = {env: sorted(keys) for env, keys in used_by.items() if keys}
    if archived and blocking:
        if len(pf.environments) == 1:
            (keys,) = blocking.values()
            what = ", ".join(map(repr, keys))
        else:
            where = "; ".join(f"in {env}: {', '.join(map(repr, keys))}" for env, keys in sorted(blocking.items()))
            what = f"other flags ({where})"
        raise Conflict(f"flag {pf.key!r} is a prerequisite of {what}: change those flags first")
    cls = FlagArchived if archived else FlagRestored
    return [
        _write(cls, env, msgspec.structs.replace(flag, archived=archived), pf, ctx)
        for env, flag in pf.live.items()
        if flag.archived != archived
    ]


def delete(pf: ProjectFlag, ctx: Context) -> list[Write]:
    """The tombstone in every environment: only for a flag archived everywhere."""
    live = pf.live
    if not live:
        raise NotFound(f"flag {pf.key!r} not found in project {pf.project!r}")
    active = sorted(env for env, flag in live.items() if not flag.archived)
    if active:
        raise Conflict(f"flag {pf.key!r} is not archived (in {', '.join(active)}): archive it before deleting it")
    return [
        _write(FlagDeleted, env, msgspec.structs.replace(flag, deleted=True), pf, ctx) for env, flag in live.items()
    ]


def dependents_by_environment(key: str, flags: Mapping[str, Iterable[Flag]]) -> dict[str, list[str]]:
    """Per environment, the active flags that have flag ``key`` as a prerequisite."""
    return {
        env: sorted(
            f.key for f in env_flags if not f.archived and f.key != key and any(p.flag == key for p in f.prerequisites)
        )
        for env, env_flags in flags.items()
    }


def outside_scope(pf: ProjectFlag, writes: Iterable[Write], allowed: Iterable[str]) -> list[str]:
    """The environments outside ``allowed`` where ``writes`` would change what an SDK answers: anything but the
    flag's creation (off there) or a change of its descriptive fields (name, description, tags...)."""
    allowed = set(allowed)
    denied = set()
    for w in writes:
        if w.environment in allowed:
            continue
        before, after = pf.flag(w.environment), w.event.flag  # type: ignore[attr-defined]
        if isinstance(w.event, FlagCreated) and not pf.exists:
            continue  # the creation: elsewhere the flag starts off
        if isinstance(w.event, FlagUpdated) and before is not None:
            changed = {f for f in Flag.__struct_fields__ if getattr(before, f) != getattr(after, f)}
            if changed <= set(DESCRIPTIVE_FIELDS):
                continue
        denied.add(w.environment)
    return sorted(denied)


#: The most flags one promotion copies (one atomic batch).
MAX_PROMOTION = 1000


def promote(
    pfs: Iterable[ProjectFlag], source: str, target: str, ctx: Context, expected: Mapping[str, int] | None = None
) -> list[Write]:
    """Copy each flag's configuration from ``source`` to ``target`` (where it differs): the events, all or none.

    ``expected``: the target versions the caller previewed (flag -> version); one that moved is a conflict
    naming it, and nothing is copied."""
    if source == target:
        raise InvalidInput("promote from one environment to another", [Problem("$.to", "same as $.from")])
    writes, stale = [], []
    for pf in pfs:
        for env in (source, target):
            if env not in pf.environments:
                raise NotFound(f"environment {env!r} not found in project {pf.project!r}")
        src = pf.require(source)
        current = pf.flag(target)
        if src.archived:
            raise Conflict(f"flag {pf.key!r} is archived: restore it before promoting it")
        version = pf.states[target].seq if target in pf.states else 0
        if expected is not None and pf.key in expected and expected[pf.key] != version:
            stale.append(f"{pf.key} (now at version {version}, not {expected[pf.key]})")
            continue
        missing = sorted(set(served_variations(src)) - {v.key for v in (current or src).variations})
        if missing:
            raise InvalidInput(
                f"flag {pf.key!r} would serve {', '.join(map(repr, missing))} in {target}, where it has no such "
                "variation: nothing was promoted",
                [Problem(f"$.flags.{pf.key}", f"{target} lacks variation {m!r}") for m in missing],
            )
        writes += change(pf, ctx, configurations={target: configuration_of(src)})
    if stale:
        raise Conflict(f"changed in {target} since the preview: {'; '.join(stale)}; nothing was promoted")
    if len(writes) > MAX_PROMOTION:
        raise InvalidInput(
            f"a promotion copies at most {MAX_PROMOTION} flags at once ({len(writes)} differ): name the flags",
            [Problem("$.flags", f"at most {MAX_PROMOTION}")],
        )
    return writes
