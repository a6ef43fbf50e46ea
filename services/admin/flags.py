"""Admin feature module: flags across the environments of a project (see ``services/changes/flags.py``).

``/projects/{project}/flags``: every flag of the project with what it does in each environment (a one-line
summary each, for a table with a column per environment); create one, present in every environment.
``/flags/{key}``: the flag in one document (its project-wide definition once, each environment's
configuration); ``PATCH`` with a JSON Merge Patch of either or both; archive, restore, delete (a tombstone).
``/flags/{key}/environments/{environment}``: one environment's configuration (``PUT``/``PATCH``).

Versions: an environment's configuration has its own (the stream sequence of the flag's last event there, as on
the environment routes); the whole flag's version is the latest of them, so any change anywhere moves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from msgspec import Struct
from starlette.requests import Request
from starlette.responses import Response

from ...events import ENVIRONMENT_FIELDS, Flag, Prerequisite, Rule, Serve, Target, Variation, tag_of
from ...events.model import Key
from ...validation import Problem
from ..changes import (
    DEFINITION_FIELDS,
    ActionBody,
    InvalidInput,
    MalformedRequest,
    NotFound,
    NotPermitted,
    ProjectFlag,
    Stored,
    apply_merge_patch,
    change_flag,
    check_key,
    check_lengths,
    configuration_of,
    convert,
    create_flag_everywhere,
    delete_flag_everywhere,
    parse_json,
)
from ..history import Change, diff, lines
from ..targeting import configuration_lines, summary
from ..tokens import Role
from .routes import (
    API,
    Endpoint,
    Query,
    _key,
    _where,
    allowed,
    json_response,
    read_body,
    service_of,
    write_request,
)

# -- bodies ------------------------------------------------------------------------------------------------


def _fields_of(names: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    out = []
    for f in msgspec.structs.fields(Flag):
        if f.name in names:
            default = (
                f.default if f.default is not msgspec.NODEFAULT else msgspec.field(default_factory=f.default_factory)
            )
            out.append((f.name, f.type, default))
    return out


#: What a flag is, project-wide: the same in every environment.
Definition = msgspec.defstruct(
    "FlagDefinition", [("key", str), *_fields_of((*DEFINITION_FIELDS, "archived"))], kw_only=True, module=__name__
)
#: What a flag does in one environment.
Configuration = msgspec.defstruct(
    "FlagConfiguration", _fields_of(ENVIRONMENT_FIELDS), kw_only=True, forbid_unknown_fields=True, module=__name__
)


class ConfigurationBody(Configuration, kw_only=True):  # type: ignore[misc, valid-type]
    """A whole configuration of one environment (``PUT``), with a change comment."""

    comment: str = ""


#: A new flag: what it is, and the default and off variations every environment starts with (off).
CreateBody = msgspec.defstruct(
    "FlagCreateBody",
    [("key", Key), *_fields_of((*DEFINITION_FIELDS, "off_variation", "fallthrough")), ("comment", str, "")],
    kw_only=True,
    module=__name__,
)


class EnvironmentConfig(Struct, kw_only=True, omit_defaults=True):
    """A flag's configuration in one environment, with the facts of the event that set it."""

    version: int
    revision: int
    actor: str
    at: datetime
    comment: str
    event: str
    on: bool
    off_variation: str
    fallthrough: Serve
    targets: list[Target]
    rules: list[Rule]
    prerequisites: list[Prerequisite]
    #: The configuration in one line (what a list column shows), and line by line in evaluation order.
    summary: str
    lines: list[str]
    #: Only where they differ from the definition (data written before flags were project-wide).
    variations: list[Variation] | None = None


class ProjectFlagRecord(Struct, kw_only=True):
    key: str
    #: The whole flag's version: send it as ``If-Match`` with a ``PATCH`` of the flag.
    version: int
    definition: Definition  # type: ignore[valid-type]
    environments: dict[str, EnvironmentConfig]
    #: Environments whose project-wide fields differ from the definition, and which (data written before flags
    #: were project-wide; the next project-wide change writes one definition everywhere).
    diverged: dict[str, list[str]]
    #: Environments where the flag does not exist (data from before; the next project-wide change creates it).
    missing: list[str]


