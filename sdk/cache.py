"""The client's local ruleset: one immutable ``Ruleset`` swapped atomically, change listeners, and the
evaluation API every client offers on top of it.

Readers (evaluations, on any thread) read ``cache.ruleset`` once and use that snapshot: there is no lock, a
writer builds a new ``Ruleset`` with ``apply_events`` and publishes it with a single attribute assignment.
Only one writer exists (the NATS edge, on the client's event loop).
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import monotonic as _monotonic
from typing import Any

from .context import problem
from .engine import CompiledFlag, evaluate
from .evaluation import ErrorKind, EvaluationDetail, error_detail
from .events import Event, Flag
from .exposures import ExposureCallback, ExposureRecorder
from .ruleset import LazyFlag, Ruleset, apply_events, fast_flags

log = logging.getLogger("flagstream.client")

#: ``callback(flag_key, old_flag_or_None, new_flag_or_None)``, called after the change is applied.
ChangeListener = Callable[[str, Flag | None, Flag | None], None]

#: A context the SDK cannot use is logged once per flag, then at most once per flag per this many seconds.
CONTEXT_LOG_INTERVAL = 300.0
#: Flags remembered for that; beyond, the memory starts over (a flag may then be logged once more).
_CONTEXT_LOG_FLAGS = 10_000

#: ``callback(changed_flag_keys, new_ruleset)``, called once per applied batch (for the SDK's own parts:
#: persistence, telemetry, the OpenFeature provider).
AppliedHook = Callable[[set[str], Ruleset], None]

#: Evaluation counts by (flag key, variation key; ``None`` when the default was served on an error).
Counts = dict[tuple[str, str | None], int]

#: Seconds a replaced flag's counters stay readable before they are folded into the totals: an evaluation that
#: read the old ruleset just before the swap has that long to finish its increment.
RETIRE_AFTER = 1.0


class ClientStatus(enum.StrEnum):
    #: Not loaded yet: connecting, or loading the current state.
    INITIALIZING = "INITIALIZING"
    #: Loaded and following live changes.
    READY = "READY"
    #: Was loaded, lost the connection: evaluations use the last known ruleset until it catches up again.
    STALE = "STALE"
    #: Connected but unable to load (no stream, no permission...); still retrying. See ``last_error``.
    ERROR = "ERROR"
    #: ``close()`` was called.
    CLOSED = "CLOSED"


class RulesetCache:
    """Holds the current ``Ruleset``; ``apply`` folds a batch of events into it and notifies listeners."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        #: True once the initial state was loaded (the first catch-up).
        self.ready = False
        #: True once some state is held: the live load, or a last-known-state file / offline file before it.
        self.loaded = False
        #: Events the fold could not apply (an engine fault on one event); they are skipped.
        self.failed_events = 0
        self._listeners: dict[str | None, list[ChangeListener]] = {}
        self._applied_hooks: list[AppliedHook] = []
        #: Evaluations counted by the accessors' general path (errors, non-plain contexts, details); the fast
        #: path counts on the compiled flag's outcomes instead (``_Outcome.counter``). See ``evaluation_totals``.
        self.slow_counts: collections.defaultdict[tuple[str, str | None], int] = collections.defaultdict(int)
        self._folded: Counts = {}
        self._retired: list[tuple[float, list[tuple[str, CompiledFlag]]]] = []
        #: Client objects reading this cache: each holds the current ``compiled`` map as ``_flags``.
        self._views: list[FlagEvaluations] = []

    def attach(self, view: FlagEvaluations) -> None:
        """Let ``view`` evaluate against this cache (its ``_flags`` follows every swap)."""
        view._cache = self
        view._flags = self.fast_flags()
        self._views.append(view)
        if _ACCEL is not None and not view._observers:
            view._set_observe()  # gives it the compiled accessors

    def fast_flags(self) -> dict[str, Any]:
        """The current ruleset's compiled flags as the plain ``dict`` the fast accessors read (``fast_flags``)."""
        return fast_flags(self.ruleset.compiled)

    def apply(self, events: Sequence[tuple[int, Event]], fresh: bool = False) -> set[str]:
        """Fold ``(stream sequence, event)`` pairs in one ``apply_events`` call and swap the result in.

        ``fresh``: the events are a whole new state (the stream was recreated): fold them into an empty
        ruleset instead, and report flags that disappeared as changed too.
        """
        old = self.ruleset
        if not events and not fresh:
            return set()
        base = Ruleset(project=old.project, environment=old.environment, clock=old.clock) if fresh else old
        try:
            new, changed = apply_events(base, events)
        except Exception:
            # One event the fold cannot take must not cost the others: retry one by one, skipping the culprit.
            log.exception("flagstream: folding %d events failed; applying them one by one", len(events))
            new, changed = base, set()
            for item in events:
                try:
                    new, one = apply_events(new, (item,))
                except Exception:
                    self.failed_events += 1
                    log.exception("flagstream: skipping event at stream sequence %d", item[0])
                    continue
                changed |= one
        if fresh:
            changed = _differences(old, new)
        self._swap(old, new, changed, old.compiled if fresh else changed)
        return changed

    def replace(self, ruleset: Ruleset) -> set[str]:
        """Swap in a whole ruleset (a last-known-state file, an offline file, test data); notify what differs."""
        old = self.ruleset
        changed = _differences(old, ruleset)
        self._swap(old, ruleset, changed, old.compiled)
        return changed

    def _swap(self, old: Ruleset, new: Ruleset, changed: set[str], replaced: Iterable[str]) -> None:
        self.ruleset = new  # the atomic swap
        fast = fast_flags(new.compiled)
        for view in self._views:
            view._flags = fast  # the same snapshot's flags, for the accessors' fast path
        self.loaded = True
        self._retire(old.compiled, new.compiled, replaced)
        if changed and self._listeners:
            self._notify(changed, old, new)
        for hook in list(self._applied_hooks):
            try:
                hook(changed, new)
            except Exception:
                log.exception("flagstream: internal hook %r failed", hook)

    # -- evaluation counts -----------------------------------------------------------------------------------

    def _retire(self, old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str]) -> None:
        """Keep the counters of the compiled flags the swap dropped readable for ``RETIRE_AFTER`` seconds."""
        now = time.monotonic()
        gone = []
        for key in keys:
            before = _real(old.get(key))
            if before is not None and before is not _real(new.get(key)):
                gone.append((key, before))
        if gone:
            self._retired.append((now, gone))
        if self._retired and now - self._retired[0][0] > RETIRE_AFTER:
            self._fold(now)

    def _fold(self, now: float) -> None:
        while self._retired and now - self._retired[0][0] > RETIRE_AFTER:
            _, flags = self._retired.pop(0)
            for key, flag in flags:
                _add_outcomes(self._folded, key, flag)

    def evaluation_totals(self) -> Counts:
        """Evaluations served by this cache's accessors since it was made, by (flag, variation): cumulative,
        so readers (telemetry, metrics) keep their own last reading and never reset anything.

        Exact for evaluations on one thread; with several threads racing on the same flag an increment can
        be lost (as with any unlocked counter), never counted twice.
        """
        self._fold(time.monotonic())
        totals = dict(self._folded)
        for k, n in list(self.slow_counts.items()):
            totals[k] = totals.get(k, 0) + n
        for key, flag in list(self.ruleset.compiled.items()):
            _add_outcomes(totals, key, _real(flag))
        for _, flags in list(self._retired):
            for key, flag in flags:
                _add_outcomes(totals, key, flag)
        return totals

    def add_applied_hook(self, hook: AppliedHook) -> Callable[[], None]:
        """Call ``hook(changed, ruleset)`` after every swap (even with nothing changed); returns a remover."""
        self._applied_hooks.append(hook)
        return lambda: self._applied_hooks.remove(hook) if hook in self._applied_hooks else None

    def on_change(self, flag_key: str | None, callback: ChangeListener) -> Callable[[], None]:
        """Call ``callback`` when flag ``flag_key`` (or any flag, for ``None``) changes; returns a remover."""
        self._listeners.setdefault(flag_key, []).append(callback)

        def remove() -> None:
            callbacks = self._listeners.get(flag_key, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return remove

    def _notify(self, changed: set[str], old: Ruleset, new: Ruleset) -> None:
        any_flag = list(self._listeners.get(None, ()))
        for key in sorted(changed):
            callbacks = any_flag + list(self._listeners.get(key, ()))
            if not callbacks:
                continue
            before, after = old.flags.get(key), new.flags.get(key)
            for callback in callbacks:
                try:
                    callback(key, before, after)
                except Exception:
                    log.exception("flagstream: on_change listener %r failed for flag %r", callback, key)


def _real(flag: Any) -> CompiledFlag | None:
    """The ``CompiledFlag`` behind a ``compiled`` map entry (``None`` for a flag not compiled yet)."""
    return flag._real if type(flag) is LazyFlag else flag


def _add_outcomes(totals: Counts, key: str, flag: CompiledFlag | None) -> None:
    if flag is None:
        return
    for o in flag.outcomes():
        if o.n:
            k = (key, o.variation)
            totals[k] = totals.get(k, 0) + o.n


def _differences(old: Ruleset, new: Ruleset) -> set[str]:
    """Flag keys whose state differs between two rulesets (all of them when the segments differ)."""
    if dict(old.segments) != dict(new.segments):
        return set(old.flags) | set(new.flags)
    return {key for key in old.flags.keys() | new.flags.keys() if old.flags.get(key) != new.flags.get(key)}


#: The value types of the typed accessors, for ``isinstance`` (a bool is never a number; see ``_typed``).
_NUMBER = (int, float)
_JSON = (dict, list)


def _observe_safely(observe: Callable[[str, Any, EvaluationDetail], None], key: str, context: Any, d: Any) -> None:
    try:
        observe(key, context, d)
    except Exception:
        log.exception("flagstream: evaluation observer failed (ignored)")


def _general(client: FlagEvaluations, kind: type) -> Callable[[str, Any, Any], Any]:
    typed = client._typed

    def variation(key: str, context: Any, default: Any) -> Any:
        return typed(key, context, default, kind).value

    return variation


def _compiled_accessors() -> Any:
    """``flagstream._accel`` when the install compiled it (see setup.py), unless ``FLAGSTREAM_PURE_PYTHON`` is
    set (to ``1``): then, or without the extension, the typed accessors are the pure-Python ones below."""
    if os.environ.get("FLAGSTREAM_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _accel
    except ImportError:  # not built (no compiler at install time), or Cython's module missing uncompiled
        return None
    return _accel if _accel.COMPILED else None


#: The compiled accessors' module, or ``None`` (see :func:`_compiled_accessors`).
_ACCEL = _compiled_accessors()
#: Whether clients get the compiled typed accessors (``flagstream.COMPILED_ACCESSORS``; docs/sdk.md).
COMPILED_ACCESSORS: bool = _ACCEL is not None


class FlagEvaluations:
    """The evaluation API shared by the sync and the async client; subclasses set ``self._cache``.

    Nothing raises into the application: a fault gives the caller's default with an ERROR reason.
    Before the first load, an unknown flag gives ``ERROR / CLIENT_NOT_READY`` (after it, ``FLAG_NOT_FOUND``).

    ``bool_variation`` and ``string_variation`` have a fast path for the common case (a known, valid flag, a
    plain user dict with a string ``key``, no exposure hook): the flag's compiled outcome read directly
    (``CompiledFlag.const`` or ``.fast``), counted by taking the value from the outcome's counter. Anything
    else (errors, other context shapes, a value of the wrong type, exposures) takes the general path,
    ``_typed``, which gives the same answer. Where the install compiled ``flagstream._accel``, an object
    without observers has the compiled twins of these two as its own attributes (the same path in C, with the
    flag's ``plan`` evaluated there; same answers, same counters).
    """

    _cache: RulesetCache
    #: The current ruleset's ``compiled`` map (kept by the cache: see ``RulesetCache.attach``).
    _flags: Mapping[str, Any]
    #: Called with ``(flag_key, context, detail)`` after each evaluation of the general path (exposures);
    #: must be quick and never raise. While it is set, the fast accessors take the general path.
    _observe: Callable[[str, Any, EvaluationDetail], None] | None = None
    _observers: tuple[Callable[[str, Any, EvaluationDetail], None], ...] = ()
    #: This object's compiled accessors (``flagstream._accel.Accessors``), made once when first installed.
    _accessors: Any = None

    def _add_observer(self, observer: Callable[[str, Any, EvaluationDetail], None]) -> Callable[[], None]:
        """Observe every evaluation of this client object; returns a remover."""
        self._observers = (*self._observers, observer)
        self._set_observe()

        def remove() -> None:
            self._observers = tuple(o for o in self._observers if o is not observer)
            self._set_observe()

        return remove

    def _set_observe(self) -> None:
        observers = self._observers
        # With observers, every accessor takes the general path, which observes; without, the class's own.
        accessors = None
        if not observers and _ACCEL is not None:
            accessors = self._accessors
            if accessors is None:  # one for the object's life: a bound method kept by the caller stays the one
                accessors = self._accessors = _ACCEL.Accessors(self)
        for name, kind in (("bool_variation", bool), ("string_variation", str)):
            if observers:
                setattr(self, name, _general(self, kind))
            elif accessors is not None:
                setattr(self, name, getattr(accessors, name))
            else:
                # Not ``self.__dict__.pop``: reading ``__dict__`` makes CPython 3.11 keep the object's attributes
                # in a dict from then on, and every ``self._flags`` of the pure-Python accessors costs more.
                with contextlib.suppress(AttributeError):
                    delattr(self, name)
        if not observers:
            self._observe = None
        elif len(observers) == 1:
            self._observe = observers[0]
        else:

            def observe_all(key: str, context: Any, detail: EvaluationDetail) -> None:
                for observer in observers:
                    _observe_safely(observer, key, context, detail)

            self._observe = observe_all

    def variation(self, key: str, context: Any, default: Any = None) -> Any:
        return self.variation_detail(key, context, default).value

    def variation_detail(self, key: str, context: Any, default: Any = None) -> EvaluationDetail:
        return self._typed(key, context, default, None)

    def _typed(self, key: str, context: Any, default: Any, kind: type | tuple[type, ...] | None) -> EvaluationDetail:
        """Evaluate, check the value's type (``kind``; else the default with WRONG_TYPE), count and observe.

        The general path of every accessor, in one function: each call level costs ~50 ns here.
        """
        cache = self._cache
        ruleset = cache.ruleset
        try:
            detail = evaluate(ruleset.compiled, key, context, default, ruleset.seq)
        except Exception:  # evaluate() answers its own faults; this only guards the application
            log.exception("flagstream: evaluating flag %r failed; serving the default", key)
            detail = error_detail(default, ErrorKind.EXCEPTION, ruleset.seq)
        if detail.variation is None:
            error = detail.reason.error_kind
            if not cache.loaded and error is ErrorKind.FLAG_NOT_FOUND:
                detail = error_detail(default, ErrorKind.CLIENT_NOT_READY, ruleset.seq)
            elif error is ErrorKind.MALFORMED_CONTEXT:
                self._unusable_context(key, context)
        elif kind is not None:
            value = detail.value
            if not isinstance(value, kind) or (kind is _NUMBER and value.__class__ is bool):
                detail = error_detail(default, ErrorKind.WRONG_TYPE, detail.seq)
        try:
            cache.slow_counts[key, detail.variation] += 1
        except TypeError:  # an unhashable "key" from the caller: not counted
            pass
        observe = self._observe
        if observe is not None:
            try:
                observe(key, context, detail)
            except Exception:
                log.exception("flagstream: evaluation observer failed (ignored)")
        return detail

    def all_flags(self, context: Any) -> dict[str, EvaluationDetail]:
        """Every active flag evaluated for ``context``, all from one ruleset (one stream sequence), by key: to
        render a page with them, or to hand a browser app the values it cannot compute itself.

        Counted in telemetry like any evaluation; not passed to exposure hooks (nothing has been shown yet).
        Never raises: a flag that fails is an ERROR detail with the value ``None``. Empty before the first load.
        """
        cache = self._cache
        ruleset = cache.ruleset
        counts = cache.slow_counts
        out: dict[str, EvaluationDetail] = {}
        for key in sorted(ruleset.flags):
            if ruleset.flags[key].archived:
                continue
            try:
                detail = evaluate(ruleset.compiled, key, context, None, ruleset.seq)
            except Exception:
                log.exception("flagstream: evaluating flag %r failed; serving None", key)
                detail = error_detail(None, ErrorKind.EXCEPTION, ruleset.seq)
            out[key] = detail
            if detail.reason.error_kind is ErrorKind.MALFORMED_CONTEXT:
                self._unusable_context(key, context)
            counts[key, detail.variation] += 1
        return out

    #: flag key -> [monotonic time of its last warning, evaluations with an unusable context since]
    _context_log: dict[str, list[float]] | None = None

    def _unusable_context(self, key: str, context: Any) -> None:
        """Log that ``key`` was evaluated with a context the SDK cannot use: the first time for each flag, then at
        most once per ``CONTEXT_LOG_INTERVAL`` with the number of such evaluations since. Never per evaluation,
        never an attribute value (contexts hold personal data)."""
        try:
            seen = self._context_log
            if seen is None or len(seen) >= _CONTEXT_LOG_FLAGS:
                seen = self._context_log = {}
            now = _monotonic()
            entry = seen.get(key)
            if entry is not None:
                entry[1] += 1
                if now - entry[0] < CONTEXT_LOG_INTERVAL:
                    return
                since, entry[0], entry[1] = int(entry[1]), now, 0
            else:
                seen[key] = [now, 0]
                since = 0
            more = f" ({since} more evaluations with an unusable context since the last warning)" if since else ""
            log.warning(
                "flagstream: flag %r was evaluated with a context it cannot use: %s; serving the default "
                "(MALFORMED_CONTEXT). A context is {\"key\": \"...\", ...} with a string or whole-number key "
                "(docs/sdk.md). Logged once per flag every %d s%s",
                key, problem(context), int(CONTEXT_LOG_INTERVAL), more,
            )  # fmt: skip
        except Exception:  # logging must not break an evaluation
            pass

    def bool_variation(self, key: str, context: Any, default: bool) -> bool:
        try:
            flag = self._flags[key]
            # One plain user dict (see flagstream.context); any other shape takes the general path. ``__class__``
            # (what isinstance reads too) costs fewer instructions than ``type()`` in CPython 3.11.
            if context.__class__ is dict and "kind" not in context and (k := context["key"]).__class__ is str:
                b = flag.bools  # a constant flag's counter when its value is a bool
                if b is None:
                    fast = flag.fast  # None (a flag with prerequisites, or in error): TypeError below
                    b = fast(context, k).bools
                for value in b:  # counts it (see _Outcome); None, not a bool: TypeError below
                    return value
        except Exception:  # the general path below answers (and logs) whatever went wrong here
            pass
        return self._typed(key, context, default, bool).value

    def string_variation(self, key: str, context: Any, default: str) -> str:
        try:
            flag = self._flags[key]
            if context.__class__ is dict and "kind" not in context and (k := context["key"]).__class__ is str:
                b = flag.strings
                if b is None:
                    fast = flag.fast
                    b = fast(context, k).strings
                for value in b:
                    return value
        except Exception:
            pass
        return self._typed(key, context, default, str).value

    def bool_variation_detail(self, key: str, context: Any, default: bool) -> EvaluationDetail:
        return self._typed(key, context, default, bool)

    def string_variation_detail(self, key: str, context: Any, default: str) -> EvaluationDetail:
        return self._typed(key, context, default, str)

    def number_variation(self, key: str, context: Any, default: float) -> float:
        return self._typed(key, context, default, _NUMBER).value

    def number_variation_detail(self, key: str, context: Any, default: float) -> EvaluationDetail:
        return self._typed(key, context, default, _NUMBER)

    def json_variation(self, key: str, context: Any, default: Any) -> Any:
        return self._typed(key, context, default, _JSON).value

    def json_variation_detail(self, key: str, context: Any, default: Any) -> EvaluationDetail:
        return self._typed(key, context, default, _JSON)

    # -- state, for tests and diagnostics -------------------------------------------------------------------

    @property
    def ruleset(self) -> Ruleset:
        """The current snapshot (immutable)."""
        return self._cache.ruleset

    @property
    def seq(self) -> int:
        """Stream sequence of the last event applied (0 before any)."""
        return self._cache.ruleset.seq

    def state_hash(self) -> str:
        """Hash of the loaded flags and segments, comparable with the projector's for this environment."""
        return self._cache.ruleset.state_hash()

    def on_exposure(
        self, callback: ExposureCallback, sample_rate: float = 1.0, max_queue: int = 10_000
    ) -> ExposureRecorder:
        """Call ``callback(Exposure)`` for evaluations of this client (see :mod:`flagstream.exposures`).

        The callback runs on a thread of its own, after the evaluation returned: it never slows or breaks
        evaluations (a full queue of ``max_queue`` records drops new ones, counted in ``dropped``; errors are
        counted in ``callback_errors``). ``sample_rate`` (0..1) keeps a deterministic share of the
        (flag, context key) pairs. ``close()`` delivers what is queued and stops it (so does the client's).
        """
        recorder = ExposureRecorder(callback, sample_rate, max_queue)
        remove = self._add_observer(recorder.observe)
        recorder.on_close = remove
        self._exposure_recorders = (*self._exposure_recorders, recorder)
        return recorder

    _exposure_recorders: tuple[ExposureRecorder, ...] = ()

    def _close_exposures(self) -> None:
        recorders, self._exposure_recorders = self._exposure_recorders, ()
        for recorder in recorders:
            recorder.close()

    def on_change(self, flag_key: str | None, callback: ChangeListener) -> Callable[[], None]:
        """Call ``callback(key, old_flag, new_flag)`` after a change to ``flag_key`` (``None``: any flag).

        The initial load reports every flag (old ``None``); an archived flag is reported with the archived
        ``Flag`` as new; after a reload of a recreated stream, a flag that is gone has new ``None``. Segment
        changes report every flag (old and new may then be the same ``Flag``). Callbacks run on the client's
        event loop (the background thread for the sync client) and must be quick; an exception in one is
        logged, never raised. Returns a function that removes the listener.
        """
        return self._cache.on_change(flag_key, callback)
