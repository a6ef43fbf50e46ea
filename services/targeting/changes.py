"""What a change did to a flag, in sentences (the audit log, webhooks, the CLI):

    turned on
    Rule 1 (ca): added condition country is one of NL, BE
    Rule 1 (ca): rollout on 10% -> 25%
    Default: serve on -> off
    name: "Checkout" -> "One-page checkout"

Pure: two states of one flag in, lines out. Rules are matched by id, so a reordered list reads as a move, not
as every rule changing.
"""

from __future__ import annotations

import json
from typing import Any

from ...events import Flag, Rule, Serve
from .sentences import clause_text, percent, prerequisite_text, rule_text, serve_text

#: The fields described one by one below; any other field that changes is shown as ``field: old -> new``.
_DESCRIBED = {"on", "rules", "fallthrough", "off_variation", "targets", "prerequisites", "variations", "tags"}
_ACTIONS = {"archived": ("restored", "archived"), "deleted": ("", "deleted")}


def _show(value: Any) -> str:
    return json.dumps(value, default=str)


def serve_change(before: Serve, after: Serve) -> str:
    """``serve on -> off``, or for a rollout whose shares moved: ``rollout on 10% -> 25%, off 90% -> 75%``."""
    if before.rollout is not None and after.rollout is not None:
        old = {w.variation: w.weight for w in before.rollout.variations}
        new = {w.variation: w.weight for w in after.rollout.variations}
        moved = [
            f"{v} {percent(old.get(v, 0))} -> {percent(new.get(v, 0))}" for v in dict.fromkeys([*old, *new])
            if old.get(v, 0) != new.get(v, 0)
        ]  # fmt: skip
        if moved and before.rollout.bucket_by == after.rollout.bucket_by:
            return "rollout " + ", ".join(moved)
    return f"serve {serve_text(before)} -> {serve_text(after)}"


def _rule_lines(before: tuple[Rule, ...], after: tuple[Rule, ...]) -> list[str]:
    lines: list[str] = []
    old = {r.id: (i, r) for i, r in enumerate(before, 1)}
    new = {r.id: (i, r) for i, r in enumerate(after, 1)}
    for rid, (i, rule) in old.items():
        if rid not in new:
            lines.append(f"Rule {i} ({rid}) removed: {rule_text(rule)}")
    for rid, (i, rule) in new.items():
        label = f"Rule {i} ({rid})"
        if rid not in old:
            lines.append(f"{label} added: {rule_text(rule)}")
            continue
        j, was = old[rid]
        if j != i:
            lines.append(f"{label} moved from position {j}")
        gone = [c for c in was.clauses if c not in rule.clauses]
        came = [c for c in rule.clauses if c not in was.clauses]
        lines += [f"{label}: removed condition {clause_text(c)}" for c in gone]
        lines += [f"{label}: added condition {clause_text(c)}" for c in came]
        if was.serve != rule.serve:
            lines.append(f"{label}: {serve_change(was.serve, rule.serve)}")
        if was.description != rule.description:
            lines.append(f"{label}: description {_show(was.description)} -> {_show(rule.description)}")
    return lines


def _targets(flag: Flag) -> dict[tuple[str, str], str]:
    return {(t.context_kind, value): t.variation for t in flag.targets for value in t.values}


def _target_lines(before: Flag, after: Flag) -> list[str]:
    old, new = _targets(before), _targets(after)
    lines = []
    for (kind, value), variation in new.items():
        who = value if kind == "user" else f"{kind} {value}"
        if old.get((kind, value)) != variation:
            lines.append(f"Targets: {who} gets {variation}")
    for (kind, value), variation in old.items():
        if (kind, value) not in new:
            who = value if kind == "user" else f"{kind} {value}"
            lines.append(f"Targets: {who} no longer gets {variation}")
    return lines


def _variation_lines(before: Flag, after: Flag) -> list[str]:
    old = {v.key: v for v in before.variations}
    new = {v.key: v for v in after.variations}
    lines = [f"variation {k} removed" for k in old if k not in new]
    for key, v in new.items():
        if key not in old:
            lines.append(f"variation {key} added: {_show(v.value)}")
        elif old[key] != v:
            if old[key].value != v.value:
                lines.append(f"variation {key}: {_show(old[key].value)} -> {_show(v.value)}")
            if (old[key].name, old[key].description) != (v.name, v.description):
                lines.append(f"variation {key}: renamed or described anew")
    return lines


def flag_change_lines(before: Flag | None, after: Flag) -> list[str]:
    """What changed from ``before`` (None: the flag was created) to ``after``, one sentence per line."""
    if before is None:
        return []
    lines: list[str] = []
    for field, (back, forth) in _ACTIONS.items():
        if getattr(before, field) != getattr(after, field):
            lines.append(forth if getattr(after, field) else back)
    if before.on != after.on:
        lines.append("turned on" if after.on else "turned off")
    lines += [f"Only if {prerequisite_text(p)} (prerequisite added)" for p in after.prerequisites
              if p not in before.prerequisites]  # fmt: skip
    lines += [f"Prerequisite removed: {prerequisite_text(p)}" for p in before.prerequisites
              if p not in after.prerequisites]  # fmt: skip
    lines += _target_lines(before, after)
    lines += _rule_lines(before.rules, after.rules)
    if before.fallthrough != after.fallthrough:
        lines.append(f"Default: {serve_change(before.fallthrough, after.fallthrough)}")
    if before.off_variation != after.off_variation:
        lines.append(f"When off: serve {before.off_variation} -> {after.off_variation}")
    lines += _variation_lines(before, after)
    added = [t for t in after.tags if t not in before.tags]
    removed = [t for t in before.tags if t not in after.tags]
    if added:
        lines.append(f"tags added: {', '.join(added)}")
    if removed:
        lines.append(f"tags removed: {', '.join(removed)}")
    for field in Flag.__struct_fields__:
        if field in _DESCRIBED or field in _ACTIONS or field == "key":
            continue
        old, new = getattr(before, field), getattr(after, field)
        if old != new:
            lines.append(f"{field}: {_show(old)} -> {_show(new)}")
    return lines
