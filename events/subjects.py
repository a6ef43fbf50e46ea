"""The subject scheme and stream name: ``flagstream.<project>.<environment>.<kind>.<key>``."""

from __future__ import annotations

import enum
from typing import NamedTuple

STREAM = "FLAGSTREAM"
PREFIX = "flagstream"
DEFAULT_PROJECT = "default"


class EntityKind(enum.StrEnum):
    FLAG = "flag"
    SEGMENT = "segment"
    ENVIRONMENT = "environment"
    SCHEDULE = "schedule"
    PLAN = "plan"


class Address(NamedTuple):
    project: str
    environment: str
    kind: EntityKind
    key: str

    @property
    def subject(self) -> str:
        return subject(self.project, self.environment, self.kind, self.key)


def subject(project: str, environment: str, kind: EntityKind | str, key: str) -> str:
    """The subject of one entity. For an environment, ``environment`` and ``key`` are both its key."""
    return f"{PREFIX}.{project}.{environment}.{kind}.{key}"


def environment_filter(project: str, environment: str) -> str:
    """Everything of one environment: what an SDK subscribes to."""
    return f"{PREFIX}.{project}.{environment}.>"


def all_subjects() -> str:
    return f"{PREFIX}.>"


#: The stream republishes every event it stores (with its stream sequence in the ``Nats-Sequence`` header) on
#: ``flagstream-live.<project>.<environment>.<kind>.<key>``: what SDK clients follow with a plain subscription
#: once loaded, so a following client costs nats-server one subscription, not one consumer.
LIVE_PREFIX = "flagstream-live"


def live_filter(project: str, environment: str) -> str:
    """The republished events of one environment: what a loaded SDK client subscribes to."""
    return f"{LIVE_PREFIX}.{project}.{environment}.>"


def all_live_subjects() -> str:
    return f"{LIVE_PREFIX}.>"


def sdk_inbox_prefix(project: str, environment: str) -> str:
    """The reply-inbox prefix of an SDK client of one environment. NATS permissions confine an SDK credential
    to it, so replies and deliveries meant for anyone else are out of its reach; the SDK uses it by default."""
    return f"_INBOX_{project}_{environment}"


def parse_subject(value: str) -> Address:
    """Split a subject into its address; ``ValueError`` if it is not one of ours."""
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != PREFIX:
        raise ValueError(f"not a flagstream subject: {value!r}")
    return Address(parts[1], parts[2], EntityKind(parts[3]), parts[4])
