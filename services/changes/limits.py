"""Limits on the size of what a change may carry: list lengths and nesting depth, per field name.

The request body is capped elsewhere (``admin/routes.MAX_BODY``, 413), regular expressions are vetted by the
engine (``sdk/linear_regex.regex_problem``: length, RE2 syntax), and the write rate per API token is limited in
``services/tokens/rate.py``.
"""

from __future__ import annotations

from typing import Any

from ...validation import Problem
from .errors import InvalidInput

#: Longest list allowed under each field name, wherever it appears in a flag, segment or environment body.
MAX_ITEMS: dict[str, int] = {
    "variations": 100,  # a flag's variations, and a rollout's weighted variations
    "rules": 500,  # a flag's or a segment's rules
    "clauses": 50,  # per rule
    "values": 50_000,  # a clause's values, a target's keys
    "targets": 100,  # one per variation at most, in practice
    "prerequisites": 50,
    "tags": 50,
    "included": 100_000,  # a segment's listed keys
    "excluded": 100_000,
}
#: Deepest nesting of JSON arrays and objects in a body (variation values are free-form JSON).
MAX_DEPTH = 32
#: Longest free text, in characters, under each field name wherever it appears in a change (a flag's, a
#: variation's, a rule's, a segment's, an environment's ``name`` and ``description``, the change ``comment``),
#: and for each tag: every SDK receives every flag whole, so its text stays small. Variation values and clause
#: values are data, not text: they are not limited here (the body's size is).
MAX_TEXT: dict[str, int] = {"name": 200, "description": 2000, "comment": 1000, "tag": 64}
#: Members holding data, where a "name" or "description" is part of a value, not free text of ours.
_DATA = frozenset({"value", "values"})


def check_lengths(data: Any) -> Any:
    """``data`` unchanged, or ``InvalidInput`` (422) naming the JSON path of every list that is too long and of
    every free text (``MAX_TEXT``) that is too long."""
    problems: list[Problem] = []
    _walk(data, "$", 0, problems)
    if problems:
        raise InvalidInput(f"{problems[0].path}: {problems[0].message}", problems)
    return data


def check_text(value: Any, path: str, limit: int) -> Problem | None:
    """A problem if ``value`` is a string longer than ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        return Problem(path, f"at most {limit:,} characters, got {len(value):,}")
    return None


def _walk(value: Any, path: str, depth: int, problems: list[Problem], data: bool = False) -> None:
    if depth > MAX_DEPTH:
        problems.append(Problem(path, f"nested deeper than {MAX_DEPTH} levels"))
        return
    if isinstance(value, dict):
        for name, item in value.items():
            child = f"{path}.{name}"
            limit = MAX_ITEMS.get(name) if isinstance(name, str) else None
            if limit is not None and isinstance(item, list) and len(item) > limit:
                problems.append(Problem(child, f"at most {limit} items, got {len(item)}"))
                continue
            inside = data or name in _DATA
            if not inside and isinstance(name, str):
                text = MAX_TEXT.get(name)
                found = check_text(item, child, text) if text is not None else None
                if name == "tags" and isinstance(item, list):
                    found = next(
                        (p for i, t in enumerate(item) if (p := check_text(t, f"{child}[{i}]", MAX_TEXT["tag"]))), None
                    )
                if found is not None:
                    problems.append(found)
                    continue
            _walk(item, child, depth + 1, problems, inside)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                _walk(item, f"{path}[{i}]", depth + 1, problems, data)
