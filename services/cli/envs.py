"""``flagstream envs list|create|approvals``: environments through the admin API."""

from __future__ import annotations

import argparse
from typing import Any

from .api import ApiClient, _segment, add_client_arguments, dispatch, output, table


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
    gate = sub.add_parser(
        "approvals", help="how many approvals changes to an environment need (0: none), and who may approve"
    )
    gate.add_argument("key", help="the environment")
    gate.add_argument("count", type=int, help="approvals each change needs before it applies (0: none)")
    gate.add_argument(
        "--approvers",
        help="who may approve, comma-separated: roles (reader, writer, admin: that role there or higher) and "
        "group:<name> (people of that single sign-on group); default: writers",
    )
    emergency = gate.add_mutually_exclusive_group()
    emergency.add_argument(
        "--emergency-off", dest="emergency_off", action="store_true", default=None,
        help="a flag may still be turned off at once, without approval (marked as an emergency, a reason required)",
    )  # fmt: skip
    emergency.add_argument("--no-emergency-off", dest="emergency_off", action="store_false")
    add_client_arguments(gate, suppress=True)


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


def _approvals(client: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"approvals": args.count, "comment": args.comment}
    if args.approvers is not None:
        body["approvers"] = [a.strip() for a in args.approvers.split(",") if a.strip()]
    if args.emergency_off is not None:
        body["emergency_off"] = args.emergency_off
    rec = client.request("PATCH", client.project_path(f"environments/{_segment(args.key)}"), json=body)
    env = rec["environment"]
    if not env.get("approvals"):
        said = "changes apply at once"
    else:
        who = ", ".join(env.get("approvers") or ["writer"])
        said = f"changes need {env['approvals']} approval{'s' if env['approvals'] != 1 else ''} (by {who})"
        said += "; a flag may be turned off at once" if env.get("emergency_off") else ""
    output(args, rec, f"environment {rec['key']}: {said} (version {rec['version']})")


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "envs", {"list": _list, "create": _create, "approvals": _approvals})


def _env_table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no environments"
    rows = [
        (i["key"], i["environment"]["name"], "yes" if i["environment"]["production"] else "no", i["version"])
        for i in items
    ]
    return table(("KEY", "NAME", "PRODUCTION", "VERSION"), rows)
