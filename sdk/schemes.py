"""The bucketing schemes of imported flags, each computed exactly as its home system computes it. Pure, no I/O.

A rollout names its scheme (``Rollout.algorithm``) and parameters (``hash_prefix``, ``hash_version``,
``ranges``); :func:`rollout_picker` turns them into one function ``pick(attributes) -> index | None``: the
position of the variation served to a context whose attributes (of the rollout's context kind) are given
(``None``: the context has no such kind), or ``None`` when the rollout serves nothing to it (cannot bucket it,
or its bucket is in no variation's range). Flagstream's own scheme is not here: the engine inlines it
(``bucketing.py``), and its cost is unchanged.

Each scheme, with the source file of the home system's SDK its formula was read from (docs/migration.md):

=================  ==================================================================================
``unleash``        ``murmur3_32(prefix + value) % 100`` (prefix ``"{groupId}:"``) against the percentage
                   (the normalised value ``% 100 + 1 <= percentage``), yggdrasil / unleash-client specs
``unleash_variant````murmur3_32(prefix + value, seed 86028157) % total`` against running weights, ``total``
                   the actual sum of the variant weights (the last range end), not 1000
``flagd``          legacy fractional: ``abs(int32 murmur3(prefix + value)) / MaxInt32 * 100`` against float
                   range ends
``flagd_v2``       fractional v2 (flagd-core ``custom_ops.fractional``): ``(murmur3_32(CBOR(value)) *
                   total) >> 32`` against integer running weights; ``flagd_v2_pair`` hashes the CBOR of
                   ``[prefix, value]`` (the shorthand: ``[flagKey, targetingKey]``), ``flagd_v2_cat`` the CBOR
                   of ``prefix + value`` as JSON Logic's ``cat`` writes it (a missing value is ``null``)
``launchdarkly``   ``int(sha1(prefix + value).hex[:15], 16) / 0xFFFFFFFFFFFFFFF`` (prefix ``"{key}.{salt}."``
                   or ``"{seed}."``), against running ``weight / 100000.0``; a context without the kind is
                   bucket -1, a missing or unbucketable value bucket 0 (ldclient ``evaluator_common``)
``flagsmith``      ``md5(",".join([prefix + value] * n)) % 9999 / 9998 * 100``, ``n`` raised while the
                   result is exactly 100, against ``[start, end)`` percentage ranges (flag_engine
                   ``utils/hashing``)
``growthbook``     FNV-1a 32 over UTF-16 units: version 1 ``fnv(value + seed) % 1000 / 1000``, version 2
                   ``fnv(str(fnv(seed + value))) % 10000 / 10000`` (prefix = seed), against ``[start, end)``
                   ranges in order; only non-empty strings and finite non-zero numbers (JS ``String()``)
                   hash (growthbook ``core``)
=================  ==================================================================================
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mmh3

from .bucketing import MAX_INT32, UNLEASH_VARIANT_SEED, bucket_text

UNLEASH = "unleash"
UNLEASH_VARIANT = "unleash_variant"
FLAGD = "flagd"
FLAGD_V2 = "flagd_v2"
FLAGD_V2_PAIR = "flagd_v2_pair"
FLAGD_V2_CAT = "flagd_v2_cat"
LAUNCHDARKLY = "launchdarkly"
FLAGSMITH = "flagsmith"
GROWTHBOOK = "growthbook"
SCHEMES = (
    UNLEASH,
    UNLEASH_VARIANT,
    FLAGD,
    FLAGD_V2,
    FLAGD_V2_PAIR,
    FLAGD_V2_CAT,
    LAUNCHDARKLY,
    FLAGSMITH,
    GROWTHBOOK,
)
#: Schemes whose rollouts serve by ``ranges`` (in the scheme's own unit) when given.
RANGED = (UNLEASH_VARIANT, FLAGD_V2, FLAGD_V2_PAIR, FLAGD_V2_CAT, FLAGSMITH, GROWTHBOOK)
#: Schemes a segment rule's percentage (``SegmentRule.weight``) can use, besides ``flagstream``.
SEGMENT_SCHEMES = (UNLEASH, LAUNCHDARKLY, FLAGSMITH, GROWTHBOOK)

_hash = mmh3.hash
_LD_SCALE = float(0xFFFFFFFFFFFFFFF)

Attributes = Mapping[str, Any] | None
Picker = Callable[[Attributes], int | None]


# ---------------------------------------------------------------------------------------------------------
# attribute lookup (a name, or a /pointer/path into nested objects, as clauses read them)
# ---------------------------------------------------------------------------------------------------------


def pointer(attribute: str) -> tuple[str, ...] | None:
    """The path of a ``/a/b`` attribute (``~1`` is ``/``, ``~0`` is ``~``), or ``None`` for a plain name."""
    if len(attribute) < 2 or attribute[0] != "/":
        return None
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in attribute[1:].split("/"))


def walk(attrs: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    v: Any = attrs
    for p in path:
        if not isinstance(v, Mapping):
            return None
        v = v.get(p)
    return v


def getter(attribute: str) -> Callable[[Mapping[str, Any]], Any]:
    """``attrs -> value`` of ``attribute`` (plain or path)."""
    path = pointer(attribute)
    if path is None:
        return lambda a: a.get(attribute)
    return lambda a: walk(a, path)


# ---------------------------------------------------------------------------------------------------------
# the hash functions
# ---------------------------------------------------------------------------------------------------------


def launchdarkly_bucket(prefix: str, text: str) -> float:
    """LaunchDarkly's bucket in ``[0, 1)``: the first 15 hex digits of SHA-1, over ``0xFFFFFFFFFFFFFFF``."""
    digest = hashlib.sha1((prefix + text).encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> 4) / _LD_SCALE


