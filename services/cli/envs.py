"""``flagstream envs list|create``: environments through the admin API."""

from __future__ import annotations

import argparse
from typing import Any

from .api import ApiClient, add_client_arguments, dispatch, output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list the environments of the project")
    add_client_arguments(listing, suppress=True)
    create = sub.add_parser("create", help="create an environment")
    create.add_argument("key", help="environment key: letters, digits, '-' and '_'")
    create.add_argument("--name", default="", help="display name")
    create.add_argument("--description", default="")
    create.add_argument("--production", action="store_true", help="production-like: changes need care")
    add_client_arguments(create, suppress=True)


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    items = client.list_environments()
    output(args, {"items": items}, _env_table(items))


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    body = {
        "key": args.key,
        "name": args.name,
        "description": args.description,
        "production": args.production,
        "comment": args.comment,
    }
    rec = client.create_environment(body)
    output(args, rec, f"created environment {rec['key']} (version {rec['version']})")


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "envs", {"list": _list, "create": _create})


def _env_table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no environments"
    rows = [
        (i["key"], i["environment"]["name"], "yes" if i["environment"]["production"] else "no", i["version"])
        for i in items
    ]
    return table(("KEY", "NAME", "PRODUCTION", "VERSION"), rows)