class ProjectFlagList(Struct, kw_only=True):
    environments: list[str]
    items: list[ProjectFlagRecord]


def _config(stored: Stored, definition: Flag) -> EnvironmentConfig:
    event = stored.event
    flag: Flag = event.flag  # type: ignore[attr-defined]
    return EnvironmentConfig(
        version=stored.seq,
        revision=event.version,  # type: ignore[attr-defined]
        actor=event.actor,  # type: ignore[attr-defined]
        at=event.at,  # type: ignore[attr-defined]
        comment=event.comment,  # type: ignore[attr-defined]
        event=tag_of(event),
        on=flag.on,
        off_variation=flag.off_variation,
        fallthrough=flag.fallthrough,
        targets=list(flag.targets),
        rules=list(flag.rules),
        prerequisites=list(flag.prerequisites),
        summary=summary(flag),
        lines=configuration_lines(flag),
        variations=list(flag.variations) if flag.variations != definition.variations else None,
    )


def project_record(pf: ProjectFlag, visible: Callable[[str], bool] | None = None) -> ProjectFlagRecord:
    """The whole flag; ``visible``: whether the caller may read an environment (None: every one), the others
    left out."""
    definition = pf.require()

    def shown(env: str) -> bool:
        return visible is None or visible(env)

    return ProjectFlagRecord(
        key=pf.key,
        version=pf.version,
        definition=msgspec.convert(msgspec.to_builtins(definition), Definition),
        environments={env: _config(pf.states[env], definition) for env in pf.live if shown(env)},
        diverged={env: fields for env, fields in pf.diverged().items() if shown(env)},
        missing=[env for env in pf.missing() if shown(env)],
    )


def _visible(request: Request) -> Callable[[str], bool] | None:
    """Whether the caller may read an environment (a token limited to some sees only theirs); None: every one."""
    return allowed(request, Role.READER)


def _render(pf: ProjectFlag, request: Request, status: int = 200) -> Response:
    rec = project_record(pf, _visible(request))
    return json_response(rec, status, {"ETag": f'"{rec.version}"'})


# -- handlers ----------------------------------------------------------------------------------------------


async def list_flags(request: Request) -> Response:
    project, _ = _where(request)
    service = service_of(request)
    archived = request.query_params.get("archived", "false")
    found = await service.project_flags(project)
    keep = {"true": lambda f: f.archived, "false": lambda f: not f.archived, "all": lambda f: True}.get(archived)
    if keep is None:
        raise MalformedRequest(f"archived must be true, false or all, got {archived!r}")
    visible = _visible(request)
    environments = [e for e in await service.environment_keys(project) if visible is None or visible(e)]
    items = [project_record(pf, visible) for pf in found if keep(pf.require())]
    return json_response(ProjectFlagList(environments=environments, items=items))


async def create_flag(request: Request) -> Response:
    project, _ = _where(request)
    data = check_lengths(parse_json(await read_body(request)))
    body = msgspec.structs.asdict(convert(data, CreateBody))
    req = write_request(request, body.pop("comment"))
    flag = Flag(**body)
    service = service_of(request)
    pf, _ = await service.write_flag(
        project, flag.key, req, lambda pf, ctx: create_flag_everywhere(pf, None, flag, ctx), created=True
    )
    response = _render(pf, request, 201)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{flag.key}"
    return response


async def get_flag(request: Request) -> Response:
    project, _ = _where(request)
    return _render(await service_of(request).project_flag(project, _key(request)), request)


