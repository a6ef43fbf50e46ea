"""``flagstream history | eval | revert | schedule``: the history features through the admin API.

One module for the four commands (``cli/__init__.py`` maps each to it; the command name picks the arguments):

* ``flagstream history [FLAG [--all-envs]] [--segment S] [--kind K] [--actor A] [--since T] [--until T] [--limit N]
  [--before SEQ]``: the audit log, newest first, each change in sentences (a flag's) or field by field;
* ``flagstream eval [FLAG ...] --context JSON [--as-of T|SEQ]``: what a context gets (got, will get);
* ``flagstream revert [FLAG] (--to T | --seq N)``: restore a flag, or the whole environment;
* ``flagstream schedule list | create FLAG --at T (--on | --off | --archive | --restore | --set JSON) |
  show ID | cancel ID``.

(``flagstream rebuild`` is ``flagstream projector --rebuild``: ``services/projector/rebuild.py``.)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...context import problem
from .api import ApiClient, ApiError, add_client_arguments, client_from, output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.split()[-1]
    add_client_arguments(parser)
    {"history": _history_args, "eval": _eval_args, "revert": _revert_args, "schedule": _schedule_args}[command](parser)


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("flag", nargs="?", help="only this flag")
    p.add_argument(
        "--all-envs", action="store_true", help="a flag's changes in every environment of the project (not only --env)"
    )
    p.add_argument("--segment", help="only this segment")
    p.add_argument("--kind", choices=["flag", "segment", "environment", "schedule", "plan"], help="only this kind")
    p.add_argument("--actor", help="only changes by this actor (as recorded, e.g. a token name)")
    p.add_argument("--since", help="only changes at or after this time (RFC 3339)")
    p.add_argument("--until", help="only changes before this time (RFC 3339)")
    p.add_argument("--limit", type=int, default=20, help="entries per page (default: %(default)s)")
    p.add_argument("--before", type=int, help="page: entries below this stream sequence")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("flags", nargs="*", help="flag keys (default: every active flag)")
    p.add_argument("--context", required=True, help='the context as JSON, e.g. \'{"key": "u1", "country": "fr"}\'')
    p.add_argument("--as-of", help="a time (RFC 3339) or a stream sequence; a future time includes schedules")


def _revert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("flag", nargs="?", help="the flag to revert (default: the whole environment)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--to", help="a time (RFC 3339)")
    when.add_argument("--seq", type=int, help="a stream sequence")


def _schedule_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="scheduled changes of the environment")
    listing.add_argument("--status", choices=["pending", "claimed", "applied", "failed", "cancelled"])
    add_client_arguments(listing, suppress=True)
    create = sub.add_parser("create", help="schedule a change of a flag")
    create.add_argument("flag")
    create.add_argument("--at", required=True, help="when (RFC 3339, in the future)")
    what = create.add_mutually_exclusive_group(required=True)
    for action in ("on", "off", "archive", "restore"):
        what.add_argument(f"--{action}", dest="change", action="store_const", const=action, help=f"{action} the flag")
    what.add_argument("--set", dest="fields", help="top-level fields as JSON, e.g. '{\"fallthrough\": {...}}'")
    add_client_arguments(create, suppress=True)
    for action in ("show", "cancel"):
        one = sub.add_parser(action, help=f"{action} one scheduled change")
        one.add_argument("id")
        add_client_arguments(one, suppress=True)


# -- running ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    try:
        with client_from(args) as client:
            env = f"environments/{args.env}"
            if args.command == "history":
                _history(client, env, args)
            elif args.command == "eval":
                return _eval(client, env, args)
            elif args.command == "revert":
                _revert(client, env, args)
            else:
                _schedule(client, env, args)
    except ApiError as exc:
        print(f"flagstream {args.command}: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"flagstream {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


def _call(client: ApiClient, method: str, tail: str, **kwargs: Any) -> dict[str, Any]:
    return client.request(method, client.project_path(tail), **kwargs)


def _history(client: ApiClient, env: str, args: argparse.Namespace) -> None:
    if args.flag and args.segment:
        raise ValueError("give a flag or --segment, not both")
    params: dict[str, Any] = {"limit": args.limit}
    for name in ("actor", "since", "until", "before"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.all_envs and not args.flag:
        raise ValueError("--all-envs goes with a flag")
    if args.flag and args.all_envs:
        path = f"flags/{args.flag}/history"
    elif args.flag:
        path = f"{env}/flags/{args.flag}/history"
    elif args.segment:
        path = f"{env}/segments/{args.segment}/history"
    else:
        path = f"{env}/history"
        if args.kind:
            params["kind"] = args.kind
    page = _call(client, "GET", path, params=params)
    lines = []
    for item in page["items"]:
        comment = f"  {item['comment']}" if item["comment"] else ""
        where = f"  {item['environment']}" if args.all_envs else ""
        lines.append(f"{item['seq']}  {item['at']}{where}  {item['actor']}  {item['type']} {item['key']}{comment}")
        lines += [f"    {line}" for line in item["lines"]]
    if not page["items"]:
        lines.append("no changes")
    if page.get("next_before"):
        lines.append(f"(more: --before {page['next_before']})")
    output(args, page, "\n".join(lines))


def _instant(value: str) -> dict[str, Any]:
    """A stream sequence (ASCII digits: the API says if it is out of range) or a time."""
    return {"seq": int(value)} if value.isascii() and value.isdigit() else {"as_of": value}


def _eval(client: ApiClient, env: str, args: argparse.Namespace) -> int:
    """Print what the context gets; exit 1 (with why, on stderr) when a flag could not be evaluated for it."""
    try:
        context = json.loads(args.context)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--context is not JSON: {exc}") from None
    body: dict[str, Any] = {"context": context, "flags": args.flags or None}
    if args.as_of:
        body.update(_instant(args.as_of))
    result = _call(client, "POST", f"{env}/evaluate", json=body)
    rows = [
        (r["flag"], json.dumps(r["value"]), r["variation"] or "-", _reason(r["reason"]), r["version"])
        for r in result["results"]
    ]
    head = f"as of seq {result['seq']}" + (f" ({result['at']})" if result.get("at") else "")
    output(args, result, head + "\n" + table(("FLAG", "VALUE", "VARIATION", "REASON", "VERSION"), rows))
    failed = [r for r in result["results"] if r["reason"].get("error_kind")]
    if not failed:
        return 0
    if any(r["reason"]["error_kind"] == "MALFORMED_CONTEXT" for r in failed):
        why = problem(context) or "see docs/sdk.md#contexts"
        print(f"flagstream eval: the context cannot be used: {why}", file=sys.stderr)
    others = [f"{r['flag']}: {r['reason']['error_kind']}" for r in failed]
    others = [line for line in others if not line.endswith("MALFORMED_CONTEXT")]
    if others:
        print(f"flagstream eval: not evaluated: {', '.join(others)}", file=sys.stderr)
    return 1


def _reason(reason: dict[str, Any]) -> str:
    detail = reason.get("rule_id") or reason.get("prerequisite_key") or reason.get("error_kind")
    return reason["kind"] + (f" ({detail})" if detail else "") + (" in rollout" if reason.get("in_rollout") else "")


def _revert(client: ApiClient, env: str, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"comment": args.comment}
    body.update({"to": args.to} if args.to else {"seq": args.seq})
    path = f"{env}/flags/{args.flag}/revert" if args.flag else f"{env}/revert"
    result = _call(client, "POST", path, json=body)
    lines = [result["comment"]]
    lines += [f"  {w['action']} {w['kind']} {w['key']} -> version {w['version']}" for w in result["written"]]
    if not result["written"]:
        lines.append("  nothing to change: already in that state")
    output(args, result, "\n".join(lines))


def _schedule(client: ApiClient, env: str, args: argparse.Namespace) -> None:
    base = f"{env}/schedules"
    if args.action == "list":
        params = {"status": args.status} if args.status else {}
        items = _call(client, "GET", base, params=params)["items"]
        rows = [(i["id"], i["due"], i["status"], i["description"], i["actor"]) for i in items]
        text = table(("ID", "DUE", "STATUS", "CHANGE", "BY"), rows) if rows else "no scheduled changes"
        output(args, {"items": items}, text)
        return
    if args.action == "create":
        body: dict[str, Any] = {"due": args.at, "flag": args.flag, "comment": args.comment}
        if args.fields is not None:
            try:
                body.update(action="patch", changes=json.loads(args.fields))
            except json.JSONDecodeError as exc:
                raise ValueError(f"--set is not JSON: {exc}") from None
        else:
            body["action"] = args.change
        rec = _call(client, "POST", base, json=body)
    elif args.action == "cancel":
        rec = _call(client, "POST", f"{base}/{args.id}/cancel", json={})
    else:
        rec = _call(client, "GET", f"{base}/{args.id}")
    extra = f" (change at {rec['result_seq']})" if rec["result_seq"] else (f": {rec['error']}" if rec["error"] else "")
    output(args, rec, f"{rec['id']}: {rec['description']} at {rec['due']}, {rec['status']}{extra}")
