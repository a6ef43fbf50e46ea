"""Targeting in words: a rule, a serve, a flag's configuration in one line, for people (the UI's columns, the
CLI, the audit log). Pure: domain values in, text out.

    If state is one of CA and os is one of iOS, serve on to 10%, off to 90%
    Otherwise serve off
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ...events import WEIGHT_TOTAL, Clause, Flag, Operator, Prerequisite, Rule, Serve

#: How each operator reads; the negated form where English has one.
_PHRASES: dict[Operator, tuple[str, str]] = {
    Operator.IN: ("is one of", "is not one of"),
    Operator.NOT_IN: ("is not one of", "is one of"),
    Operator.EQUALS: ("equals", "does not equal"),
    Operator.STARTS_WITH: ("starts with", "does not start with"),
    Operator.ENDS_WITH: ("ends with", "does not end with"),
    Operator.CONTAINS: ("contains", "does not contain"),
    Operator.MATCHES: ("matches", "does not match"),
    Operator.LT: ("is less than", "is not less than"),
    Operator.LTE: ("is at most", "is more than"),
    Operator.GT: ("is more than", "is at most"),
    Operator.GTE: ("is at least", "is less than"),
    Operator.SEMVER_EQ: ("is version", "is not version"),
    Operator.SEMVER_LT: ("is a version before", "is not a version before"),
    Operator.SEMVER_LTE: ("is a version up to", "is not a version up to"),
    Operator.SEMVER_GT: ("is a version after", "is not a version after"),
    Operator.SEMVER_GTE: ("is a version from", "is not a version from"),
    Operator.BEFORE: ("is before", "is not before"),
    Operator.AFTER: ("is after", "is not after"),
    Operator.EXISTS: ("is set", "is not set"),
    Operator.IN_CIDR: ("is in", "is not in"),
}


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def values_text(values: Iterable[Any]) -> str:
    return ", ".join(value_text(v) for v in values)


def percent(weight: int) -> str:
    """100,000ths as a percentage without needless digits: 10000 -> "10%", 12345 -> "12.345%"."""
    return f"{weight * 100 / WEIGHT_TOTAL:.3f}".rstrip("0").rstrip(".") + "%"


#: How an imported condition reads its attribute or compares (``Clause`` options an importer sets so the flag
#: answers as its original system did), in words; a value not listed here reads ``option=value``.
_READING: dict[str, dict[str, str]] = {
    "stringify": {
        "python": "numbers read as text, as Python writes them",
        "js": "numbers read as text, as JavaScript writes them",
    },
    "semver": {
        "strict": "strict semver",
        "launchdarkly": "versions read as LaunchDarkly does",
        "flagd": "versions read as flagd does",
        "growthbook": "versions read as GrowthBook does",
    },
    "now": {"always": "the evaluation time, not the attribute", "if_absent": "the evaluation time when absent"},
    "cast": {
        "python": "compared as Flagsmith does",
        "js": "compared as GrowthBook does",
        "jsonlogic": "compared as flagd does",
    },
}


def reading_options(clause: Clause) -> list[str]:
    """A condition's reading options in words (``any case``, ``numbers read from strings``...), in a fixed order."""
    found = ["any case"] if clause.case_insensitive else []
    if clause.numeric_strings:
        found.append("numbers read from strings")
    for name, words in _READING.items():
        value = getattr(clause, name)
        if value:
            found.append(words.get(value, f"{name}={value}"))
    return found


def _with_options(text: str, clause: Clause) -> str:
    options = reading_options(clause)
    return f"{text} ({', '.join(options)})" if options else text


