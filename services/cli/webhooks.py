"""``flagstream webhooks create|list|show|ping|delete``: webhooks through the admin API (needs an admin token)."""

from __future__ import annotations

import argparse
from typing import Any

from ..webhooks import KINDS
from .api import ONCE, ApiClient, add_client_arguments, add_connection_arguments, dispatch, output, table

BASE = "/api/v1/webhooks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="send each change to a URL; the signing secret is printed once")
    create.add_argument("url", help="where to POST each change (http or https)")
    create.add_argument("--description", default="", help="what it is for")
    create.add_argument(
        "--env",
        dest="environments",
        action="append",
        default=None,
        help="only changes of this environment (ENV or PROJECT/ENV; repeat for several; default: all)",
    )
    create.add_argument(
        "--kind", dest="kinds", action="append", default=None, choices=KINDS,
        help="only changes of this kind of entity (repeat for several; default: all)",
    )  # fmt: skip
    add_connection_arguments(create)  # the client options, except --env (here: the scope)
    add_client_arguments(sub.add_parser("list", help="list webhooks (never their secrets)"), suppress=True)
    actions = (
        ("show", "a webhook and the status of its deliveries"),
        ("ping", "send a test delivery now and say what the endpoint answered"),
        ("delete", "stop a webhook"),
    )
    for action, text in actions:
        one = sub.add_parser(action, help=text)
        one.add_argument("id", help="the webhook's id (see webhooks list)")
        add_client_arguments(one, suppress=True)


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"url": args.url, "description": args.description}
    if args.environments:
        body["environments"] = args.environments
    if args.kinds:
        body["kinds"] = args.kinds
    rec = client.request("POST", BASE, json=body)
    text = f"created webhook {rec['id']} -> {rec['url']} ({_scope(rec)})\nsigning secret: {rec['secret']}\n" + ONCE
    output(args, rec, text)


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    items = client.request("GET", BASE)["items"]
    rows = [(i["id"], i["url"], _scope(i), i["created_by"], i["created_at"][:19]) for i in items]
    output(
        args, {"items": items}, table(("ID", "URL", "SENDS", "CREATED BY", "CREATED"), rows) if rows else "no webhooks"
    )


def _show(client: ApiClient, args: argparse.Namespace) -> None:
    detail = client.request("GET", f"{BASE}/{args.id}")
    output(args, detail, _detail(detail))


def _ping(client: ApiClient, args: argparse.Namespace) -> int:
    result = client.request("POST", f"{BASE}/{args.id}/ping")
    output(args, result, f"the endpoint answered {result['status']}" if result["ok"] else f"failed: {result['error']}")
    return 0 if result["ok"] else 1


def _delete(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.request("DELETE", f"{BASE}/{args.id}")
    output(args, rec, f"deleted webhook {rec['id']} ({rec['url']}): nothing more is sent")


def run(args: argparse.Namespace) -> int:
    actions = {"create": _create, "list": _list, "show": _show, "ping": _ping, "delete": _delete}
    return dispatch(args, "webhooks", actions)


def _scope(rec: dict[str, Any]) -> str:
    envs = "all environments" if rec.get("environments") is None else ",".join(rec["environments"])
    kinds = "every kind" if rec.get("kinds") is None else ",".join(rec["kinds"])
    return f"{kinds} in {envs}"


def _detail(detail: dict[str, Any]) -> str:
    hook, status = detail["webhook"], detail["status"]
    lines = [
        f"{hook['id']} -> {hook['url']} ({_scope(hook)})",
        f"delivered {status['delivered']}, failed {status['failed']}, failed attempts {status['errors']}, "
        f"still to look at {detail['pending']}, in flight {detail['in_flight']}",
    ]
    if status["last_error"]:
        lines.append(f"last error (event {status['last_seq']}): {status['last_error']}")
    return "\n".join(lines)