def launchdarkly_text(value: Any) -> str | None:
    """LaunchDarkly's bucketable values: strings, and integers (not booleans, not floats)."""
    if type(value) is str:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:
            return None
    if isinstance(value, str):
        return str(value)
    return None


def flagsmith_percentage(text: str) -> float:
    """Flagsmith's ``get_hashed_percentage_for_object_ids``: ``text`` is the object ids joined with ``,``."""
    iterations = 1
    while True:
        to_hash = ",".join([text] * iterations)
        value = (int(hashlib.md5(to_hash.encode("utf-8")).hexdigest(), 16) % 9999) / 9998 * 100
        if value != 100:
            return value
        iterations += 1


def python_text(value: Any) -> str | None:
    """Python's ``str()`` of a JSON value, as Flagsmith's engine joins object ids (``None``: no value)."""
    if value is None or isinstance(value, dict | list | tuple):
        return None
    try:
        return str(value)
    except ValueError:
        return None


_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DECIMAL_TEXT = re.compile(r"-?[0-9]+\.[0-9]+")


def flagsmith_text(value: Any) -> str | None:
    """The text Flagsmith hashes for a trait: its value as the engine reads it (a text that looks like an
    integer or a decimal is that number; a list or an object its Python ``str()``), then ``str()``."""
    if value is None:
        return None
    try:
        if type(value) is str:
            if len(value) <= 4300 and _INTEGER_TEXT.fullmatch(value):
                return str(int(value))
            if _DECIMAL_TEXT.fullmatch(value):
                return str(float(value))
            return value
        return str(value)
    except (ValueError, RecursionError):
        return None


def fnv1a32(s: str) -> int:
    """FNV-1a 32 over UTF-16 code units, like GrowthBook's JS ``charCodeAt`` loop."""
    h = 0x811C9DC5
    if s.isascii():
        for b in s.encode():
            h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    else:
        data = s.encode("utf-16-le", "surrogatepass")
        for i in range(0, len(data), 2):
            h = ((h ^ (data[i] | (data[i + 1] << 8))) * 0x01000193) & 0xFFFFFFFF
    return h