def clause_text(clause: Clause) -> str:
    op = Operator(clause.op)
    if op is Operator.IN_SEGMENT:
        who = "" if clause.context_kind == "user" else f"the {clause.context_kind} "
        verb = "is not in" if clause.negate else "is in"
        noun = "segment" if len(clause.values) == 1 else "one of the segments"
        return f"{who or 'the user '}{verb} {noun} {values_text(clause.values)}".strip()
    attribute = clause.attribute if clause.context_kind == "user" else f"{clause.context_kind}.{clause.attribute}"
    if op is Operator.MODULO:  # values [divisor, remainder]
        verb = "is not" if clause.negate else "is"
        divisor, remainder = [*clause.values, None, None][:2]
        return _with_options(f"{attribute} modulo {value_text(divisor)} {verb} {value_text(remainder)}", clause)
    phrase = _PHRASES[op][1 if clause.negate else 0]
    if op in (Operator.IN, Operator.NOT_IN) and len(clause.values) == 1:
        phrase = phrase.replace(" one of", "")
    text = f"{attribute} {phrase}" if op is Operator.EXISTS else f"{attribute} {phrase} {values_text(clause.values)}"
    return _with_options(text, clause)


def conditions_text(clauses: Sequence[Clause]) -> str:
    return " and ".join(clause_text(c) for c in clauses)


def serve_text(serve: Serve) -> str:
    """``on``, or ``on to 10%, off to 90%`` (``by company`` when not bucketed by the key)."""
    if serve.rollout is None:
        return serve.variation or "nothing"
    shares = ", ".join(f"{w.variation} to {percent(w.weight)}" for w in serve.rollout.variations if w.weight)
    by = serve.rollout.bucket_by
    kind = serve.rollout.context_kind
    if by != "key" or kind != "user":
        shares += f" by {by if kind == 'user' else f'{kind}.{by}'}"
    return shares or "nothing"


def rule_text(rule: Rule) -> str:
    """``If state is one of CA and os is iOS, serve on to 10%, off to 90%``."""
    if not rule.clauses:
        return f"Always serve {serve_text(rule.serve)}"
    return f"If {conditions_text(rule.clauses)}, serve {serve_text(rule.serve)}"


def targets_text(flag: Flag) -> list[str]:
    return [f"{', '.join(t.values)} get {t.variation}" for t in flag.targets if t.values]


def prerequisite_text(prerequisite: Prerequisite) -> str:
    """``login-v2 is on``; ``(not while switched off)`` when it also fails while the other flag is off, whatever
    that flag then serves (LaunchDarkly's rule, kept by its importer: ``require_on``)."""
    text = f"{prerequisite.flag} is {prerequisite.variation}"
    return f"{text} (not while switched off)" if prerequisite.require_on else text


def configuration_lines(flag: Flag) -> list[str]:
    """A flag's configuration in one environment, line by line, in the order it is evaluated."""
    if not flag.on:
        return [f"Off: serve {flag.off_variation}"]
    lines = [f"Only if {prerequisite_text(p)}" for p in flag.prerequisites]
    lines += targets_text(flag)
    lines += [f"Rule {i}: {rule_text(rule)}" for i, rule in enumerate(flag.rules, 1)]
    lines.append(f"{'Otherwise serve' if flag.rules or flag.targets else 'Serve'} {serve_text(flag.fallthrough)}")
    return lines


def summary(flag: Flag) -> str:
    """One line for a list column: ``off``, ``on to everyone``, ``10% on for state is CA``, ``3 rules; else off``."""
    if flag.archived:
        return "archived"
    if not flag.on:
        return "off"
    rest = []
    if flag.prerequisites:
        rest.append(f"if {', '.join(prerequisite_text(p) for p in flag.prerequisites)}")
    if flag.targets:
        rest.append(f"{sum(len(t.values) for t in flag.targets)} targeted")
    otherwise = _short(flag.fallthrough, flag.off_variation)
    if len(flag.rules) == 1 and flag.rules[0].clauses:
        rule = flag.rules[0]
        head = f"{_short(rule.serve, flag.off_variation)} for {conditions_text(rule.clauses)}; else {otherwise}"
    elif flag.rules:
        head = f"{len(flag.rules)} rules; else {otherwise}"
    else:
        head = f"{otherwise} to everyone" if flag.fallthrough.rollout is None else otherwise
    return "; ".join([head, *rest])


def _short(serve: Serve, off: str) -> str:
    """A serve in a few words: ``on``, or a rollout's shares but the off variation's (``10% on``)."""
    if serve.rollout is None:
        return serve.variation or "nothing"
    shares = [f"{percent(w.weight)} {w.variation}" for w in serve.rollout.variations if w.weight and w.variation != off]
    return ", ".join(shares) or off
