"""``flagstream projects list``: the projects that have environments, through the admin API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .api import ApiClient, ApiError, add_client_arguments, client_from, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list projects and their environments")
    add_client_arguments(listing, suppress=True)


def list_projects(client: ApiClient) -> list[dict[str, Any]]:
    return client.request("GET", "/api/v1/projects")["items"]  # type: ignore[no-any-return]


def run(args: argparse.Namespace) -> int:
    try:
        with client_from(args) as client:
            items = list_projects(client)
    except ApiError as exc:
        print(f"flagstream projects {args.action}: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"items": items}, indent=2))
    elif not items:
        print("no projects")
    else:
        print(table(("PROJECT", "ENVIRONMENTS"), [(p["key"], ", ".join(p["environments"])) for p in items]))
    return 0
