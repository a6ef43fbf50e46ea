"""Clause regexes on RE2: matching time linear in the attribute's length, whatever the pattern. Pure, no I/O.

A clause regex is written by a flag's author but runs on attribute values that come from the application's
users (a user agent, an e-mail address, a URL). Python's ``re`` backtracks: ``(a+)+$`` takes exponential time
and ``.*a.*b.*c`` cubic time on a string that almost matches (12 s on 1,000 characters), so a flag could hang
every application that evaluates it. RE2 (``google-re2``, the engine of Go, flagd and LaunchDarkly's Go SDK) runs
in time linear in the text for every pattern it accepts; it has no lookarounds and no backreferences, so those
are refused when the flag is written, with a message that says so.

The syntax is RE2's (close to Python's: classes, anchors, ``(?i)``, ``{n,m}``, named groups ``(?P<name>...)``),
with ``\\d``, ``\\w`` and ``\\s`` matching ASCII only. Matching has ``re.search`` semantics: anywhere in the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import re2

#: Longest regular expression accepted in a clause.
REGEX_MAX = 500

Search = Callable[[str], bool]

try:  # google-re2's C++ binding directly: 0.8 µs a search, against 4 µs through its ``re``-like wrapper.
    from re2 import _re2

    _UNANCHORED = _re2.RE2.Anchor.UNANCHORED
except (ImportError, AttributeError):  # pragma: no cover - another google-re2 layout: the public API
    _re2 = None


class RegexError(ValueError):
    """A pattern RE2 does not accept (the message says why)."""


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.never_capture = True  # a yes/no answer: no group positions to track
    options.log_errors = False  # a refused pattern is the caller's error to report, not a log line
    return options


def compile_search(pattern: str, ignore_case: bool = False) -> Search:
    """A function telling whether ``pattern`` finds a match in a string. Raises ``RegexError``."""
    if _re2 is not None:
        compiled = _re2.RE2(pattern.encode("utf-8", "surrogatepass"), _options(ignore_case))
        if not compiled.ok():
            raise RegexError(_explain(compiled.error(), pattern))
        match = compiled.Match

        def search(text: str) -> bool:
            data = text.encode("utf-8", "surrogatepass")
            return match(_UNANCHORED, data, 0, len(data))[0][0] >= 0

        return search
    try:  # pragma: no cover - see the import above
        regexp = re2.compile(pattern, _options(ignore_case))
    except re2.error as exc:  # pragma: no cover
        raise RegexError(_explain(str(exc), pattern)) from None
    return lambda text: regexp.search(text) is not None  # pragma: no cover


#: What RE2 refuses because it would need backtracking: lookarounds and backreferences (numbered or named).
_BACKTRACKING = re.compile(r"\(\?<?[=!]|\(\?P=|\\[1-9]")
#: A counted repetition: RE2 takes one above its limit of 1,000 as literal text, ``re`` as an error; refused.
_COUNT = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")
MAX_COUNT = 1000


def _explain(error: str | bytes, pattern: str) -> str:
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else error
    if _BACKTRACKING.search(pattern):
        text += " (lookarounds and backreferences are not supported: matching must stay linear in the value's length)"
    elif text.endswith("escape sequence: \\Z"):
        text += " (end of text is \\z or $)"
    return text


def regex_problem(pattern: object) -> str | None:
    """Why ``pattern`` is refused as a clause regex, or ``None`` if it is fine."""
    if type(pattern) is not str:
        return "a regular expression must be a string"
    if len(pattern) > REGEX_MAX:
        return f"regular expression longer than {REGEX_MAX} characters"
    try:
        compile_search(pattern)
    except RegexError as exc:
        return f"invalid regular expression: {exc}"
    for count in _COUNT.finditer(pattern):
        if max(int(n) for n in count.groups() if n) > MAX_COUNT:
            return f"invalid regular expression: repetition {count[0]} above {MAX_COUNT}"
    return None
