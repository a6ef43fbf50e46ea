"""What an evaluation returns: value, variation, reason, and the ruleset sequence it was evaluated against."""

from __future__ import annotations

import enum
from typing import Any

from msgspec import Struct


class ReasonKind(enum.StrEnum):
    OFF = "OFF"
    TARGET_MATCH = "TARGET_MATCH"
    RULE_MATCH = "RULE_MATCH"
    PREREQUISITE_FAILED = "PREREQUISITE_FAILED"
    FALLTHROUGH = "FALLTHROUGH"
    ERROR = "ERROR"


class ErrorKind(enum.StrEnum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    WRONG_TYPE = "WRONG_TYPE"
    MALFORMED_FLAG = "MALFORMED_FLAG"
    MALFORMED_CONTEXT = "MALFORMED_CONTEXT"
    CLIENT_NOT_READY = "CLIENT_NOT_READY"
    EXCEPTION = "EXCEPTION"


class Reason(Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: ReasonKind
    rule_index: int | None = None
    rule_id: str | None = None
    prerequisite_key: str | None = None
    error_kind: ErrorKind | None = None
    #: True when the served variation came from a rollout (a percentage split).
    in_rollout: bool = False


def rule_metadata(reason: Reason) -> dict[str, int | str]:
    """What decided the answer, as flat flag metadata (OpenFeature provider, OFREP): ``rule_id``,
    ``rule_index`` and ``prerequisite`` (the key of a failed prerequisite), those that are set."""
    out: dict[str, int | str] = {}
    if reason.rule_id is not None:
        out["rule_id"] = reason.rule_id
    if reason.rule_index is not None:
        out["rule_index"] = reason.rule_index
    if reason.prerequisite_key is not None:
        out["prerequisite"] = reason.prerequisite_key
    return out


class EvaluationDetail(Struct, frozen=True, kw_only=True):
    value: Any
    variation: str | None
    reason: Reason
    #: Stream sequence of the ruleset the evaluation used (0 before any event was applied).
    seq: int = 0


def error_detail(default: Any, kind: ErrorKind, seq: int = 0) -> EvaluationDetail:
    return EvaluationDetail(
        value=default, variation=None, reason=Reason(kind=ReasonKind.ERROR, error_kind=kind), seq=seq
    )
