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
    NotPermitted,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from .flags import DEFINITION_FIELDS, ProjectFlag, configuration_of, definition_of, served_variations
from .flags import change as change_flag
from .flags import create as create_flag_everywhere
from .flags import delete as delete_flag_everywhere
from .limits import MAX_DEPTH, MAX_ITEMS, MAX_TEXT, check_lengths, check_text
from .merge_patch import MERGE_PATCH, apply_merge_patch, merge_patch
from .service import AdminService, ListFilter, Outcome, WriteRequest
from .store import CorruptEvent, EventStore, Stored, WrongLastSequence

__all__ = [
    "DEFINITION_FIELDS",
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
    "NotPermitted",
    "Outcome",
    "ProjectFlag",
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
    "change_flag",
    "check_key",
    "check_lengths",
    "check_text",
    "configuration_of",
    "convert",
    "create_flag_everywhere",
    "definition_of",
    "delete_flag_everywhere",
    "merge_patch",
    "parse_json",
    "patch_changes",
    "require_whole",
    "served_variations",
    "whole",
    "without_comment",
]