def growthbook_hash(seed: str, text: str, version: int) -> float | None:
    """GrowthBook's ``hash(seed, value, version)`` in ``[0, 1)``; ``None`` for an unknown version."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + text))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(text + seed) % 1000) / 1000
    return None


def js_number_text(value: int | float) -> str:
    """JavaScript's ``String(number)`` (ECMAScript Number::toString), for a finite number."""
    x = float(value)
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_text(-x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    padded = (whole + fraction).lstrip("0")
    digits = padded.rstrip("0")
    k = len(digits)
    n = int(exp or "0") - len(fraction) + len(padded)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return mantissa + "e" + ("+" if n > 0 else "-") + str(abs(n - 1))


def growthbook_text(value: Any) -> str | None:
    """GrowthBook hashes non-empty strings and finite non-zero numbers (as JS ``String()``), nothing else."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        if value == 0 or not math.isfinite(value):
            return None
    except OverflowError:  # an integer too large for a double: Infinity in JS
        return None
    return js_number_text(value)


# -- flagd v2: canonical CBOR (RFC 8949 core deterministic encoding) of JSON values --------------------------


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")


def _cbor_float(x: float) -> bytes:
    """The shortest of half, single and double precision that holds ``x`` exactly (as cbor2 canonical)."""
    if math.isnan(x):
        return b"\xf9\x7e\x00"
    if math.isinf(x):
        return b"\xf9\x7c\x00" if x > 0 else b"\xf9\xfc\x00"
    try:
        half = struct.pack(">e", x)
        if struct.unpack(">e", half)[0] == x:
            return b"\xf9" + half
    except OverflowError:
        pass
    try:
        single = struct.pack(">f", x)
        if struct.unpack(">f", single)[0] == x:
            return b"\xfa" + single
    except OverflowError:
        pass
    return b"\xfb" + struct.pack(">d", x)


def jsonlogic_text(value: Any) -> str:
    """The text JSON Logic's ``cat`` makes of a value in flagd-core (panzi-json-logic ``to_string``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.15g}"
    if isinstance(value, int):  # booleans too, as Python's int subclass: "True"
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return ",".join(jsonlogic_text(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def cbor(value: Any) -> bytes | None:
    """Canonical CBOR of a JSON value, integral floats (in the 64-bit range) as integers, as flagd-core
    encodes a fractional bucketing value; ``None`` for what it cannot encode."""
    t = type(value)
    if t is str:
        data = value.encode("utf-8", "surrogatepass")
        return _cbor_head(3, len(data)) + data
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if value is None:
        return b"\xf6"
    if t is float and value.is_integer() and -(2**63) <= value <= 2**64 - 1:
        value, t = int(value), int
    if isinstance(value, int):
        if 0 <= value < 2**64:
            return _cbor_head(0, value)
        if -(2**64) <= value < 0:
            return _cbor_head(1, -1 - value)
        return None  # a bignum: tagged, not worth encoding for a bucketing value
    if t is float:
        return _cbor_float(value)
    if isinstance(value, list | tuple):
        parts = [cbor(v) for v in value]
        if any(p is None for p in parts):
            return None
        return _cbor_head(4, len(parts)) + b"".join(parts)  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            ek, ev = cbor(k), cbor(v)
            if ek is None or ev is None:
                return None
            items.append((ek, ev))
        items.sort(key=lambda kv: (len(kv[0]), kv[0]))
        return _cbor_head(5, len(items)) + b"".join(k + v for k, v in items)
    return None


# ---------------------------------------------------------------------------------------------------------
# pickers
# ---------------------------------------------------------------------------------------------------------


def running_ends(weights: Sequence[float]) -> tuple[float, ...]:
    """Running sums, added left to right as the home systems add them."""
    out: list[float] = []
    total: float = 0
    for w in weights:
        total += w
        out.append(total)
    return tuple(out)


def _cumulative_ranges(weights: Sequence[float]) -> tuple[tuple[float, float], ...]:
    ends = running_ends(weights)
    return tuple(zip((0, *ends), ends, strict=False))


def _first_range(ranges: Sequence[tuple[float, float]]) -> Callable[[float], int | None]:
    """The first range ``[start, end)`` holding the bucket, in order (GrowthBook ``chooseVariation``,
    Flagsmith's multivariate walk, flagd's and Unleash's running ends)."""
    rs = tuple((float(s), float(e)) for s, e in ranges)

    def find(b: float) -> int | None:
        for i, (s, e) in enumerate(rs):
            if s <= b < e:
                return i
        return None

    return find


def rollout_picker(
    algorithm: str,
    bucket_by: str,
    prefix: str,
    weights: Sequence[int],
    ranges: Sequence[tuple[float, float]] = (),
    hash_version: int = 0,
    fallback_by: str = "",
) -> Picker:
    """``pick(attributes) -> variation index | None`` for a rollout of an imported scheme (see module doc).

    ``weights`` are the rollout's weights of 100,000 (used when ``ranges`` is empty); ``ranges`` are
    ``[start, end)`` per variation in the scheme's own unit.
    """
    get = getter(bucket_by)
    n = len(weights)

    if algorithm == LAUNCHDARKLY:
        ends = running_ends([w / 100000.0 for w in weights])
        last = n - 1

        def pick_ld(a: Attributes) -> int | None:
            if a is None:
                bucket = -1.0
            else:
                text = launchdarkly_text(get(a))
                bucket = 0.0 if text is None else launchdarkly_bucket(prefix, text)
            for i, end in enumerate(ends):
                if bucket < end:
                    return i
            return last  # above every end (rounding, or weights short of 100,000): the last variation

        return pick_ld

    if algorithm in (UNLEASH, FLAGD):
        ends = running_ends(weights)
        if algorithm == FLAGD:
            fends = tuple(running_ends([100 * w / 100000 for w in weights]))

            def bucket_flagd(t: str) -> float:
                return abs(_hash(prefix + t, 0, True)) / MAX_INT32 * 100

            def pick_flagd(a: Attributes) -> int | None:
                t = None if a is None else bucket_text(get(a))
                if t is None:
                    return None
                b = bucket_flagd(t)
                for i, end in enumerate(fends):
                    if b < end:
                        return i
                return n - 1  # the one hash above every end (abs(-2**31)): the last variation

            return pick_flagd

        def pick_unleash(a: Attributes) -> int | None:
            t = None if a is None else bucket_text(get(a))
            if t is None:
                return None
            b = _hash(prefix + t, 0, False) % 100 * 1000
            for i, end in enumerate(ends):
                if b < end:
                    return i
            return None

        return pick_unleash

    if algorithm == UNLEASH_VARIANT:
        if ranges:
            total = int(ranges[-1][1])
            find = _first_range(ranges)
        else:  # as written before ranges existed: weights of 100,000 from Unleash weights of 1,000
            total = 1000
            find = _first_range([(s / 100, e / 100) for s, e in _cumulative_ranges(weights)])

        def pick_variant(a: Attributes) -> int | None:
            t = None if a is None else bucket_text(get(a))
            if t is None or total <= 0:
                return None
            return find(_hash(prefix + t, UNLEASH_VARIANT_SEED, False) % total)

        return pick_variant

    if algorithm in (FLAGD_V2, FLAGD_V2_PAIR, FLAGD_V2_CAT):
        rs = ranges or tuple(_cumulative_ranges(weights))
        total = int(rs[-1][1]) if rs else 0
        find = _first_range(rs)
        pair = algorithm == FLAGD_V2_PAIR
        cat = algorithm == FLAGD_V2_CAT

        def pick_fractional(a: Attributes) -> int | None:
            if total <= 0:
                return None
            if cat:  # JSON Logic's cat: a missing value is the text "null", still hashed
                data = cbor(prefix + jsonlogic_text(None if a is None else get(a)))
                return None if data is None else find((_hash(data, 0, False) * total) >> 32)
            if a is None:
                return None
            v = get(a)
            if pair:
                if type(v) is not str or not v:
                    return None
                data = cbor([prefix, v])
            else:
                if v is None:
                    return None
                data = cbor(v)
            if data is None:
                return None
            return find((_hash(data, 0, False) * total) >> 32)

        return pick_fractional

    if algorithm == FLAGSMITH:
        find = _first_range(ranges or tuple(_cumulative_ranges(weights)))
        text_of = python_text if bucket_by == "key" else flagsmith_text

        def pick_flagsmith(a: Attributes) -> int | None:
            t = None if a is None else text_of(get(a))
            if t is None:
                return None
            return find(flagsmith_percentage(prefix + t))

        return pick_flagsmith

    if algorithm == GROWTHBOOK:
        rs = ranges or tuple((s / 100000, e / 100000) for s, e in _cumulative_ranges(weights))
        find = _first_range(rs)
        version = hash_version or 1
        fallback = getter(fallback_by) if fallback_by else None

        def pick_growthbook(a: Attributes) -> int | None:
            t = None if a is None else growthbook_text(get(a))
            if t is None and fallback is not None and a is not None:
                t = growthbook_text(fallback(a))
            if t is None:
                return None
            b = growthbook_hash(prefix, t, version)
            return None if b is None else find(b)

        return pick_growthbook

    raise ValueError(f"unknown bucketing scheme {algorithm!r}")


def segment_share(
    algorithm: str,
    bucket_by: str,
    prefix: str,
    weight: int,
    hash_version: int = 0,
    ranges: Sequence[tuple[float, float]] = (),
) -> Picker:
    """``in(attributes) -> 0 | None`` for a segment rule's percentage ``weight`` (of 100,000) under a scheme:
    0 when the context is in the share. Comparisons as the home systems make them:

    * ``unleash``: ``murmur3(prefix + value) % 100 * 1000 < weight`` (the normalised value ``<=`` percentage);
    * ``launchdarkly``: ``bucket < weight / 100000.0``, bucket -1 without the kind, 0 without a bucketable value;
    * ``flagsmith``: ``percentage <= weight / 1000`` (PERCENTAGE_SPLIT is inclusive);
    * ``growthbook``: ``hash < weight / 100000`` (a force rule's coverage), or with ``ranges``, the hash in
      one of the ``[start, end)`` ranges (a namespace, a filter).
    """
    get = getter(bucket_by)
    if algorithm == UNLEASH:

        def in_unleash(a: Attributes) -> int | None:
            t = None if a is None else bucket_text(get(a))
            return 0 if t is not None and _hash(prefix + t, 0, False) % 100 * 1000 < weight else None

        return in_unleash
    if algorithm == LAUNCHDARKLY:
        share = weight / 100000.0

        def in_ld(a: Attributes) -> int | None:
            if a is None:
                return 0  # bucket -1: below every share
            text = launchdarkly_text(get(a))
            bucket = 0.0 if text is None else launchdarkly_bucket(prefix, text)
            return 0 if bucket < share else None

        return in_ld
    if algorithm == FLAGSMITH:
        percent = weight / 1000
        text_of = python_text if bucket_by == "key" else flagsmith_text

        def in_flagsmith(a: Attributes) -> int | None:
            t = None if a is None else text_of(get(a))
            return 0 if t is not None and flagsmith_percentage(prefix + t) <= percent else None

        return in_flagsmith
    if algorithm == GROWTHBOOK:
        coverage = weight / 100000
        version = hash_version or 1
        find = _first_range(ranges) if ranges else None

        def in_growthbook(a: Attributes) -> int | None:
            t = None if a is None else growthbook_text(get(a))
            if t is None:
                return None
            b = growthbook_hash(prefix, t, version)
            if b is None:
                return None
            if find is not None:
                return None if find(b) is None else 0
            return 0 if b < coverage else None

        return in_growthbook
    raise ValueError(f"unknown segment bucketing scheme {algorithm!r}")


def growthbook_ranges(
    count: int, coverage: float | None = 1, weights: Sequence[float] | None = None
) -> tuple[tuple[float, float], ...]:
    """GrowthBook's ``getBucketRanges``: each variation's ``[start, start + coverage * weight)``; weights that
    are not one finite non-negative number per variation summing to 0.99-1.01 become equal weights."""
    c = 1.0 if coverage is None else min(max(coverage, 0), 1)
    valid = (
        weights is not None
        and len(weights) == count
        and all(isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0 for w in weights)
    )
    if valid:
        try:
            valid = 0.99 <= sum(weights) <= 1.01  # type: ignore[arg-type]
        except OverflowError:
            valid = False
    ws = list(weights) if valid else [1 / count for _ in range(count)]  # type: ignore[arg-type]
    out: list[tuple[float, float]] = []
    cumulative: float = 0
    for w in ws:
        start = cumulative
        cumulative += w
        out.append((start, start + c * w))
    return tuple(out)
