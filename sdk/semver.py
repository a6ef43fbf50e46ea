"""Semantic versions (semver 2.0) as sortable keys: pure, no I/O.

``parse_semver("1.2.3-beta.1+build")`` gives a tuple that compares like the versions do (build metadata is
ignored; a pre-release sorts before its release; numeric identifiers sort numerically and before alphanumeric
ones; a shorter identifier list sorts first when all shared identifiers are equal). Leniency, documented in
docs/targeting.md: a leading ``v`` is accepted and missing minor/patch numbers are read as 0 (``"2"`` is
``2.0.0``). Anything else that is not semver 2.0 gives ``None``.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
    re.ASCII,
)

#: A release sorts after all of its pre-releases: (1,) > (0, ...).
_RELEASE = (1,)

#: semver 2.0 exactly: MAJOR.MINOR.PATCH, no ``v`` (Unleash, Flagsmith).
_STRICT = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
    re.ASCII,
)
#: LaunchDarkly: missing minor and patch read as 0, no leading ``v``.
_LAUNCHDARKLY = re.compile(_SEMVER.pattern[2:], re.ASCII)

SemverKey = tuple[int, int, int, tuple]

#: The dialects of ``Clause.semver``.
DIALECTS = ("", "strict", "launchdarkly", "flagd", "growthbook")


def parse_semver(text: str, dialect: str = "") -> SemverKey | None:
    """The precedence key of ``text``, or ``None`` if it is not a semantic version (or not a string) in
    ``dialect`` (``""``: Flagstream's lenient reading; see ``Clause.semver``)."""
    if dialect == "flagd":
        return _flagd(text)
    if dialect == "growthbook":
        return _growthbook(text) if type(text) is str else None  # type: ignore[return-value]
    if type(text) is not str or len(text) > 256:
        return None
    return _parse(text, dialect)


_GB_STRIP = re.compile(r"(^v|\+.*$)")
_GB_SPLIT = re.compile(r"[-.]")


@lru_cache(maxsize=4096)
def _growthbook(text: str) -> str:
    """GrowthBook's ``paddedVersionString``: any text is a version, compared as this padded text (a leading
    ``v`` and build metadata dropped, ``-``/``.`` parts with digits left-padded to 5, ``~`` after a plain
    ``x.y.z`` so it sorts after its pre-releases; an empty text is ``0``)."""
    parts = _GB_SPLIT.split(_GB_STRIP.sub("", text or "0"))
    if len(parts) == 3:
        parts.append("~")
    return "-".join(v.rjust(5, " ") if v.isdigit() else v for v in parts)


def _flagd(value: object) -> SemverKey | None:
    """flagd's ``sem_ver``: ``str()`` of the value, a leading ``v``/``V`` dropped, a version with fewer than
    three numeric parts padded with ``.0``, then semver 2.0 (flagd-core ``normalize_version``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    version = value if isinstance(value, str) else str(value)
    if len(version) > 256:
        return None
    if version.startswith(("v", "V")):
        version = version[1:]
    numeric = version.split("-")[0].split("+")[0]
    dots = numeric.count(".")
    if dots < 2:
        version = numeric + ".0" * (2 - dots) + version[len(numeric) :]
    return _parse(version, "strict")


@lru_cache(maxsize=4096)
def _parse(text: str, dialect: str = "") -> SemverKey | None:
    pattern = _STRICT if dialect == "strict" else _LAUNCHDARKLY if dialect == "launchdarkly" else _SEMVER
    m = pattern.fullmatch(text)
    if m is None:
        return None
    major, minor, patch, pre, _build = m.groups()
    if pre is None:
        pre_key: tuple = _RELEASE
    else:
        idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
        pre_key = (0, idents)
    return (int(major), int(minor or 0), int(patch or 0), pre_key)
