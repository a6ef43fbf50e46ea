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

from typing import Any

import cython

from .bucketing import TOTAL
from .engine import _hash
from .operators import in_other

#: True when this module runs as the compiled extension.
COMPILED: bool = cython.compiled


@cython.cfunc
def _outcome(plan: tuple, context: dict, key: str) -> object:  # type: ignore[type-arg]
    """The ``_Outcome`` that ``plan`` (see ``flagstream.engine.Plan``) serves a plain user dict."""
    targets = plan[0]
    if targets is not None:
        o = targets.get(key)
        if o is not None:
            return o
    for rule in plan[1]:
        matched: cython.bint = True
        for clause in rule[0]:
            v = context.get(clause[0])
            if type(v) is str:
                single = clause[1]
                m: cython.bint = (v == single) if single is not None else (v in clause[2])
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
    bucket = _hash(serve[0] + key, 0, False) % TOTAL
    outcomes = serve[2]
    i: cython.Py_ssize_t
    for i, threshold in enumerate(serve[1]):
        if bucket < threshold:
            return outcomes[i]
    raise LookupError(key)  # the generated code's bisect would fail too: the general path answers


@cython.cclass
class Accessors:
    """The typed accessors of one client object (``view``): they read its ``_flags`` (in its ``__dict__``) on
    every call, so a new ruleset, or the telemetry sampler's empty map, is seen at once. Their arguments are
    annotated ``Any``: Cython would check or convert a ``str`` or ``bool`` annotation (``None`` as the default
    would become ``False``)."""

    view = cython.declare(object)
    #: ``view.__dict__``: where its ``_flags`` is, read with one dict lookup (a ``getattr`` costs more).
    attrs = cython.declare(dict)

    def __init__(self, view: Any) -> None:
        self.view = view
        self.attrs = view.__dict__

    def bool_variation(self, key: Any, context: Any, default: Any) -> Any:
        try:
            if type(context) is dict:
                ctx: dict = context  # type: ignore[type-arg]
                if "kind" in ctx:
                    raise LookupError
                k = ctx["key"]
                if type(k) is str:
                    flags: dict = self.attrs["_flags"]  # type: ignore[type-arg]
                    flag = flags[key]
                    b = flag.bools  # a constant flag's counter when its value is a bool
                    if b is None:
                        plan = flag.plan  # else ``fast``: None with prerequisites or in error, TypeError below
                        b = (_outcome(plan, ctx, k) if plan is not None else flag.fast(context, k)).bools
                    return next(b)  # counts it (see _Outcome); None, not a bool: TypeError below
        except Exception:  # the general path below answers (and logs) whatever went wrong here
            pass
        return self.view._typed(key, context, default, bool).value

    def string_variation(self, key: Any, context: Any, default: Any) -> Any:
        try:
            if type(context) is dict:
                ctx: dict = context  # type: ignore[type-arg]
                if "kind" in ctx:
                    raise LookupError
                k = ctx["key"]
                if type(k) is str:
                    flags: dict = self.attrs["_flags"]  # type: ignore[type-arg]
                    flag = flags[key]
                    b = flag.strings
                    if b is None:
                        plan = flag.plan
                        b = (_outcome(plan, ctx, k) if plan is not None else flag.fast(context, k)).strings
                    return next(b)
        except Exception:
            pass
        return self.view._typed(key, context, default, str).value
