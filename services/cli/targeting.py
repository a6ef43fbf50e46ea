"""``flagstream flags rule|target|default|prereq``: a flag's targeting in one environment, edited without JSON.

    flagstream flags rule add new-checkout --env production --when 'state in CA' --when 'os in iOS' \\
        --rollout on=10,off=90
    flagstream flags rule change new-checkout 1 --env production --rollout on=25,off=75
    flagstream flags rule move new-checkout ca-ios --env production --to 1
    flagstream flags rule remove new-checkout ca-ios --env production
    flagstream flags target add new-checkout alice bob --env production --serve on
    flagstream flags target remove new-checkout bob --env production
    flagstream flags default new-checkout --env production --serve off
    flagstream flags prereq add new-checkout --env production --flag new-cart --is on
    flagstream flags prereq remove new-checkout --env production --flag new-cart

Each edit reads the environment's configuration, changes it and writes it back with ``If-Match`` (a change made
in between is a conflict, never overwritten), then prints the configuration as ``flags show`` does: in the same
words these commands take (``--when 'state in CA' --rollout on=10,off=90``) and as a sentence.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import msgspec

from ...events import Clause, Prerequisite, Rule, Serve, Target
from ..targeting import (
    GrammarError,
    format_condition,
    parse_condition,
    parse_rollout,
    quote,
    rule_text,
    serve_options,
    serve_text,
)
from .api import ApiClient, ApiError, add_client_arguments, output

CONDITIONS = """conditions (--when), [KIND:]ATTRIBUTE [not] OPERATOR VALUES:
  state in CA, NY           country not in NL          email ends-with @acme.com (any case)
  plan equals pro           age >= 18                  version semver>= 2.0.0
  created before 2026-01-01 email exists               organization:tier in gold
  in segment beta-testers   not in segment staff, bots   ip in-cidr 10.0.0.0/8, ::1
  id mod 4, 1               (attribute % 4 == 1)
operators: in, equals, starts-with, ends-with, contains, matches, <, <=, >, >=,
  semver=, semver<, semver<=, semver>, semver>=, before, after, exists, in-cidr, mod
reading options, as imported flags carry them: [semver=strict|launchdarkly|flagd stringify=python|js
  numeric_strings now=always|if_absent]
