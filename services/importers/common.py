"""What every importer returns: the flags and segments it could map, and a report of what it did with each part
of the source file -- mapped exactly, approximated (imported, with the difference said), or not mapped (and
then the flag is not imported). Nothing is dropped without a line in the report. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...events import Flag, Segment
from ...events.model import KEY_MAX

#: ``mapped``: answers as the original; ``approximated``: imported, answers differ where the message says;
#: ``unmapped``: cannot be expressed -- the flag (or segment) carrying it is not imported.
Severity = Literal["mapped", "approximated", "unmapped"]


class ImportFileError(ValueError):
    """The file is not what the importer reads (not JSON, wrong top-level shape): one readable line."""


def read_json(path: str | Path) -> Any:
    """The JSON document in file ``path``; :class:`ImportFileError` saying why if it cannot be read as JSON."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ImportFileError(f"{path}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportFileError(f"{path}: cannot read it as JSON: {e}") from None


@dataclass(frozen=True)
class Note:
    """One line of the report: ``subject`` (``flag x``/``segment y``), where in the source file, and what."""

    severity: Severity
    subject: str
    path: str
    message: str


@dataclass
class ImportResult:
    source: str
    flags: list[Flag] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: Keys (in the source file) of the flags not imported, each with at least one ``unmapped`` note.
    skipped: list[str] = field(default_factory=list)

    def note(self, severity: Severity, subject: str, path: str, message: str) -> None:
        self.notes.append(Note(severity, subject, path, message))

    def problems(self) -> list[Note]:
        return [n for n in self.notes if n.severity != "mapped"]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "flags": [f.key for f in self.flags],
            "segments": [s.key for s in self.segments],
            "skipped": list(self.skipped),
            "notes": [n.__dict__ for n in self.notes],
        }


class Unmappable(Exception):
    """Raised while mapping one flag: ``path`` in the source file, ``message`` why it cannot be expressed."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


_NOT_KEY = re.compile(r"[^A-Za-z0-9_-]+")


def key_for(name: str, taken: set[str], fallback: str = "x") -> str:
    """A Flagstream key (letters, digits, ``-``, ``_``; at most 64) for ``name``, unique among ``taken``."""
    base = _NOT_KEY.sub("-", name).strip("-")[:KEY_MAX] or fallback
    key, n = base, 1
    while key in taken:
        n += 1
        suffix = f"-{n}"
        key = base[: KEY_MAX - len(suffix)] + suffix
    taken.add(key)
    return key


def render(result: ImportResult, *, verbose: bool = True) -> str:
    """The report as text: a summary line, then every approximated and unmapped part (and, verbose, the mapped)."""
    lines = [
        f"{result.source}: {len(result.flags)} flag(s) and {len(result.segments)} segment(s) mapped;"
        f" {len(result.skipped)} flag(s) not imported" + (f" ({', '.join(result.skipped)})" if result.skipped else "")
    ]
    order = {"unmapped": 0, "approximated": 1, "mapped": 2}
    for n in sorted(result.notes, key=lambda n: order[n.severity]):
        if n.severity == "mapped" and not verbose:
            continue
        lines.append(f"  {n.severity.upper():<12} {n.subject} ({n.path}): {n.message}")
    return "\n".join(lines)


def nominal_weights(parts: list[float]) -> list[int]:
    """Shares of 100,000 summing to exactly 100,000 (largest remainder): a rollout's nominal weights when its
    ``ranges`` decide (shown, validated)."""
    parts = [max(p, 0.0) for p in parts]
    total = sum(parts)
    if total <= 0:
        return [100_000] + [0] * (len(parts) - 1)
    raw = [p * 100_000 / total for p in parts]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: 100_000 - sum(out)]:
        out[i] += 1
    return out


_PY_CLASS_ESCAPES = {"d": r"\p{Nd}", "D": r"\P{Nd}"}


def python_regex(pattern: str, *, anchored: bool = False) -> tuple[str, str | None]:
    """An RE2 pattern that finds a match where Python's ``re.search`` does (``re.match`` when ``anchored``),
    and the difference when it cannot be exact (``None``: exact).

    ``\\d``/``\\D`` become ``\\p{Nd}``/``\\P{Nd}`` (Python's digits are Unicode's), ``$`` at the end of an
    alternative ``(?:\\n?\\z)`` (Python's also matches before a final newline), ``\\Z`` ``\\z``. ``\\w``, ``\\s``,
    ``\\b`` (Unicode in Python, ASCII in RE2), other uses of ``$`` and inline flags are the differences said.
    RE2's refusals (lookarounds, backreferences) are the caller's to report (``regex_problem``).
    """
    out: list[str] = []
    differences: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    depth = 0
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in _PY_CLASS_ESCAPES:
                out.append(_PY_CLASS_ESCAPES[nxt])
            elif nxt in "wWsSbB":
                differences.append(f"\\{nxt} is ASCII here, Unicode in Python")
                out.append(ch + nxt)
            elif nxt == "Z" and not in_class:
                out.append(r"\z")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if in_class:
            out.append(ch)
            if ch == "]":
                in_class = False
            i += 1
            continue
        if ch == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1  # a leading ] is literal
            out.append(pattern[i:j])
            in_class = True
            i = j
            continue
        if ch == "$":
            rest = pattern[i + 1 :]
            if not rest.strip(")") or (depth == 0 and rest[0] == "|"):
                out.append(r"(?:\n?\z)")
            else:
                differences.append("$ followed by more of the pattern")
                out.append(ch)
            i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i) and not pattern.startswith(("(?:", "(?P<"), i):
            differences.append("inline flags")
        depth += 1 if ch == "(" else -1 if ch == ")" else 0
        out.append(ch)
        i += 1
    re2_pattern = "".join(out)
    if anchored:
        re2_pattern = f"^(?:{re2_pattern})"
    return re2_pattern, ("; ".join(dict.fromkeys(differences)) or None)
