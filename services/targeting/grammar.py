"""Targeting typed as words (the CLI's ``--when``, ``--serve``, ``--rollout``) and printed back the same way.

Conditions::

    state in CA, NY                 country not in NL            email ends-with @acme.com (any case)
    plan equals pro                 age >= 18                    version semver>= 2.0.0
    created before 2026-01-01       email exists                 organization:tier in gold
    in segment beta-testers         not in segment staff, bots   ip in-cidr 10.0.0.0/8
    id mod 4, 1                     version semver>= 2.0.0 [semver=strict]

``[KIND:]ATTRIBUTE [not] OPERATOR VALUES``; values are separated by commas; a value holding a comma, a quote or
outer spaces is written as a JSON string (``"Smith, John"``). Numbers for ``< <= > >=``; dates (ISO 8601) or
epoch numbers for ``before``/``after``. What is served: ``--serve on``, or ``--rollout on=10,off=90`` (percent,
up to 3 decimals, summing to 100) with ``--by company`` to bucket by another attribute than the key.

``format_*`` print a value so that ``parse_*`` gives it back exactly: ``parse_condition(format_condition(c)) == c``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from ...events import WEIGHT_TOTAL, Clause, Operator, Rollout, Serve, WeightedVariation

#: Operator words, as typed and printed.
OPERATORS: dict[str, Operator] = {
    "in": Operator.IN,
    "equals": Operator.EQUALS,
    "starts-with": Operator.STARTS_WITH,
    "ends-with": Operator.ENDS_WITH,
    "contains": Operator.CONTAINS,
    "matches": Operator.MATCHES,
    "<": Operator.LT,
    "<=": Operator.LTE,
    ">": Operator.GT,
    ">=": Operator.GTE,
    "semver=": Operator.SEMVER_EQ,
    "semver<": Operator.SEMVER_LT,
    "semver<=": Operator.SEMVER_LTE,
    "semver>": Operator.SEMVER_GT,
    "semver>=": Operator.SEMVER_GTE,
    "before": Operator.BEFORE,
    "after": Operator.AFTER,
    "exists": Operator.EXISTS,
    "in-cidr": Operator.IN_CIDR,
    "mod": Operator.MODULO,
}
WORDS: dict[Operator, str] = {op: word for word, op in OPERATORS.items()}
WORDS[Operator.NOT_IN] = "not in"
_NUMERIC = {Operator.LT, Operator.LTE, Operator.GT, Operator.GTE, Operator.MODULO}
#: A clause's reading options (set by importers to answer as the original system), as ``[name=value ...]``.
_OPTIONS = ("stringify", "semver", "numeric_strings", "now", "cast")
_OPTIONS_SUFFIX = re.compile(r"\s+\[(?P<options>[^\]]*)\]\s*$")
_ANY_CASE = " (any case)"
_NAME = r"[A-Za-z_$][A-Za-z0-9_.$/-]*"
_CONDITION = re.compile(
    rf"^\s*(?:(?P<kind>{_NAME}):)?(?P<attribute>{_NAME})\s+(?P<not>not\s+)?(?P<op>\S+)(?:\s+(?P<values>.*?))?\s*$"
)
_SEGMENT = re.compile(r"^\s*(?P<kind>[A-Za-z_][A-Za-z0-9_-]*:)?(?P<not>not\s+)?in\s+segments?\s+(?P<values>.+?)\s*$")


class GrammarError(ValueError):
    """Words that do not make a condition, a rollout or a serve; the message says what was expected."""


def _split(text: str) -> list[str]:
    """Comma-separated values; a value may be a JSON string (quoted) to hold commas or outer spaces."""
    values, rest = [], text.strip()
    while rest:
        if rest.startswith('"'):
            try:
                value, end = json.JSONDecoder().raw_decode(rest)
            except json.JSONDecodeError as exc:
                raise GrammarError(f"an unfinished quoted value: {rest!r}") from exc
            values.append(value)
            rest = rest[end:].lstrip()
            if rest and not rest.startswith(","):
                raise GrammarError(f"expected a comma after {json.dumps(value)}, got {rest!r}")
            rest = rest[1:].lstrip()
        else:
            value, _, rest = rest.partition(",")
            if not value.strip():
                raise GrammarError('an empty value: write it as ""')
            values.append(value.strip())
            rest = rest.lstrip()
    return values


def _number(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise GrammarError(f"expected a number, got {text!r}") from None


def parse_condition(text: str) -> Clause:
    """``state in CA, NY`` -> a ``Clause``; ``GrammarError`` naming what is wrong."""
    options: dict[str, Any] = {}
    suffix = _OPTIONS_SUFFIX.search(text)
    if suffix:
        text = text[: suffix.start()]
        for item in suffix.group("options").split():
            name, sep, value = item.partition("=")
            if name not in _OPTIONS or (name == "numeric_strings") == bool(sep):
                known = ", ".join(o if o == "numeric_strings" else f"{o}=" for o in _OPTIONS)
                raise GrammarError(f"unknown option {item!r}; options: {known}")
            options[name] = True if name == "numeric_strings" else value
    clause = _parse_condition(text)
    return msgspec.structs.replace(clause, **options) if options else clause


def _parse_condition(text: str) -> Clause:
    any_case = text.rstrip().endswith(_ANY_CASE)
    if any_case:
        text = text.rstrip()[: -len(_ANY_CASE)]
    segment = _SEGMENT.match(text)
    if segment:
        kind = (segment.group("kind") or "user:")[:-1]
        values = tuple(_split(segment.group("values")))
        return Clause(op=Operator.IN_SEGMENT, values=values, negate=bool(segment.group("not")), context_kind=kind)
    found = _CONDITION.match(text)
    if not found:
        raise GrammarError(f"expected [KIND:]ATTRIBUTE [not] OPERATOR VALUES (e.g. 'state in CA'), got {text!r}")
    word = found.group("op")
    op = OPERATORS.get(word)
    if op is None:
        raise GrammarError(f"unknown operator {word!r} in {text!r}; one of: {', '.join(OPERATORS)}")
    raw = found.group("values") or ""
    if op is Operator.EXISTS:
        if raw:
            raise GrammarError(f"exists takes no values, got {raw!r}")
        values: tuple[Any, ...] = ()
    else:
        if not raw:
            raise GrammarError(f"{word} needs a value: {text!r}")
        values = tuple(_split(raw))
        if op in _NUMERIC:
            values = tuple(_number(v) for v in values)
    return Clause(
        attribute=found.group("attribute"),
        op=op,
        values=values,
        negate=bool(found.group("not")),
        case_insensitive=any_case,
        context_kind=found.group("kind") or "user",
    )


def _value(value: Any) -> str:
    if isinstance(value, str):
        plain = (
            value
            and value == value.strip()
            and value.isprintable()
            and not re.search(r'[,"\[\]()]', value)
            and value != "null"
        )
        return value if plain else json.dumps(value)
    return json.dumps(value)


def format_condition(clause: Clause) -> str:
    """A ``Clause`` in the words ``parse_condition`` reads."""
    op = Operator(clause.op)
    values = ", ".join(_value(v) for v in clause.values)
    if op is Operator.IN_SEGMENT:
        kind = "" if clause.context_kind == "user" else f"{clause.context_kind}:"
        return f"{kind}{'not ' if clause.negate else ''}in segment {values}{_options_text(clause)}"
    kind = "" if clause.context_kind == "user" else f"{clause.context_kind}:"
    negate = clause.negate
    if op is Operator.NOT_IN:
        op, negate = Operator.IN, not negate
    text = f"{kind}{clause.attribute} {'not ' if negate else ''}{WORDS[op]}"
    if op is not Operator.EXISTS:
        text += f" {values}"
    text += _ANY_CASE if clause.case_insensitive else ""
    return text + _options_text(clause)


def _options_text(clause: Clause) -> str:
    words = [
        name if name == "numeric_strings" else f"{name}={getattr(clause, name)}"
        for name in _OPTIONS
        if getattr(clause, name)
    ]
    return f" [{' '.join(words)}]" if words else ""


def parse_rollout(text: str, by: str | None = None) -> Rollout:
    """``on=10,off=90`` (percent) -> a ``Rollout``; ``by``: ``[KIND:]ATTRIBUTE`` to bucket by (default the key)."""
    shares = []
    for part in _split(text):
        variation, sep, share = part.partition("=")
        if not sep:
            raise GrammarError(f"expected VARIATION=PERCENT, got {part!r}")
        try:
            weight = round(float(share) * WEIGHT_TOTAL / 100)
        except ValueError:
            raise GrammarError(f"expected a percentage after {variation}=, got {share!r}") from None
        if abs(weight * 100 / WEIGHT_TOTAL - float(share)) > 1e-9:
            raise GrammarError(f"{share}% has more than 3 decimals")
        shares.append(WeightedVariation(variation=variation.strip(), weight=weight))
    total = sum(w.weight for w in shares)
    if total != WEIGHT_TOTAL:
        raise GrammarError(f"the percentages add up to {total * 100 / WEIGHT_TOTAL:g}, not 100: {text!r}")
    kind, _, attribute = (by or "key").rpartition(":")
    return Rollout(variations=tuple(shares), bucket_by=attribute, context_kind=kind or "user")


def format_rollout(rollout: Rollout) -> str:
    return ",".join(f"{w.variation}={w.weight * 100 / WEIGHT_TOTAL:g}" for w in rollout.variations)


def serve_options(serve: Serve) -> str:
    """What is served, as options: ``--serve on``, ``--serve-default``, ``--rollout on=10,off=90 [--by company]``.

    A rollout brought over by ``flagstream import`` buckets users as its original system did (its scheme, hash
    prefix, ranges), which these options cannot say: the words say so, since typed again they would bucket users
    anew (editing the rule's conditions keeps what it serves).
    """
    if serve.default:
        return "--serve-default"
    if serve.rollout is None:
        return f"--serve {serve.variation}"
    text = f"--rollout {format_rollout(serve.rollout)}"
    rollout = serve.rollout
    if rollout.bucket_by != "key" or rollout.context_kind != "user":
        by = rollout.bucket_by if rollout.context_kind == "user" else f"{rollout.context_kind}:{rollout.bucket_by}"
        text += f" --by {by}"
    if imported_bucketing(rollout):
        scheme = rollout.algorithm if rollout.algorithm != "flagstream" else "the original system"
        text += f"  # bucketed as {scheme} does (imported): typed again, users are bucketed anew"
    return text


def imported_bucketing(rollout: Rollout) -> bool:
    """Whether a rollout buckets as another system does (``flagstream import``), beyond what ``--rollout`` says."""
    return (
        rollout.algorithm != "flagstream"
        or bool(rollout.hash_prefix or rollout.ranges or rollout.partial or rollout.hash_version)
        or bool(rollout.fallback_by)
    )


def quote(text: str) -> str:
    """A shell word: as it is when it needs no quoting, else in single quotes."""
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"
