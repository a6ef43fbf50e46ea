"""``flagstream export | plan | apply``: flags as code through the admin API (file and plan: ``services/flagfile``).

* ``export --env E [-o FILE] [--format yaml|json] [--all]``: the environment's flags and segments (archived ones
  only with ``--all``) as a file, to stdout by default;
* ``plan -f FILE --env E [--prune]``: what applying it would change;
* ``apply -f FILE --env E [--prune] [--comment C]``: make it so, one write per entity, each guarded by the version
  read when planning (``If-Match``); a conflict fails that entity only, the others are applied.

``-f -`` reads stdin, so promotion is ``flagstream export --env staging | flagstream apply -f - --env production``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ...events import Flag, Segment
from .. import flagfile
from ..flagfile import Action, Change, Current, FlagFile, FlagFileError, Plan, describe
from .api import ApiClient, ApiError, Held, _segment, add_client_arguments, client_from, held_text

PLURAL = {"flag": "flags", "segment": "segments"}
#: How the admin API words a 409 caused by another write (not, e.g., archiving a flag still in use).
RACED = ("is at version", "meanwhile", "already exists")
STATE_TYPES: dict[str, type[Any]] = {"flag": Flag, "segment": Segment}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.split()[-1]
    add_client_arguments(parser)
    if command == "export":
        parser.add_argument("-o", "--output", type=Path, default=None, help="write to this file (default: stdout)")
        parser.add_argument(
            "--format", choices=flagfile.FORMATS, default=None, help="default: from -o's suffix, else yaml"
        )
        parser.add_argument("--all", action="store_true", help="include archived flags and segments")
        return
    parser.add_argument("-f", "--file", required=True, help="the flags file (YAML or JSON; '-': stdin)")
    parser.add_argument("--prune", action="store_true", help="archive flags and segments absent from the file")


def run(args: argparse.Namespace) -> int:
    command = args.command
    try:
        with client_from(args) as client:
            api = FlagsApi(client, args.env)
            if command == "export":
                return _export(api, args)
            desired = flagfile.load(_read(args.file))
            where = f"{client.project}/{args.env}"
            result = flagfile.plan(desired, *api.current(), prune=args.prune)
            print(flagfile.render(result, where), flush=True)
            if command == "plan" or not result.changes:
                return 0
            comment = args.comment or f"flagstream apply {args.file}"
            outcome = execute(api, result, comment)
            print(outcome.summary(), flush=True)
            return 0 if outcome.ok else 1
    except (ApiError, FlagFileError, OSError) as exc:
        print(f"flagstream {command}: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8")


def _export(api: FlagsApi, args: argparse.Namespace) -> int:
    fmt = args.format or ("json" if args.output is not None and args.output.suffix == ".json" else "yaml")
    text = flagfile.dump(api.export(archived=args.all), fmt)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)  # `-o flags/staging.yaml` in a fresh checkout
        args.output.write_text(text, encoding="utf-8")
        print(f"exported {api.client.project}/{api.env} to {args.output}", file=sys.stderr)
    return 0


@dataclass
class FlagsApi:
    """The admin API calls flags-as-code needs, for one environment."""

    client: ApiClient
    env: str

    def _collection(self, kind: str) -> str:
        return self.client.project_path(f"environments/{_segment(self.env)}/{PLURAL[kind]}")

    def _list(self, kind: str, archived: str) -> dict[str, Current]:
        items = self.client.request("GET", self._collection(kind), params={"archived": archived})["items"]
        out = {}
        for item in items:
            state = msgspec.convert(item[kind], STATE_TYPES[kind])
            out[state.key] = Current(state, int(item["version"]))
        return out

    def current(self) -> tuple[dict[str, Current], dict[str, Current]]:
        """Every flag and segment of the environment (archived included) with its version."""
        return self._list("flag", "all"), self._list("segment", "all")

    def export(self, *, archived: bool = False) -> FlagFile:
        which = "all" if archived else "false"
        flags = {k: c.state for k, c in self._list("flag", which).items()}
        segments = {k: c.state for k, c in self._list("segment", which).items()}
        return FlagFile(flags, segments, project=self.client.project, environment=self.env)  # type: ignore[arg-type]

    def write(self, kind: str, method: str, path: str, version: int, body: dict[str, Any]) -> int:
        """One write with If-Match ``version``; returns the new version (the same one if the write is held as a
        change request: the next write of the entity joins the request, based on the same version)."""
        url = self._collection(kind) + path
        try:
            answer = self.client.request(method, url, json=body, headers={"If-Match": f'"{version}"'})
        except Held:
            return version
        return int(answer["version"])


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    #: The change request the changes were gathered in (the environment asks for approvals), if any.
    held: dict[str, Any] | None = None

    def summary(self) -> str:
        lines = [*self.applied, *self.failed]
        if self.held is not None:
            lines.append(f"Held {len(self.applied)} change(s) for approval, {len(self.failed)} failed.")
            lines.append(held_text(self.held))
        else:
            lines.append(f"Applied {len(self.applied)} change(s), {len(self.failed)} failed.")
        return "\n".join(lines)


def apply_change(api: FlagsApi, change: Change, comment: str) -> int:
    """Write one planned change; returns the entity's new version. ``ApiError`` (409 on a conflict) if refused."""
    key = f"/{_segment(change.key)}"
    body = msgspec.to_builtins(msgspec.structs.replace(change.state, archived=False))  # type: ignore[type-var]
    version = change.version
    if change.action is Action.CREATE:
        return api.write(change.kind, "POST", "", 0, {**body, "comment": comment})
    if change.action is Action.RESTORE:
        version = api.write(change.kind, "POST", f"{key}/restore", version, {"comment": comment})
    if change.fields:
        version = api.write(change.kind, "PUT", key, version, {**body, "comment": comment})
    if change.action is Action.ARCHIVE:
        version = api.write(change.kind, "POST", f"{key}/archive", version, {"comment": comment})
    return version


def execute(api: FlagsApi, result: Plan, comment: str) -> Outcome:
    """Apply every change of the plan in order; one that fails is reported and the next ones still go."""
    outcome = Outcome()
    api.client.gather = True  # in an environment asking for approvals: one change request for the whole plan
    for change in result.changes:
        try:
            version = apply_change(api, change, comment)
        except ApiError as exc:
            raced = exc.status == 409 and any(m in exc.message for m in RACED)
            why = "changed since the plan was made; run plan again" if raced else "refused"
            outcome.failed.append(f"FAILED {describe(change)}: {why}: {exc.message}")
            continue
        if api.client.held is not None:
            outcome.applied.append(f"held   {describe(change)}")
        else:
            outcome.applied.append(f"ok     {describe(change)} -> version {version}")
    outcome.held = api.client.held
    return outcome