async def patch_flag(request: Request) -> Response:
    """A JSON Merge Patch of the whole flag: project-wide fields at the top, each environment's configuration
    under ``environments``; applied as one change (one atomic batch)."""
    project, _ = _where(request)
    key = _key(request)
    data = check_lengths(parse_json(await read_body(request)))
    if not isinstance(data, dict):
        raise InvalidInput("a merge patch is a JSON object", [Problem("$", "expected a JSON object")])
    comment = data.pop("comment", "")
    if not isinstance(comment, str):
        raise InvalidInput("comment must be a string", [Problem("$.comment", "expected a string")])
    environments = data.pop("environments", None) or {}
    if not isinstance(environments, dict):
        raise InvalidInput("environments must be an object", [Problem("$.environments", "expected an object")])
    if "key" in data and data["key"] != key:
        raise InvalidInput(f"the key cannot change ({key!r})", [Problem("$.key", "cannot change")])
    wrong = [f for f in data if f not in (*DEFINITION_FIELDS, "key")]
    if wrong:
        raise InvalidInput(
            f"not fields of a flag's definition: {', '.join(wrong)} (per environment: under environments.<env>)",
            [Problem(f"$.{f}", "unknown or per-environment field") for f in wrong],
        )
    req = write_request(request, comment)

    def decision(pf: ProjectFlag, ctx: Any) -> Any:
        definition = None
        if data:
            merged = apply_merge_patch(pf.require(), data)
            definition = {f: getattr(merged, f) for f in DEFINITION_FIELDS}
        configurations = {}
        for env, patch in environments.items():
            if env not in pf.environments:
                raise NotFound(f"environment {env!r} not found in project {project!r}")
            if not isinstance(patch, dict) or set(patch) - set(ENVIRONMENT_FIELDS):
                bad = sorted(set(patch) - set(ENVIRONMENT_FIELDS)) if isinstance(patch, dict) else ["(not an object)"]
                raise InvalidInput(
                    f"not per-environment fields in environments.{env}: {', '.join(bad)}",
                    [Problem(f"$.environments.{env}.{b}", "not a per-environment field") for b in bad],
                )
            current = pf.flag(env) or pf.require()
            configurations[env] = configuration_of(apply_merge_patch(current, patch))
        return change_flag(pf, ctx, definition=definition, configurations=configurations)

    pf, _ = await service_of(request).write_flag(project, key, req, decision)
    return _render(pf, request)


def make_archive(archived: bool) -> Any:
    async def handler(request: Request) -> Response:
        project, _ = _where(request)
        body = convert(parse_json(await read_body(request), allow_empty=True), ActionBody)
        req = write_request(request, body.comment)
        pf, _ = await service_of(request).archive_flag(project, _key(request), archived, req)
        return _render(pf, request)

    return handler


async def delete_flag(request: Request) -> Response:
    project, _ = _where(request)
    key = _key(request)
    body = convert(parse_json(await read_body(request), allow_empty=True), ActionBody)
    req = write_request(request, body.comment)

    pf, _ = await service_of(request).write_flag(project, key, req, delete_flag_everywhere)
    return json_response(DeletedRecord(key=key, version=pf.version, environments=sorted(pf.states)))


class DeletedRecord(Struct, kw_only=True):
    key: str
    version: int
    environments: list[str]


def _environment(request: Request) -> str:
    return check_key(request.path_params["environment"], "environment")


async def get_configuration(request: Request) -> Response:
    project, _ = _where(request)
    env = _environment(request)
    visible = _visible(request)
    if visible is not None and not visible(env):
        raise NotPermitted(f"you may not read environment {env!r}")
    pf = await service_of(request).project_flag(project, _key(request))
    if env not in pf.environments:
        raise NotFound(f"environment {env!r} not found in project {project!r}")
    pf.require(env)
    config = _config(pf.states[env], pf.require())
    return json_response(config, headers={"ETag": f'"{config.version}"'})


