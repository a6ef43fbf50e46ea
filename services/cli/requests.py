"""``flagstream requests list|show|approve|reject|apply|comment|cancel|rebase``: change requests through the admin API.

In an environment that asks for approvals, a change made with any other command (``flags on``, ``apply``,
``revert``...) is held as a change request and the command says which; these commands review and apply them.
"""

from __future__ import annotations

import argparse
from typing import Any

from .api import ApiClient, _segment, add_client_arguments, dispatch, output, table

STATUSES = ("open", "applied", "rejected", "cancelled", "failed", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list change requests (open ones by default)")
    listing.add_argument("--status", choices=STATUSES, default="open")
    listing.add_argument("--flag", help="only those changing this flag")
    add_client_arguments(listing, suppress=True)
    for action, text in (
        ("show", "show a change request: what it changes, in sentences, and who approved it"),
        ("approve", "approve a change request (an approver of its environments, not its author)"),
        ("reject", "reject a change request: it is closed"),
        ("apply", "apply an approved change request: all its changes at once, or none"),
        ("cancel", "cancel a change request (its author, or an admin)"),
        ("rebase", "make a change request's changes again on the current state (its author; drops approvals)"),
        ("comment", "comment on a change request"),
    ):
        one = sub.add_parser(action, help=text)
        one.add_argument("id", help="the change request's id (see requests list)")
        if action == "comment":
            one.add_argument("text", help="what to say")
        add_client_arguments(one, suppress=True)


def _path(client: ApiClient, rid: str = "") -> str:
    return client.project_path("requests" + (f"/{_segment(rid)}" if rid else ""))


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    params = {"status": args.status, **({"flag": args.flag} if args.flag else {})}
    items = client.request("GET", _path(client), params=params)["items"]
    output(args, {"items": items}, _table(items))


def _show(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.request("GET", _path(client, args.id))
    output(args, rec, describe(rec))


def _step(step: str) -> Any:
    def act(client: ApiClient, args: argparse.Namespace) -> None:
        body = {"text": args.text} if step == "comments" else {"comment": args.comment}
        rec = client.request("POST", f"{_path(client, args.id)}/{step}", json=body)
        verb = {"approve": "approved", "reject": "rejected", "apply": "applied", "cancel": "cancelled",
                "rebase": "rebased", "comments": "commented on"}[step]  # fmt: skip
        output(args, rec, f"{verb} change request {rec['id']}\n{describe(rec)}")

    return act


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "show": _show, "comment": _step("comments")}
    actions |= {step: _step(step) for step in ("approve", "reject", "apply", "cancel", "rebase")}
    return dispatch(args, "requests", actions)


def _state(rec: dict[str, Any]) -> str:
    if rec["status"] != "open":
        return rec["status"]
    if rec["approved"]:
        return "approved"
    return "needs " + ", ".join(f"{n} in {env}" for env, n in sorted(rec["missing"].items()))


def _table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no change requests"
    rows = [(i["id"], i["title"][:48], i["author"]["name"], _state(i), len(i["changes"]), i["at"][:19]) for i in items]
    return table(("ID", "TITLE", "AUTHOR", "STATE", "CHANGES", "LAST STEP"), rows)


def describe(rec: dict[str, Any]) -> str:
    """A change request for people: what it is, what it changes (in the history's sentences), who said what."""
    out = [f"{rec['id']}: {rec['title']}", f"  by {rec['author']['name']}, {_state(rec)} (revision {rec['revision']})"]
    if rec.get("apply_at"):
        out.append(f"  applies at {rec['apply_at']} if approved by then")
    if rec.get("description"):
        out += [f"  {line}" for line in rec["description"].splitlines()]
    for change in rec["changes"]:
        base = f"version {change['base']}" if change["base"] else "new"
        out.append(f"  {change['kind']} {change['key']} in {change['environment']} (from {base}):")
        out += [f"    {line}" for line in change["lines"]] or ["    (no visible change)"]
    for review in rec["approvals"]:
        said = f": {review['comment']}" if review.get("comment") else ""
        out.append(f"  approved by {review['by']['name']}{said}")
    if rec.get("rejection"):
        said = f": {rec['rejection']['comment']}" if rec["rejection"].get("comment") else ""
        out.append(f"  rejected by {rec['rejection']['by']['name']}{said}")
    for remark in rec["comments"]:
        out.append(f"  {remark['by']['name']}: {remark['text']}")
    if rec.get("error"):
        out.append(f"  {rec['error']}")
    return "\n".join(out)
