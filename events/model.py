"""Domain types shared by every part of Flagstream: the whole state of a flag, a segment, an environment.

These Structs are the single definition of what a flag *is*. Events carry them whole; the admin API accepts
them (through its own strictness check), the projector stores them, the SDK compiles them for evaluation.

Evolution rules (events written today must decode forever): new fields get defaults; a field never changes
type; unknown fields are ignored on decode (no ``forbid_unknown_fields`` here).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

#: Keys become NATS subject tokens: letters, digits, ``-`` and ``_`` only.
KEY_PATTERN = r"^[A-Za-z0-9_-]+$"
KEY_MAX = 64
#: How many accepted keys the ``Key`` check remembers (about 100 bytes each, 1 MB at most; emptied when full).
KEY_CACHE_SIZE = 10_000


class _CheckedKeys(dict[str, bool]):
    """The keys the pattern accepted so far: a hit is a dict look-up, a miss asks the pattern (remembering a yes)."""

    __slots__ = ("_search",)

    def __init__(self, search: Callable[[str], object]) -> None:
        super().__init__()
        self._search = search

    def __missing__(self, key: str) -> bool | None:
        if self._search(key) is None:
            return None  # refused: never remembered
        if len(self) >= KEY_CACHE_SIZE:
            self.clear()
        self[key] = True
        return True


class _KeyRegex:
    """What msgspec checks a ``Key`` with: ``re.compile(KEY_PATTERN)``, remembering the keys it accepted.

    msgspec checks ``Meta(pattern=...)`` by calling the compiled pattern's ``search`` with each value and testing
    the result against ``None`` (it reads ``pattern`` for its error message). A Python ``re`` search is about
    3,500 instructions per key, half of decoding an event, and most keys of an event repeat across events (the
    project, the environment, variation keys, rule ids). Here ``search`` is the ``__getitem__`` of a dict of the
    keys the pattern already accepted: a hit costs a dict look-up in C, a miss asks the real pattern. Only the
    pattern decides, so exactly the same keys are accepted and refused, with msgspec's own error text.
    """

    __slots__ = ("_pattern", "pattern", "search")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self._pattern = pattern
        self.pattern = pattern.pattern
        self.search: Callable[[str], object] = _CheckedKeys(pattern.search).__getitem__

    def __getattr__(self, name: str) -> Any:  # anything else msgspec (or a later version) asks: the real pattern
        return getattr(self._pattern, name)


def _key_meta() -> Meta:
    """``Meta(pattern=KEY_PATTERN, ...)`` whose compiled pattern is a ``_KeyRegex``.

    msgspec compiles the pattern with ``re.compile``, which calls ``re._compile``: that is swapped for the time of
    this one call. Should a later Python or msgspec not go through it, the Meta gets the plain compiled pattern:
    the same check, only slower.
    """
    original = getattr(re, "_compile", None)
    if original is None:
        return Meta(pattern=KEY_PATTERN, min_length=1, max_length=KEY_MAX)

    def compile_key(pattern: Any, flags: Any) -> Any:
        compiled = original(pattern, flags)
        return _KeyRegex(compiled) if pattern == KEY_PATTERN and not flags else compiled

    re._compile = compile_key  # type: ignore[attr-defined]
    try:
        return Meta(pattern=KEY_PATTERN, min_length=1, max_length=KEY_MAX)
    finally:
        re._compile = original  # type: ignore[attr-defined]


Key = Annotated[str, _key_meta()]

#: Rollout weights are in units of 1/100,000 (0.001 %); a rollout's weights sum to exactly this.
WEIGHT_TOTAL = 100_000
Weight = Annotated[int, Meta(ge=0, le=WEIGHT_TOTAL)]


class Model(Struct, frozen=True, kw_only=True, omit_defaults=False, gc=False):
    """Base of the domain values: immutable, keyword-only."""


class Operator(enum.StrEnum):
    """Clause operators. Every clause can also be negated with ``negate``."""

    IN = "in"
    NOT_IN = "not_in"
    EQUALS = "equals"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS = "contains"
    MATCHES = "matches"  # regular expression, search semantics
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    SEMVER_EQ = "semver_eq"
    SEMVER_LT = "semver_lt"
    SEMVER_LTE = "semver_lte"
    SEMVER_GT = "semver_gt"
    SEMVER_GTE = "semver_gte"
    BEFORE = "before"  # dates: ISO-8601 strings or epoch seconds/milliseconds
    AFTER = "after"
    EXISTS = "exists"  # attribute present (negate for "absent")
    IN_SEGMENT = "in_segment"  # values are segment keys; attribute is ignored
    IN_CIDR = "in_cidr"  # an IP address (v4 or v6) in one of the CIDR ranges (or equal to an address)
    MODULO = "mod"  # values [divisor, remainder]: attribute % divisor == remainder (Python's %, floats)


class FlagKind(enum.StrEnum):
    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    JSON = "json"


class Variation(Model, frozen=True, kw_only=True):
    """One value a flag can serve. Rules, targets and rollouts refer to it by ``key``."""

    key: Key
    value: Any
    name: str = ""
    description: str = ""


class WeightedVariation(Model, frozen=True, kw_only=True):
    variation: Key
    weight: Weight


class Rollout(Model, frozen=True, kw_only=True):
    """Serve variations by weight. The bucket is murmur3(salt + "." + bucketing value) mod 100,000 (by default)."""

    variations: tuple[WeightedVariation, ...]
    #: Attribute used for bucketing; ``key`` is the targeting key of ``context_kind``.
    bucket_by: str = "key"
    context_kind: str = "user"
    #: How the bucket is computed: ``flagstream`` (the formula above, with the flag's salt), or the scheme of
    #: an imported flag, so it answers as in its original system (docs/migration.md, ``flagstream.schemes``):
    #: ``unleash``, ``unleash_variant``, ``flagd`` (legacy fractional), ``flagd_v2``, ``flagd_v2_pair``,
    #: ``launchdarkly``, ``flagsmith``, ``growthbook``.
    algorithm: str = "flagstream"
    #: For the imported schemes: the text hashed with the bucketing value (Unleash: ``"{groupId}:"``;
    #: flagd: the flag key; LaunchDarkly: ``"{key}.{salt}."`` or ``"{seed}."``; Flagsmith: the object id and
    #: a comma; GrowthBook: the seed). Empty for ``flagstream``.
    hash_prefix: str = ""
    #: The weights may sum to less than 100,000: a context bucketed in the rest is not served by this rollout
    #: (a rule then does not apply and evaluation goes on; the fallthrough serves the off variation).
    partial: bool = False
    #: GrowthBook's hash version (1 or 2; 0 means 1). Unused by the other schemes.
    hash_version: int = 0
    #: For ``unleash_variant``, ``flagd_v2``, ``flagd_v2_pair``, ``flagsmith`` and ``growthbook``: the bucket
    #: range ``[start, end)`` of each variation (same order) in the scheme's own unit (Unleash and flagd:
    #: running integer weights, the last end being the total; Flagsmith: percentages; GrowthBook: fractions of
    #: 1, gaps allowed), the first range holding the bucket serving. They decide; ``weight`` is then the
    #: nominal share (shown, validated). Empty: the ranges follow from the weights.
    ranges: tuple[tuple[float, float], ...] = ()
    #: GrowthBook's ``fallbackAttribute`` of a force rule (``growthbook`` only): the attribute hashed when
    #: ``bucket_by``'s value cannot be hashed (absent, empty, zero, a boolean...). Empty: none.
    fallback_by: str = ""


class Serve(Model, frozen=True, kw_only=True):
    """What a rule or the fallthrough serves: exactly one of a variation or a rollout."""

    variation: Key | None = None
    rollout: Rollout | None = None
    #: Serve the caller's default value (no variation), as flagd does for a flag without a default variant
    #: and GrowthBook for a null default value.
    default: bool = False


class Clause(Model, frozen=True, kw_only=True):
    attribute: str = "key"
    op: Operator
    values: tuple[Any, ...] = ()
    negate: bool = False
    case_insensitive: bool = False
    context_kind: str = "user"
    #: How a number or boolean attribute is read by the text operators (``starts_with``, ``ends_with``,
    #: ``contains``, ``matches``): ``""`` (default) not at all, it does not match; ``python`` its ``str()``
    #: (``True``, ``1.0``), as Flagsmith does; ``js`` JavaScript's ``String()`` (``true``, ``1``).
    stringify: str = ""
    #: How the ``semver_*`` operators read versions: ``""`` (Flagstream's: a leading ``v``, missing minor and
    #: patch accepted), ``strict`` (semver 2.0 exactly: Unleash, Flagsmith), ``launchdarkly`` (missing minor
    #: and patch accepted, no ``v``), ``flagd`` (a leading ``v``/``V`` dropped, missing parts padded, numbers
    #: read as text).
    semver: str = ""
    #: Read a text attribute that looks like an integer or a decimal (``-?[0-9]+``, ``-?[0-9]+.[0-9]+``) as that
    #: number first, for every operator, as Flagsmith's engine reads identity traits.
    numeric_strings: bool = False
    #: Test the evaluation time (the SDK's clock; for time travel, the instant asked about): ``""`` (default)
    #: the attribute only; ``always`` the evaluation time instead of the attribute (flagd's
    #: ``$flagd.timestamp``); ``if_absent`` the attribute, or the evaluation time when the context lacks it
    #: (Unleash's ``currentTime``). Date operators read it as a date; the others as whole epoch seconds.
    now: str = ""
    #: How values are compared (the attribute read whole: a list is one value, not its elements): ``""``
    #: (default) Flagstream's; ``python`` Flagsmith's typed comparison: the clause's text values cast to the
    #: attribute's type (Python ``int()``, ``float()``, ``str()``; a boolean is true unless ``False``/``false``),
    #: ``in`` matching a text or an integer's decimal text, a value that cannot be compared matching nothing,
    #: negated or not; ``js`` GrowthBook's: JavaScript's strict equality and ordering (numbers with numbers,
    #: texts with texts in UTF-16 order, nothing else), ``in`` a list attribute sharing an element; ``jsonlogic``
    #: flagd's (the JSON Logic of its Python evaluator): ``equals`` the loose ``==`` (``"18" == 18``, ``true ==
    #: 1``), ``in`` Python's membership, ``contains`` a text in a text or among a list's elements, ``lt``...``gte``
    #: the value read as a number (``float()`` of a text, NaN otherwise).
    cast: str = ""


class Rule(Model, frozen=True, kw_only=True):
    """All clauses must match (AND); rules are tried in order and the first match wins."""

    id: Key
    description: str = ""
    clauses: tuple[Clause, ...] = ()
    serve: Serve


class Target(Model, frozen=True, kw_only=True):
    """Individual targeting: these context keys get ``variation``, before any rule."""

    variation: Key
    values: tuple[str, ...] = ()
    context_kind: str = "user"


class Prerequisite(Model, frozen=True, kw_only=True):
    """This flag is served normally only if flag ``flag`` evaluates to ``variation``."""

    flag: Key
    variation: Key
    #: Also fail when the prerequisite flag is off, whatever it serves then (LaunchDarkly's rule).
    require_on: bool = False


def _default_variations() -> tuple[Variation, ...]:
    return (Variation(key="on", value=True), Variation(key="off", value=False))


#: A flag's expected life: ``temporary`` (a release or an experiment, to be removed once rolled out) or
#: ``permanent`` (an operational switch, an entitlement).
Lifecycle = Literal["temporary", "permanent"]


class Flag(Model, frozen=True, kw_only=True):
    """The whole state of one flag in one environment: what the environment's SDKs evaluate.

    A flag exists in every environment of its project. What it *is* (``PROJECT_FIELDS``: key, name, kind,
    variations, tags, lifecycle...) is the same in all of them; what it *does* (``ENVIRONMENT_FIELDS``: on/off,
    targets, rules, the default and off variations, prerequisites) is set per environment. Each environment's
    event carries both, so an SDK reads its own environment and nothing else.
    """

    key: Key
    name: str = ""
    description: str = ""
    kind: FlagKind = FlagKind.BOOLEAN
    tags: tuple[str, ...] = ()
    #: Available to client-side apps (browsers, mobile): evaluable with a client-side key through OFREP
    #: (``docs/clientside.md``). Off by default: a flag is never shown to a browser unless someone said so.
    client_side: bool = False
    on: bool = False
    variations: tuple[Variation, ...] = field(default_factory=_default_variations)
    off_variation: Key = "off"
    fallthrough: Serve = field(default_factory=lambda: Serve(variation="on"))
    targets: tuple[Target, ...] = ()
    rules: tuple[Rule, ...] = ()
    prerequisites: tuple[Prerequisite, ...] = ()
    #: Bucketing salt; empty means the flag key. Keep it when copying a flag to keep users' buckets.
    salt: str = ""
    archived: bool = False
    #: When off, or a prerequisite fails: serve the caller's default instead of ``off_variation`` (a
    #: LaunchDarkly flag without an off variation, a disabled flagd flag).
    off_default: bool = False
    #: Who answers for the flag (a person or a team, free text).
    maintainer: str = ""
    lifecycle: Lifecycle = "temporary"
    #: When a temporary flag is expected to be removed from the code (None: not planned).
    remove_by: date | None = None
    #: Set only by the ``flag.deleted`` tombstone: the flag is gone (SDKs drop it; its history stays).
    deleted: bool = False


#: What a flag does in one environment: everything else about it is the same in every environment.
ENVIRONMENT_FIELDS: tuple[str, ...] = (
    "on",
    "off_variation",
    "off_default",
    "fallthrough",
    "targets",
    "rules",
    "prerequisites",
)
#: What a flag is, project-wide (a field added to ``Flag`` later is project-wide unless listed above).
PROJECT_FIELDS: tuple[str, ...] = tuple(f for f in Flag.__struct_fields__ if f not in ENVIRONMENT_FIELDS)


class SegmentRule(Model, frozen=True, kw_only=True):
    """All clauses must match; ``weight`` (of 100,000) optionally keeps only a sticky share of the matches."""

    id: Key
    clauses: tuple[Clause, ...] = ()
    weight: Weight | None = None
    bucket_by: str = "key"
    #: How ``weight`` buckets (as ``Rollout.algorithm``): ``flagstream`` (the segment's salt), or an imported
    #: percentage hashed as ``hash_prefix + value``: ``unleash``, ``launchdarkly``, ``flagsmith`` (its
    #: PERCENTAGE_SPLIT, inclusive: ``percentage <= weight / 1000``), ``growthbook``.
    algorithm: str = "flagstream"
    hash_prefix: str = ""
    #: GrowthBook's hash version (1 or 2; 0 means 1).
    hash_version: int = 0
    #: The context kind whose ``bucket_by`` is hashed; empty: the segment's kind (LaunchDarkly's
    #: ``rolloutContextKind``).
    context_kind: str = ""
    #: For ``growthbook``: the share as ``[start, end)`` ranges of the bucket (fractions of 1), in when the
    #: bucket lies in one of them (GrowthBook's namespaces and filters); ``weight`` is then the nominal share.
    ranges: tuple[tuple[float, float], ...] = ()


class Segment(Model, frozen=True, kw_only=True):
    """A reusable audience: included keys, excluded keys (which win), then rules."""

    key: Key
    name: str = ""
    description: str = ""
    context_kind: str = "user"
    included: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    rules: tuple[SegmentRule, ...] = ()
    salt: str = ""
    archived: bool = False


class Environment(Model, frozen=True, kw_only=True):
    """An environment of a project (``development``, ``production``...)."""

    key: Key
    name: str = ""
    description: str = ""
    #: Production-like: the UI asks for confirmation and a comment before a change.
    production: bool = False
    archived: bool = False
    #: Changes need this many approvals before they take effect (0: none, a change applies at once). From 1 on,
    #: every change to the environment becomes a change request (``docs/requests.md``).
    approvals: int = 0
    #: Who may approve: a role held on the environment (``writer``, ``admin``) or a group of people
    #: (``group:<name>``, as single sign-on names them); empty: anyone who may write the environment.
    approvers: tuple[str, ...] = ()
    #: Whether a flag may be turned off at once, without approval, with a reason: the kill switch. The event is
    #: marked as an unapproved emergency change. Turning off only: nothing else skips the approvals.
    emergency_off: bool = False

    @property
    def gated(self) -> bool:
        """Whether its changes need approvals (they become change requests)."""
        return self.approvals > 0


def to_builtins(value: Any) -> Any:
    """Domain value -> plain JSON-compatible Python objects."""
    return msgspec.to_builtins(value)
