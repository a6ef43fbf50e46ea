"""The typed accessors' fast path, compiled: ``bool_variation`` and ``string_variation`` as C functions.

This module is Python, written for Cython's pure-Python mode: the install compiles it to a C extension
(``setup.py``; Cython is a build requirement only). Compiled, a client's ``bool_variation`` is a method of
:class:`Accessors`: no Python frame for the call, the dict reads and type checks, and the flag's
``CompiledFlag.plan`` evaluated in C -- user targets, string ``in`` clauses and rollouts by key. A flag whose
plan is ``None`` runs its generated ``fast`` function; anything else (errors, other context shapes, a value of
the wrong type, exposures) takes the client's general path, as the pure-Python accessors of
``flagstream.cache.FlagEvaluations`` do. Both give the same answers and count on the same counters; the tests
run the same cases through both.

Where the extension is not built (no compiler at install time), ``COMPILED`` is ``False`` and the client uses
its pure-Python accessors: this file is never run uncompiled on the hot path.
"""

from __future__ import annotations

from itertools import repeat as _repeat
from typing import Any

import cython

from .bucketing import TOTAL
from .engine import _hash
from .operators import in_other

#: True when this module runs as the compiled extension.
COMPILED: bool = cython.compiled
#: What ``Accessors._fast`` gives when the general path must answer.
_MISS = object()


@cython.cfunc
def _outcome(plan: tuple, context: dict, key: str) -> object:  # type: ignore[type-arg]
    """The ``_Outcome`` that ``plan`` (see ``flagstream.engine.Plan``) serves a plain user dict."""
    targets = plan[0]
    if targets is not None:
        o = targets.get(key)
        if o is not None:
            return o
    rules: tuple = plan[1]  # type: ignore[type-arg]
    rule: tuple  # type: ignore[type-arg]
    clause: tuple  # type: ignore[type-arg]
    clauses: tuple  # type: ignore[type-arg]
    for rule in rules:
        matched: cython.bint = True
        clauses = rule[0]
        for clause in clauses:
            v = context.get(clause[0])
            if type(v) is str:
                text: str = v
                single = clause[1]
                m: cython.bint = (text == single) if single is not None else (text in clause[2])
                if clause[3]:
                    m = not m
            else:
                m = in_other(v, clause[2], clause[3])
            if not m:
                matched = False
                break
        if matched:
            o = _served(rule[1], key)
            if o is not None:
                return o
    o = _served(plan[2], key)
    if o is None:  # a partial fallthrough rollout: the generated code decides (it never gets here)
        raise LookupError(key)
    return o


@cython.cfunc
def _served(serve: object, key: str) -> object:
    """What a plan's serve gives: its outcome, or the rollout's outcome for ``key`` (``None``: not served)."""
    if type(serve) is not tuple:
        return serve
    rollout: tuple = serve  # type: ignore[type-arg]
    salt: str = rollout[0]
    # mmh3's unsigned 32-bit hash, its bucket and the thresholds compared as C numbers (exact below 2**53)
    hashed: cython.ulonglong = _hash(salt + key, 0, False)
    total: cython.ulonglong = TOTAL
    bucket: cython.double = hashed % total
    thresholds: tuple = rollout[1]  # type: ignore[type-arg]
    i: cython.Py_ssize_t
    for i in range(len(thresholds)):
        threshold: cython.double = thresholds[i]
        if bucket < threshold:
            return rollout[2][i]
    raise LookupError(key)  # the generated code's bisect would fail too: the general path answers


@cython.cfunc
def _entry(flags: object, key: object, counter: object) -> object:
    """What an accessor keeps for flag ``key`` of ``flags``: its constant's counter, else its plan, else the flag
    (to call its ``fast``), read again from ``flags``: a ``LazyFlag`` has put its compiled flag there by now."""
    if counter is not None:
        return counter
    flag = flags[key]
    plan = flag.plan
    return plan if plan is not None else flag


@cython.cclass
class Accessors:
    """The typed accessors of one client object (``view``). They read its ``_flags`` (in its ``__dict__``) on
    every call, so a new ruleset, or the telemetry sampler's empty map, is seen at once, and keep per flag what
    they need of it (``_entry``) for as long as that map is the current one (``cache``: the map and a dict per
    type, replaced in one step, so a thread never files what it read of an older map under a newer one).

    Their arguments are annotated ``Any``: Cython would check or convert a ``str`` or ``bool`` annotation (``None``
    as the default would become ``False``)."""

    view = cython.declare(object)
    #: ``view.__dict__``: where its ``_flags`` is, read with one dict lookup (a ``getattr`` costs more).
    attrs = cython.declare(dict)
    #: ``(the _flags map, {key: bool entry}, {key: string entry})``
    cache = cython.declare(tuple)

    def __init__(self, view: Any) -> None:
        self.view = view
        self.attrs = view.__dict__
        self.cache = (None, {}, {})

    @cython.cfunc
    def _fast(self, key: object, context: object, strings: cython.bint) -> object:
        """The value served (and counted) for a plain user dict, else ``_MISS``: the general path answers."""
        try:
            if type(context) is dict:
                ctx: dict = context  # type: ignore[type-arg]
                if "kind" not in ctx:
                    k = ctx["key"]
                    if type(k) is str:
                        flags = self.attrs["_flags"]
                        cache = self.cache
                        if cache[0] is not flags:
                            cache = self.cache = (flags, {}, {})
                        entries: dict = cache[2 if strings else 1]  # type: ignore[type-arg]
                        e = entries.get(key)
                        if e is None:
                            flag = flags[key]
                            e = entries[key] = _entry(flags, key, flag.strings if strings else flag.bools)
                        if type(e) is _repeat:  # a constant flag: its counter
                            return next(e)  # counts it (see _Outcome)
                        # a plan, else the flag's ``fast`` (None: prerequisites, in error; TypeError below)
                        o = _outcome(e, ctx, k) if type(e) is tuple else e.fast(context, k)
                        return next(o.strings if strings else o.bools)  # None, not of the type: TypeError
        except Exception:  # the general path answers (and logs) whatever went wrong here
            pass
        return _MISS

    def bool_variation(self, key: Any, context: Any, default: Any) -> Any:
        value = self._fast(key, context, False)
        if value is not _MISS:
            return value
        return self.view._typed(key, context, default, bool).value

    def string_variation(self, key: Any, context: Any, default: Any) -> Any:
        value = self._fast(key, context, True)
        if value is not _MISS:
            return value
        return self.view._typed(key, context, default, str).value
