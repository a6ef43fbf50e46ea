"""``flagstream flags list|create|show|on|off|archive|restore|diff|copy``, and the targeting edits
``rule|target|default|prereq`` (``targeting.py``): flags through the admin API.

A flag exists in every environment of its project: ``create`` makes it everywhere (off), ``show`` prints what it
is once and what it does in each environment, ``diff`` and ``copy`` compare and promote configurations between
environments (``copy`` previews, then writes all or none)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import targeting
from .api import ApiClient, add_client_arguments, dispatch, output, table

ACTIONS = ("on", "off", "archive", "restore")
KINDS = ("boolean", "string", "number", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="list flags of the environment")
    listing.add_argument("--archived", choices=["true", "false", "all"], default="false")
    listing.add_argument("--tag", help="only flags with this tag")
    listing.add_argument("-q", "--query", dest="q", help="search in key and name")
    add_client_arguments(listing, suppress=True)

    create = sub.add_parser("create", help="create a flag (off, with on/off variations unless told otherwise)")
    create.add_argument("key", help="flag key: letters, digits, '-' and '_'")
    create.add_argument("--name", default="")
    create.add_argument("--kind", choices=KINDS, default="boolean")
    create.add_argument("--description", default="")
    create.add_argument("--tag", action="append", default=[], help="a tag (repeat for more)")
    add_client_arguments(create, suppress=True)

    show = sub.add_parser("show", help="show a flag: what it is, and what it does in each environment (or --env's)")
    show.add_argument("key")
    add_client_arguments(show, suppress=True)

    diff = sub.add_parser("diff", help="how a flag's configuration differs between two environments")
    diff.add_argument("key")
    diff.add_argument("--from", dest="source", required=True, metavar="ENV")
    diff.add_argument("--to", dest="target", required=True, metavar="ENV")
    add_client_arguments(diff, suppress=True)

    copy = sub.add_parser(
        "copy", help="copy flags' configurations from one environment to another: previewed, then all or none"
    )
    copy.add_argument("keys", nargs="*", metavar="KEY", help="the flags (default: every active flag)")
    copy.add_argument("--from", dest="source", required=True, metavar="ENV")
    copy.add_argument("--to", dest="target", required=True, metavar="ENV")
    copy.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    add_client_arguments(copy, suppress=True)

    targeting.add_arguments(sub)

    for action in ACTIONS:
        helps = {"on": "turn a flag on", "off": "turn a flag off", "archive": "archive a flag", "restore": "restore"}
        p = sub.add_parser(action, help=helps[action])
        p.add_argument("key")
        add_client_arguments(p, suppress=True)


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    items = client.list_flags(args.env, archived=args.archived, tag=args.tag, q=args.q)
    output(args, {"items": items}, _flag_table(items, args.env))


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    body = {
        "key": args.key,
        "name": args.name,
        "kind": args.kind,
        "description": args.description,
        "tags": args.tag,
        "comment": args.comment,
    }
    rec = client.create_flag(args.env, body)
    output(args, rec, f"created flag {rec['key']} in {args.env}: off (version {rec['version']})")


def _show(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.get_flag(args.env, args.key)
    whole = client.request("GET", client.project_path(f"flags/{args.key}"))
    lines = [_details(rec, args.env), f"in {args.env}:"]
    lines += targeting.configuration_text(whole["environments"][args.env])
    others = [f"  {env}: {c['summary']}" for env, c in whole["environments"].items() if env != args.env]
    if others:
        lines += ["elsewhere:", *others]
    output(args, {**rec, "project": whole}, "\n".join(lines))


def _diff(client: ApiClient, args: argparse.Namespace) -> int:
    params = {"from": args.source, "to": args.target}
    found = client.request("GET", client.project_path(f"flags/{args.key}/compare"), params=params)
    if not found["flags"]:
        output(args, found, f"flag {args.key}: {args.target} is configured as {args.source}")
        return 0
    lines = [f"flag {args.key}: copying {args.source} to {args.target} would change in {args.target}:"]
    lines += [f"  {line}" for line in found["flags"][0]["lines"]]
    output(args, found, "\n".join(lines))
    return 0


def _copy(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"from": args.source, "to": args.target, "comment": args.comment, "dry_run": True}
    if args.keys:
        body["flags"] = args.keys
    path = client.project_path("promotions")
    preview = client.request("POST", path, json=body)
    if args.dry_run or not preview["flags"]:
        output(args, preview, _promotion_text(preview, "would change"))
        return 0
    expected = {f["key"]: f["version"] for f in preview["flags"]}
    done = client.request("POST", path, json={**body, "dry_run": False, "expected": expected})
    output(args, done, _promotion_text(done, "changed"))
    return 0


def _promotion_text(result: dict[str, Any], verb: str) -> str:
    if not result["flags"]:
        return f"nothing to copy: {result['to']} is configured as {result['from']}"
    lines = [f"{len(result['flags'])} flag(s) {verb} in {result['to']} (from {result['from']}):"]
    for flag in result["flags"]:
        lines.append(f"  {flag['key']} (version {flag['version']})")
        lines += [f"      {line}" for line in flag["lines"]]
    return "\n".join(lines)


def _act(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.flag_action(args.env, args.key, args.action, args.comment)
    output(args, rec, f"flag {rec['key']} in {args.env}: {_state(rec['flag'])} (version {rec['version']})")


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "create": _create, "show": _show, "diff": _diff, "copy": _copy}
    actions |= dict.fromkeys(ACTIONS, _act) | dict.fromkeys(targeting.GROUPS, targeting.run)
    return dispatch(args, "flags", actions)


def _state(flag: dict[str, Any]) -> str:
    return ("on" if flag["on"] else "off") + (", archived" if flag["archived"] else "")


def _flag_table(items: list[dict[str, Any]], env: str) -> str:
    if not items:
        return f"no flags in {env}"
    rows = [
        (
            i["key"],
            i["flag"]["name"],
            i["flag"]["kind"],
            _state(i["flag"]),
            ",".join(i["flag"]["tags"]),
            i["version"],
        )
        for i in items
    ]
    return table(("KEY", "NAME", "KIND", "STATE", "TAGS", "VERSION"), rows)


def _details(rec: dict[str, Any], env: str) -> str:
    flag = rec["flag"]
    serve = flag["fallthrough"]
    fallthrough = serve["variation"] if serve.get("variation") is not None else "rollout"
    lines = [
        ("key", flag["key"]),
        ("name", flag["name"]),
        ("description", flag["description"]),
        ("environment", env),
        ("kind", flag["kind"]),
        ("state", _state(flag)),
        ("tags", ", ".join(flag["tags"])),
        ("variations", ", ".join(f"{v['key']}={json.dumps(v['value'])}" for v in flag["variations"])),
        ("off variation", flag["off_variation"]),
        ("fallthrough", fallthrough),
        ("rules", str(len(flag["rules"]))),
        ("targets", str(len(flag["targets"]))),
        ("prerequisites", ", ".join(f"{p['flag']}={p['variation']}" for p in flag["prerequisites"])),
        ("version", f"{rec['version']} (revision {rec['revision']})"),
        (
            "last change",
            f"{rec['event']} by {rec['actor']} at {rec['at']}" + (f": {rec['comment']}" if rec["comment"] else ""),
        ),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}".rstrip() for k, v in lines)
