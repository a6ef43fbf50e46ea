"""Flagstream SDK: local flag evaluation from an in-memory ruleset kept current from NATS JetStream."""

from .async_client import AsyncFlagstreamClient
from .cache import COMPILED_ACCESSORS, ClientStatus
from .client import FlagstreamClient
from .credentials import sdk_connect_options
from .evaluation import ErrorKind, EvaluationDetail, Reason, ReasonKind
from .exposures import Exposure
from .offline import FlagFileError
from .testdata import TestData

__all__ = [
    "COMPILED_ACCESSORS",
    "AsyncFlagstreamClient",
    "ClientStatus",
    "ErrorKind",
    "EvaluationDetail",
    "Exposure",
    "FlagFileError",
    "FlagstreamClient",
    "Reason",
    "ReasonKind",
    "TestData",
    "sdk_connect_options",
]
