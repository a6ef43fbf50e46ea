"""How a change is checked, decided and appended: the write path shared by the admin API, the scheduler, flags
as code and anything else that changes flags, segments or environments.

``commands`` reads request bodies into domain values (JSON paths in errors), ``decide`` turns a command and the
entity's current state into one event (pure), ``service.AdminService`` reads the current version, decides and
appends with optimistic concurrency, ``store.EventStore`` is the JetStream side, ``errors`` the domain errors
(mapped to HTTP only by the admin app), ``limits`` the list-length and depth limits of a change,
``merge_patch`` partial updates (JSON Merge Patch, RFC 7386) applied to the current state and read as a whole.
"""

from .commands import (
    ActionBody,
    EnvironmentBody,
    EnvironmentPatch,
    FlagBody,
    FlagPatch,
    FlagReplace,
    SegmentBody,
    SegmentPatch,
    SegmentReplace,
    check_key,
    convert,
    parse_json,
    patch_changes,
    require_whole,
    whole,
    without_comment,
)
from .decide import ENVIRONMENT, FLAG, SEGMENT, Kind
from .errors import (
    AdminError,
    Conflict,
    InvalidInput,
    MalformedRequest,
    NotFound,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from .limits import MAX_DEPTH, MAX_ITEMS, MAX_TEXT, check_lengths, check_text
from .merge_patch import MERGE_PATCH, apply_merge_patch, merge_patch
from .service import AdminService, ListFilter, Outcome, WriteRequest
from .store import CorruptEvent, EventStore, Stored, WrongLastSequence

__all__ = [
    "ENVIRONMENT",
    "FLAG",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "MERGE_PATCH",
    "SEGMENT",
    "ActionBody",
    "AdminError",
    "AdminService",
    "Conflict",
    "CorruptEvent",
    "EnvironmentBody",
    "EnvironmentPatch",
    "EventStore",
    "FlagBody",
    "FlagPatch",
    "FlagReplace",
    "InvalidInput",
    "Kind",
    "ListFilter",
    "MalformedRequest",
    "NotFound",
    "Outcome",
    "SegmentBody",
    "SegmentPatch",
    "SegmentReplace",
    "Stored",
    "TooLarge",
    "Unavailable",
    "UnsupportedMediaType",
    "WriteRequest",
    "WrongLastSequence",
    "apply_merge_patch",
    "check_key",
    "check_lengths",
    "check_text",
    "convert",
    "merge_patch",
    "parse_json",
    "patch_changes",
    "require_whole",
    "whole",
    "without_comment",
]
