"""An OpenFeature provider over a Flagstream client (``pip install flagstream[openfeature]``).

::

    from openfeature import api
    from flagstream import FlagstreamClient
    from flagstream.openfeature import FlagstreamProvider

    api.set_provider(FlagstreamProvider(FlagstreamClient("nats://localhost:4222", environment="production")))
    client = api.get_client()
    client.get_boolean_value("new-checkout", False, EvaluationContext("user-1", {"country": "NO"}))

Evaluations are the client's (local, no I/O). Context mapping (an ``EvaluationContext`` to a Flagstream context):

* ``EvaluationContext("user-1", {"country": "NO"})`` -> the ``user`` context ``{"key": "user-1", "country": "NO"}``;
* an attribute ``kind`` names another single kind: ``EvaluationContext("org-1", {"kind": "organization"})``;
* ``kind: "multi"`` makes a multi-kind context: every other attribute whose value is a mapping is one member
  (its kind is the attribute name, it needs a ``key``); the targeting key and the remaining plain attributes
  form the ``user`` member. A nested mapping without ``kind: "multi"`` is an ordinary (object) attribute.
* ``datetime`` values become ISO-8601 strings (what the ``before``/``after`` operators compare);
* no targeting key (and no ``key`` attribute) means no context: flags still serve (off value, fallthrough)
  but no rule, target or rollout can match, so attributes alone are ignored. This keeps API-level contexts
  without a key (``{"service": "checkout"}``) from turning every evaluation into an error.
  In a multi-kind context, plain attributes without a targeting key are ignored the same way.

Reasons: OFF -> DISABLED, TARGET_MATCH -> TARGETING_MATCH, RULE_MATCH -> TARGETING_MATCH (SPLIT when served by
a rollout), FALLTHROUGH -> DEFAULT (SPLIT when a rollout), PREREQUISITE_FAILED -> ``"PREREQUISITE_FAILED"``
(a custom reason: the off value is served), ERROR -> ERROR with an error code. The variant is the variation
key; ``flag_metadata`` holds ``seq`` (the ruleset's stream sequence) and, when relevant, ``rule_id``,
``rule_index`` and ``prerequisite``.

Events: READY once the client is ready (after a failed bounded ``initialize``, too, as soon as it is),
CONFIGURATION_CHANGED with ``flags_changed`` after each applied change, STALE while disconnected, ERROR while the
client cannot load (``last_error`` as the message), READY again on recovery. Emitted from the client's thread;
the OpenFeature SDK runs handlers on its own executor.

Lifecycle: ``initialize`` starts a ``FlagstreamClient`` and waits up to ``init_timeout`` seconds for its first
load (raising ``ProviderNotReadyError`` after that: OpenFeature reports ERROR, then READY when it loads);
``shutdown`` closes it. An ``AsyncFlagstreamClient`` can be given too: start and close it yourself (OpenFeature's
lifecycle calls are synchronous, on other threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from .async_client import AsyncFlagstreamClient
from .cache import ClientStatus
from .client import FlagstreamClient
from .evaluation import ErrorKind, EvaluationDetail, ReasonKind, error_detail, rule_metadata
from .ruleset import Ruleset

_ERROR_CODES = {
    ErrorKind.FLAG_NOT_FOUND: ErrorCode.FLAG_NOT_FOUND,
    ErrorKind.WRONG_TYPE: ErrorCode.TYPE_MISMATCH,
    ErrorKind.MALFORMED_FLAG: ErrorCode.PARSE_ERROR,
    ErrorKind.MALFORMED_CONTEXT: ErrorCode.INVALID_CONTEXT,
    ErrorKind.CLIENT_NOT_READY: ErrorCode.PROVIDER_NOT_READY,
    ErrorKind.EXCEPTION: ErrorCode.GENERAL,
}

#: The custom OpenFeature reason for a failed prerequisite (OpenFeature has no standard one).
PREREQUISITE_FAILED = "PREREQUISITE_FAILED"


def _reason(detail: EvaluationDetail) -> str:
    reason = detail.reason
    kind = reason.kind
    if kind is ReasonKind.OFF:
        return Reason.DISABLED
    if kind is ReasonKind.TARGET_MATCH:
        return Reason.TARGETING_MATCH
    if kind is ReasonKind.RULE_MATCH:
        return Reason.SPLIT if reason.in_rollout else Reason.TARGETING_MATCH
    if kind is ReasonKind.FALLTHROUGH:
        return Reason.SPLIT if reason.in_rollout else Reason.DEFAULT
    if kind is ReasonKind.PREREQUISITE_FAILED:
        return PREREQUISITE_FAILED
    return Reason.ERROR


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_flagstream_context(context: EvaluationContext | None) -> dict[str, Any] | None:
    """The Flagstream context for an OpenFeature evaluation context (see the module's mapping rules)."""
    if context is None:
        return None
    key = context.targeting_key
    attributes = context.attributes
    if not attributes:
        return None if key is None else {"key": key}
    if attributes.get("kind") != "multi":
        if key is None and "key" not in attributes:
            return None  # no targeting key: evaluated without a context (see the module docstring)
        out = dict(attributes)
        for name, value in out.items():
            if type(value) not in _SCALARS:
                out[name] = _plain(value)
        if key is not None:
            out["key"] = key
        return out
    multi: dict[str, Any] = {"kind": "multi"}
    user: dict[str, Any] = {}
    for name, value in attributes.items():
        if name == "kind":
            continue
        if isinstance(value, Mapping):
            multi[name] = _plain(value)
        else:
            user[name] = _plain(value)
    if key is not None:
        member = dict(multi.get("user") or {})
        member.update(user)
        if key is not None:
            member["key"] = key
        multi["user"] = member
    return multi


def _resolution(detail: EvaluationDetail, value: Any = None) -> FlagResolutionDetails[Any]:
    reason = detail.reason
    metadata: dict[str, bool | int | float | str] = {"seq": detail.seq, **rule_metadata(reason)}
    error_code = None
    message = None
    if reason.kind is ReasonKind.ERROR:
        kind = reason.error_kind or ErrorKind.EXCEPTION
        error_code = _ERROR_CODES.get(kind, ErrorCode.GENERAL)
        message = f"flagstream: {kind.value}"
    return FlagResolutionDetails(
        value=detail.value if value is None else value,
        error_code=error_code,
        error_message=message,
        reason=_reason(detail),
        variant=detail.variation,
        flag_metadata=MappingProxyType(metadata),
    )


class _Resolutions:
    """The resolution of an ``EvaluationDetail``, remembered by identity: the engine hands out the same detail
    object for the same outcome at the same ruleset sequence, so the hot path builds nothing."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._by_id: dict[int, tuple[EvaluationDetail, FlagResolutionDetails[Any]]] = {}

    def of(self, detail: EvaluationDetail) -> FlagResolutionDetails[Any]:
        entry = self._by_id.get(id(detail))
        if entry is not None and entry[0] is detail:
            return entry[1]
        resolution = _resolution(detail)
        if len(self._by_id) >= self._limit:
            self._by_id = {}
        self._by_id[id(detail)] = (detail, resolution)
        return resolution


class FlagstreamProvider(AbstractProvider):
    """OpenFeature provider for a ``FlagstreamClient`` (or an ``AsyncFlagstreamClient`` started by the app)."""

    def __init__(self, client: FlagstreamClient | AsyncFlagstreamClient, *, init_timeout: float = 10.0) -> None:
        super().__init__()
        self.client = client
        self.init_timeout = init_timeout
        self._lock = threading.Lock()
        self._initialized = False  # initialize() returned (or raised): events are ours to emit from then on
        self._removers: list[Callable[[], None]] = []
        self._resolutions = _Resolutions()

    def get_metadata(self) -> Metadata:
        return Metadata(name="flagstream")

    # -- lifecycle ------------------------------------------------------------------------------------------

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        client = self.client
        with self._lock:
            self._initialized = False
            if not self._removers:
                self._removers = [
                    client.on_status_change(self._status_changed),
                    client._cache.add_applied_hook(self._applied),
                ]
        inner = client._client if isinstance(client, FlagstreamClient) else client
        ready = threading.Event()
        inner._add_ready_hook(ready.set)
        if isinstance(client, FlagstreamClient):
            client.start()
        ready.wait(self.init_timeout)
        with self._lock:
            self._initialized = True
            if client.is_ready:
                return  # OpenFeature emits READY
        raise ProviderNotReadyError(
            f"flagstream: not loaded after {self.init_timeout}s ({client.status}, last error: {client.last_error!r})"
        )

    def shutdown(self) -> None:
        with self._lock:
            removers, self._removers = self._removers, []
            self._initialized = False
        for remove in removers:
            remove()
        if isinstance(self.client, FlagstreamClient):
            self.client.close()

    def _status_changed(self, status: ClientStatus) -> None:
        with self._lock:
            if not self._initialized:
                return
            if status is ClientStatus.READY:
                self.emit_provider_ready(ProviderEventDetails())
            elif status is ClientStatus.STALE:
                self.emit_provider_stale(ProviderEventDetails(message="flagstream: disconnected, serving known flags"))
            elif status is ClientStatus.ERROR:
                self.emit_provider_error(
                    ProviderEventDetails(
                        message=f"flagstream: {self.client.last_error!r}", error_code=ErrorCode.GENERAL
                    )
                )

    def _applied(self, changed: set[str], ruleset: Ruleset) -> None:
        if not changed:
            return
        with self._lock:
            if not self._initialized or not self.client.is_ready:
                return
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=sorted(changed), metadata={"seq": ruleset.seq})
            )

    # -- evaluation -----------------------------------------------------------------------------------------

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        context = to_flagstream_context(evaluation_context)
        return self._resolutions.of(self.client.bool_variation_detail(flag_key, context, default_value))

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        context = to_flagstream_context(evaluation_context)
        return self._resolutions.of(self.client.string_variation_detail(flag_key, context, default_value))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        context = to_flagstream_context(evaluation_context)
        detail = self.client.number_variation_detail(flag_key, context, default_value)
        value = detail.value
        if detail.variation is not None and not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                return _resolution(error_detail(default_value, ErrorKind.WRONG_TYPE, detail.seq))
            return _resolution(detail, int(value))
        return self._resolutions.of(detail)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        context = to_flagstream_context(evaluation_context)
        detail = self.client.number_variation_detail(flag_key, context, default_value)
        if detail.variation is not None and isinstance(detail.value, int):
            return _resolution(detail, float(detail.value))
        return self._resolutions.of(detail)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        context = to_flagstream_context(evaluation_context)
        return self._resolutions.of(self.client.json_variation_detail(flag_key, context, default_value))
