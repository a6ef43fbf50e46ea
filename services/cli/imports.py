"""``flagstream import SOURCE FILE --env E [--dry-run]`` (SOURCE: unleash, flagd, launchdarkly, flagsmith,
growthbook): map another system's flags (and segments) and write them through the admin API, creating or
replacing each; the report says what was mapped, approximated and not imported (docs/migration.md).
``--dry-run`` only prints the report and what would be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...events import Flag, Segment
from ...events.model import to_builtins
from ..importers import ImportFileError, ImportResult, render
from .api import ApiClient, ApiError, Held, _segment, add_client_arguments, client_from, held_text

SOURCES = ("unleash", "flagd", "launchdarkly", "flagsmith", "growthbook")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for source in SOURCES:
        p = sub.add_parser(source, help=f"import a {_WHAT[source]}")
        p.add_argument("file", help=f"the {_WHAT[source]} (JSON)")
        p.add_argument(
            "--dry-run", action="store_true", help="print the report and what would be written; write nothing"
        )
        p.add_argument("--quiet", action="store_true", help="report only what was approximated or not imported")
        if source == "unleash":
            p.add_argument(
                "--user-id-attribute",
                default="userId",
                help="the attribute Unleash's userId maps to (default: userId; 'key' makes it the targeting key)",
            )
            p.add_argument(
                "--source-env",
                default="",
                help="the Unleash environment to import from an admin export holding several",
            )
        if source == "flagd":
            p.add_argument(
                "--fractional",
                choices=("v2", "legacy"),
                default="v2",
                help="the fractional bucketing of the flagd the flags come from: v2 (today's, default) or legacy",
            )
        add_client_arguments(p, suppress=True)


_WHAT = {
    "unleash": "Unleash client features (/api/client/features) or admin export (features-batch/export)",
    "flagd": "flagd flag definition file",
    "launchdarkly": "LaunchDarkly flag data file (flags, segments; the SDKs' file data source, the Relay Proxy's)",
    "flagsmith": "Flagsmith environment document (GET /api/v1/environment-document/, as local evaluation reads it)",
    "growthbook": "GrowthBook SDK features payload (the SDK connection's /api/features/<client key>)",
}


def run(args: argparse.Namespace) -> int:
    try:
        result = _map(args)
    except ImportFileError as e:
        print(f"flagstream import {args.source}: {e}", file=sys.stderr)
        return 1
    if args.json and args.dry_run:
        print(json.dumps(result.to_json() | {"written": []}, indent=2))
        return 0
    if not args.json:
        print(render(result, verbose=not args.quiet))
    if args.dry_run:
        for segment in result.segments:
            print(f"would write segment {segment.key} to {args.env}")
        for flag in result.flags:
            print(f"would write flag {flag.key} to {args.env}")
        return 0
    written: list[str] = []
    failed = 0
    try:
        with client_from(args) as client:
            client.gather = True  # in an environment asking for approvals: one change request for the import
            writer = _Writer(client, args.env, args.comment or f"imported from {args.source}: {args.file}")
            for entity in [*result.segments, *result.flags]:
                try:
                    line = writer.write(entity)
                except Held as held:
                    line = f"held {_label(entity)} {entity.key} for approval in change request {held.request['id']}"
                except ApiError as e:
                    if e.status is None:  # cannot reach the API at all: stop here
                        raise
                    failed += 1
                    line = f"FAILED {_label(entity)} {entity.key}: {e.message}"
                written.append(line)
                if not args.json:
                    print(line)
    except ApiError as e:
        print(f"flagstream import {args.source}: {e.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json() | {"written": written}, indent=2))
    elif client.held is not None:
        print(held_text(client.held))
    return 1 if failed else 0


def _map(args: argparse.Namespace) -> ImportResult:
    if args.source == "unleash":
        from ..importers import load_unleash

        return load_unleash(args.file, user_id_attribute=args.user_id_attribute, environment=args.source_env)
    if args.source == "launchdarkly":
        from ..importers import load_launchdarkly

        return load_launchdarkly(args.file)
    if args.source == "flagsmith":
        from ..importers import load_flagsmith

        return load_flagsmith(args.file)
    if args.source == "growthbook":
        from ..importers import load_growthbook

        return load_growthbook(args.file)
    from ..importers import load_flagd

    return load_flagd(args.file, fractional=args.fractional)


def _label(entity: Flag | Segment) -> str:
    return "flag" if isinstance(entity, Flag) else "segment"


class _Writer:
    """Creates each entity, or replaces it when it already exists (409 on create)."""

    def __init__(self, client: ApiClient, env: str, comment: str) -> None:
        self.client = client
        self.env = env
        self.comment = comment

    def write(self, entity: Flag | Segment) -> str:
        label = _label(entity)
        collection = self.client.project_path(f"environments/{_segment(self.env)}/{label}s")
        body: dict[str, Any] = to_builtins(entity) | {"comment": self.comment}
        try:
            rec = self.client.request("POST", collection, json=body)
            return f"created {label} {entity.key} in {self.env} (version {rec['version']})"
        except ApiError as e:
            if e.status != 409:
                raise
        rec = self.client.request("PUT", f"{collection}/{_segment(entity.key)}", json=body)
        return f"updated {label} {entity.key} in {self.env} (version {rec['version']})"
