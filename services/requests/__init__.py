"""Change requests: four eyes on an environment's changes, without slowing the kill switch.

An environment may ask for approvals (``Environment.approvals``, ``approvers``). Every change to it then becomes a
change request (``events.catalog.ChangeRequest``): the writes as the admin API takes them, what they change and
from which versions, reviewed, approved by others, and applied as one atomic batch with the request's
``request.applied`` event. ``rules`` holds the rules (pure), ``service`` the requests on the event stream, the
guard every append passes (``EventStore.guard``) and the runner of requests scheduled to apply at a time.
"""

from .rules import (
    DEFAULT_APPROVERS,
    MAX_CALLS,
    MAX_REQUEST_BYTES,
    ApprovalRequired,
    Person,
    describe,
    may_approve,
    missing,
    same,
)
from .service import (
    SCHEDULER,
    Executor,
    RequestRunner,
    RequestService,
    kill_switch,
    new_id,
    release_plan,
    request_subject,
    requests_filter,
    running,
)

__all__ = [
    "DEFAULT_APPROVERS",
    "MAX_CALLS",
    "MAX_REQUEST_BYTES",
    "SCHEDULER",
    "ApprovalRequired",
    "Executor",
    "Person",
    "RequestRunner",
    "RequestService",
    "describe",
    "kill_switch",
    "may_approve",
    "missing",
    "new_id",
    "release_plan",
    "request_subject",
    "requests_filter",
    "running",
    "same",
]
