"""Domain errors of the admin service. They carry facts only; ``app.py`` maps them to HTTP in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...validation import Problem

if TYPE_CHECKING:
    from .store import Stored


class AdminError(Exception):
    """Base of every error the admin service reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequest(AdminError):
    """The request cannot be read at all: malformed JSON, a bad header, a bad key in the URL."""


class InvalidInput(AdminError):
    """The request is readable but wrong: unknown field, wrong type, failed semantic validation."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class TooLarge(AdminError):
    """The request body exceeds the size limit."""


class UnsupportedMediaType(AdminError):
    """The body is in a format this route does not take (e.g. a JSON Patch where a merge patch is expected)."""


class NotFound(AdminError):
    """The addressed entity (or its environment) does not exist."""


class Conflict(AdminError):
    """The write does not apply to the current state (stale version, already exists, archived...).

    ``current`` is filled in by the service with what is stored now, so the client can retry knowingly.
    """

    def __init__(self, message: str, current: Stored | None = None, version: int | None = None) -> None:
        super().__init__(message)
        self.current = current
        #: The current version when there is no single stored state to show (a flag across environments).
        self.version = version


class NotPermitted(AdminError):
    """The caller may not write where the change would write (an environment outside its scope)."""


class Unavailable(AdminError):
    """NATS or the stream cannot be reached."""
