"""Flagstream SDK: local flag evaluation from an in-memory ruleset kept current from NATS JetStream."""

from .evaluation import ErrorKind, EvaluationDetail, Reason, ReasonKind

__all__ = ["ErrorKind", "EvaluationDetail", "Reason", "ReasonKind"]