what is served: --serve VARIATION, or --rollout on=10,off=90 (percent, summing to 100) [--by ATTRIBUTE]"""

GROUPS = ("rule", "target", "default", "prereq")


def _serve_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--serve", metavar="VARIATION", help="serve this variation")
    group.add_argument("--rollout", metavar="V=PCT,...", help="serve variations by percentage, e.g. on=10,off=90")
    group.add_argument(
        "--serve-default", action="store_true", help="serve no variation: the application's own default value"
    )
    parser.add_argument("--by", metavar="[KIND:]ATTRIBUTE", help="bucket a rollout by this attribute (default: key)")


def _group(sub: Any, name: str, text: str) -> Any:
    parser = sub.add_parser(
        name, help=text, description=f"{text}\n\n{CONDITIONS}", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser.add_subparsers(dest="edit", required=True, metavar="EDIT")


def _leaf(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=text, description=f"{text}\n\n{CONDITIONS}", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("key", help="the flag")
    return parser


def add_arguments(sub: Any) -> None:
    """The ``rule``, ``target``, ``default`` and ``prereq`` sub-commands of ``flagstream flags``."""
    rules = _group(sub, "rule", "add, change, move or remove a targeting rule in one environment")
    add = _leaf(rules, "add", "add a rule: its conditions (all must hold) and what it serves")
    add.add_argument("--when", action="append", default=[], metavar="CONDITION", help="a condition (repeat: and)")
    _serve_arguments(add, required=True)
    add.add_argument("--id", help="the rule's id (default: from the conditions)")
    add.add_argument("--position", type=int, help="where it goes, 1 first (default: last)")
    add.add_argument("--description", default="")
    change = _leaf(rules, "change", "change a rule's conditions or what it serves")
    change.add_argument("rule", help="the rule: its id, or its position (1 first)")
    change.add_argument("--when", action="append", default=None, metavar="CONDITION", help="replace the conditions")
    change.add_argument("--add-when", action="append", default=[], metavar="CONDITION", help="add a condition")
    change.add_argument("--drop-when", action="append", default=[], metavar="CONDITION", help="remove a condition")
    _serve_arguments(change, required=False)
    move = _leaf(rules, "move", "move a rule to another position (rules are tried in order)")
    move.add_argument("rule", help="the rule: its id, or its position (1 first)")
    move.add_argument("--to", type=int, required=True, metavar="POSITION", help="its new position, 1 first")
    remove = _leaf(rules, "remove", "remove a rule")
    remove.add_argument("rule", help="the rule: its id, or its position (1 first)")

    targets = _group(sub, "target", "serve a variation to individual contexts in one environment")
    target_add = _leaf(targets, "add", "these context keys get a variation (before any rule)")
    target_add.add_argument("values", nargs="+", metavar="CONTEXT_KEY")
    target_add.add_argument("--serve", required=True, metavar="VARIATION")
    target_add.add_argument("--kind", default="user", help="their context kind (default: user)")
    target_remove = _leaf(targets, "remove", "these context keys are no longer targeted individually")
    target_remove.add_argument("values", nargs="+", metavar="CONTEXT_KEY")
    target_remove.add_argument("--kind", default="user", help="their context kind (default: user)")

    default = sub.add_parser("default", help="what the flag serves when no target or rule matches (when on)")
    default.add_argument("key", help="the flag")
    _serve_arguments(default, required=True)

    prereqs = _group(sub, "prereq", "the flags this one depends on in one environment")
    prereq_add = _leaf(prereqs, "add", "serve this flag normally only if another flag serves a variation")
    prereq_add.add_argument("--flag", required=True, help="the other flag")
    prereq_add.add_argument("--is", dest="variation", required=True, metavar="VARIATION", help="what it must serve")
    prereq_remove = _leaf(prereqs, "remove", "drop a prerequisite")
    prereq_remove.add_argument("--flag", required=True, help="the other flag")
    for parser in (add, change, move, remove, target_add, target_remove, default, prereq_add, prereq_remove):
        add_client_arguments(parser, suppress=True)


# -- reading what was typed ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> Serve | None:
    if getattr(args, "serve_default", False):
        if args.by:
            raise GrammarError("--by goes with --rollout")
        return Serve(default=True)
    if args.serve is not None:
        if args.by:
            raise GrammarError("--by goes with --rollout")
        return Serve(variation=args.serve)
    if args.rollout is not None:
        return Serve(rollout=parse_rollout(args.rollout, args.by))
    if args.by:
        raise GrammarError("--by goes with --rollout")
    return None


def _rule_index(rules: list[Rule], which: str) -> int:
    for i, rule in enumerate(rules):
        if rule.id == which:
            return i
    if which.isdigit() and 1 <= int(which) <= len(rules):
        return int(which) - 1
    ids = ", ".join(f"{i} ({r.id})" for i, r in enumerate(rules, 1)) or "none"
    raise GrammarError(f"no rule {which!r} in this environment (rules: {ids})")


def _new_id(clauses: list[Clause], taken: set[str]) -> str:
    words = [c.attribute if c.attribute != "key" or not c.values else str(c.values[0]) for c in clauses]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(words) or "rule").strip("-")[:40] or "rule"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


# -- the edits -----------------------------------------------------------------------------------------------


def _edit(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The environment's configuration after the edit the command line asks for (only the fields it changes)."""
    rules = [msgspec.convert(r, Rule) for r in config["rules"]]
    group, edit = args.action, getattr(args, "edit", None)
    if group == "rule":
        if edit == "add":
            clauses = [parse_condition(c) for c in args.when]
            serve = _serve(args)
            rule = Rule(
                id=args.id or _new_id(clauses, {r.id for r in rules}),
                description=args.description,
                clauses=tuple(clauses),
                serve=serve,  # type: ignore[arg-type]
            )
            position = len(rules) if args.position is None else max(0, min(len(rules), args.position - 1))
            rules.insert(position, rule)
        else:
            i = _rule_index(rules, args.rule)
            if edit == "remove":
                rules.pop(i)
            elif edit == "move":
                rules.insert(max(0, min(len(rules) - 1, args.to - 1)), rules.pop(i))
            else:
                rule = rules[i]
                clauses = [parse_condition(c) for c in args.when] if args.when is not None else list(rule.clauses)
                for text in args.drop_when:
                    dropped = parse_condition(text)
                    if dropped not in clauses:
                        raise GrammarError(f"rule {rule.id} has no condition {format_condition(dropped)!r}")
                    clauses.remove(dropped)
                clauses += [parse_condition(c) for c in args.add_when]
                serve = _serve(args) or rule.serve
                rules[i] = msgspec.structs.replace(rule, clauses=tuple(clauses), serve=serve)
        return {"rules": msgspec.to_builtins(rules)}
    if group == "target":
        targets = [msgspec.convert(t, Target) for t in config["targets"]]
        values = set(args.values)
        kept = []
        for target in targets:
            rest = tuple(v for v in target.values if target.context_kind != args.kind or v not in values)
            if rest:
                kept.append(msgspec.structs.replace(target, values=rest))
        if edit == "add":
            same = [t for t in kept if t.variation == args.serve and t.context_kind == args.kind]
            if same:
                i = kept.index(same[0])
                kept[i] = msgspec.structs.replace(same[0], values=(*same[0].values, *args.values))
            else:
                kept.append(Target(variation=args.serve, values=tuple(args.values), context_kind=args.kind))
        return {"targets": msgspec.to_builtins(kept)}
    if group == "default":
        return {"fallthrough": msgspec.to_builtins(_serve(args))}
    prereqs = [msgspec.convert(p, Prerequisite) for p in config["prerequisites"]]
    prereqs = [p for p in prereqs if p.flag != args.flag]
    if edit == "add":
        prereqs.append(Prerequisite(flag=args.flag, variation=args.variation))
    return {"prerequisites": msgspec.to_builtins(prereqs)}