def make_configuration_write(whole: bool) -> Any:
    async def handler(request: Request) -> Response:
        project, _ = _where(request)
        env = _environment(request)
        key = _key(request)
        data = check_lengths(parse_json(await read_body(request)))
        comment = data.pop("comment", "") if isinstance(data, dict) else ""
        if whole:
            missing = [f for f in ENVIRONMENT_FIELDS if not isinstance(data, dict) or f not in data]
            if missing:
                raise InvalidInput(
                    f"a PUT carries the whole configuration; missing: {', '.join(missing)} (PATCH changes some)",
                    [Problem(f"$.{f}", "missing") for f in missing],
                )
            body = convert(data, Configuration)
        req = write_request(request, comment if isinstance(comment, str) else "")

        def decision(pf: ProjectFlag, ctx: Any) -> Any:
            if env not in pf.environments:
                raise NotFound(f"environment {env!r} not found in project {project!r}")
            current = pf.flag(env) or pf.require()
            if whole:
                config = msgspec.structs.asdict(body)
            else:
                patch = data
                if isinstance(patch, dict) and set(patch) - set(ENVIRONMENT_FIELDS):
                    bad = sorted(set(patch) - set(ENVIRONMENT_FIELDS))
                    raise InvalidInput(
                        f"not per-environment fields: {', '.join(bad)} (project-wide: PATCH the flag)",
                        [Problem(f"$.{b}", "not a per-environment field") for b in bad],
                    )
                config = configuration_of(apply_merge_patch(current, patch))
            return change_flag(pf, ctx, configurations={env: config})

        pf, _ = await service_of(request).write_flag(project, key, req, decision, version_in=env)
        config = _config(pf.states[env], pf.require())
        return json_response(config, headers={"ETag": f'"{config.version}"'})

    return handler


# -- compare and promote -----------------------------------------------------------------------------------


class FlagDifference(Struct, kw_only=True):
    """How a flag's configuration in ``to`` would change to match ``from``: the field-level changes, in words."""

    key: str
    #: The flag's version in ``to`` (send them back as ``expected`` to promote exactly what was previewed).
    version: int
    changes: list[Change]
    lines: list[str]


class Comparison(Struct, kw_only=True):
    project: str
    from_: str = msgspec.field(name="from")
    to: str
    flags: list[FlagDifference]


class PromotionBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """Copy flags' configurations from one environment to another, all or none."""

    from_: Key = msgspec.field(name="from")
    to: Key
    #: The flags to copy (default: every active flag of the project).
    flags: list[Key] | None = None
    #: Preview only: what would change, nothing written.
    dry_run: bool = False
    #: The versions in ``to`` the preview showed (flag -> version): a flag that moved since refuses the whole.
    expected: dict[str, int] | None = None
    comment: str = ""


class Promotion(Comparison, kw_only=True):
    #: Whether it was written (false for a dry run, or when nothing differs).
    applied: bool
    #: The change id the written events carry (empty if nothing was written).
    change: str = ""


def _differences(pfs: list[ProjectFlag], target: str, writes: list[Any]) -> list[FlagDifference]:
    written = {w.event.flag.key: w.event.flag for w in writes}
    out = []
    for pf in pfs:
        if pf.key not in written:
            continue
        before = pf.flag(target)
        changes = diff(configuration_of(before) if before else None, configuration_of(written[pf.key]))
        version = pf.states[target].seq if target in pf.states else 0
        out.append(FlagDifference(key=pf.key, version=version, changes=changes, lines=lines(changes)))
    return out


def _may_read(request: Request, *environments: str) -> None:
    visible = _visible(request)
    hidden = [e for e in environments if visible is not None and not visible(e)]
    if hidden:
        raise NotPermitted(f"comparing or promoting needs the right to read {', '.join(hidden)}")