def configuration_text(config: dict[str, Any]) -> list[str]:
    """An environment's configuration in the words the editing commands take, each with its sentence."""
    state = "on" if config["on"] else "off"
    lines = [f"  {state}; when off: serve {config['off_variation']}"]
    for p in config["prerequisites"]:
        lines.append(f"  prereq     --flag {quote(p['flag'])} --is {quote(p['variation'])}")
    for t in config["targets"]:
        kind = "" if t.get("context_kind", "user") == "user" else f" --kind {quote(t['context_kind'])}"
        lines.append(f"  target     {' '.join(quote(v) for v in t['values'])} --serve {quote(t['variation'])}{kind}")
    for i, raw in enumerate(config["rules"], 1):
        rule = msgspec.convert(raw, Rule)
        words = [*(f"--when {quote(format_condition(c))}" for c in rule.clauses), serve_options(rule.serve)]
        lines.append(f"  rule {i} ({rule.id}) {' '.join(words)}")
        lines.append(f"      {rule_text(rule)}")
    fallthrough = msgspec.convert(config["fallthrough"], Serve)
    lines.append(f"  default    {serve_options(fallthrough)}")
    lines.append(
        f"      {'Otherwise serve' if config['rules'] or config['targets'] else 'Serve'} {serve_text(fallthrough)}"
    )
    return lines


def run(client: ApiClient, args: argparse.Namespace) -> None:
    path = client.project_path(f"flags/{args.key}/environments/{args.env}")
    current = client.request("GET", path)
    try:
        changes = _edit(current, args)
    except (GrammarError, msgspec.ValidationError) as exc:
        raise ApiError(str(exc)) from None
    changes["comment"] = args.comment
    updated = client.request("PATCH", path, json=changes, headers={"If-Match": f'"{current["version"]}"'})
    text = "\n".join([f"flag {args.key} in {args.env} (version {updated['version']}):", *configuration_text(updated)])
    output(args, updated, text)