def _query_env(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise MalformedRequest(f"say which environment: ?{name}=ENV")
    return check_key(value, name)


async def compare_flag(request: Request) -> Response:
    """What copying the flag's configuration from ``from`` to ``to`` would change (nothing is written)."""
    project, _ = _where(request)
    key = _key(request)
    source, target = _query_env(request, "from"), _query_env(request, "to")
    _may_read(request, source, target)
    req = write_request(request, "")
    chosen, writes, _ = await service_of(request).promote(project, source, target, [key], req, dry_run=True)
    return json_response(
        Comparison(project=project, from_=source, to=target, flags=_differences(chosen, target, writes))
    )


async def promote_flags(request: Request) -> Response:
    project, _ = _where(request)
    body = convert(check_lengths(parse_json(await read_body(request))), PromotionBody)
    _may_read(request, body.from_, body.to)
    req = write_request(request, body.comment)
    chosen, writes, applied = await service_of(request).promote(
        project, body.from_, body.to, body.flags, req, dry_run=body.dry_run, expected=body.expected
    )
    return json_response(
        Promotion(
            project=project,
            from_=body.from_,
            to=body.to,
            flags=_differences(chosen, body.to, writes),
            applied=applied,
            change=writes[0].event.change if applied and writes else "",
        )
    )


# -- the table ---------------------------------------------------------------------------------------------

FROM = Query("from", "the environment whose configuration would be copied")
TO = Query("to", "the environment it would be copied to")
ARCHIVED = Query("archived", "true: archived only; false (default): active only; all: both", ("true", "false", "all"))


def _endpoints(base: str, suffix: str) -> list[Endpoint]:
    coll = f"{base}/flags"
    one = f"{coll}/{{key}}"
    env = f"{one}/environments/{{environment}}"
    tag = "flags across environments"
    return [
        Endpoint("GET", coll, list_flags, f"listProjectFlags{suffix}",
                 "Every flag of the project, with what it does in each environment", tag, None, ProjectFlagList,
                 query=(ARCHIVED,)),
        Endpoint("POST", coll, create_flag, f"createProjectFlag{suffix}",
                 "Create a flag: present in every environment of the project, off", tag, CreateBody,
                 ProjectFlagRecord, 201, write=True),
        Endpoint("GET", one, get_flag, f"getProjectFlag{suffix}",
                 "A flag: its definition and each environment's configuration", tag, None, ProjectFlagRecord),
        Endpoint("PATCH", one, patch_flag, f"patchProjectFlag{suffix}",
                 "Change a flag's definition and/or environments' configurations: a JSON Merge Patch", tag,
                 None, ProjectFlagRecord, write=True),
        Endpoint("DELETE", one, delete_flag, f"deleteProjectFlag{suffix}",
                 "Delete an archived flag from every environment (a tombstone: its history stays)", tag,
                 ActionBody, DeletedRecord, write=True),
        Endpoint("POST", f"{one}/archive", make_archive(True), f"archiveProjectFlag{suffix}",
                 "Archive a flag in every environment", tag, ActionBody, ProjectFlagRecord, write=True),
        Endpoint("POST", f"{one}/restore", make_archive(False), f"restoreProjectFlag{suffix}",
                 "Restore an archived flag in every environment", tag, ActionBody, ProjectFlagRecord, write=True),
        Endpoint("GET", f"{one}/compare", compare_flag, f"compareFlag{suffix}",
                 "How a flag's configuration differs between two environments (what a promotion would change)",
                 tag, None, Comparison, query=(FROM, TO)),
        Endpoint("POST", f"{base}/promotions", promote_flags, f"promoteFlags{suffix}",
                 "Copy flags' configurations from one environment to another: previewed, then all or none", tag,
                 PromotionBody, Promotion, write=True),
        Endpoint("GET", env, get_configuration, f"getFlagConfiguration{suffix}",
                 "A flag's configuration in one environment", tag, None, EnvironmentConfig),
        Endpoint("PUT", env, make_configuration_write(True), f"replaceFlagConfiguration{suffix}",
                 "Replace a flag's whole configuration in one environment", tag, ConfigurationBody,
                 EnvironmentConfig, write=True),
        Endpoint("PATCH", env, make_configuration_write(False), f"patchFlagConfiguration{suffix}",
                 "Change some of a flag's configuration in one environment: a JSON Merge Patch", tag, None,
                 EnvironmentConfig, write=True),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
