"""API tokens: roles and environment scopes, stored as salted hashes in a KV bucket shared by every admin replica
(``store``), and the write rate per token, also shared (``rate``). ``access`` is the ONE decision of who may
do what, for tokens and signed-in people alike.
"""

from .access import ANY, Grant, decide, highest, role_on
from .rate import RateLimiter, SharedRateLimiter
from .store import Role, TokenRecord, TokenStore, TokenView, check_name, split, view

__all__ = [
    "ANY",
    "Grant",
    "RateLimiter",
    "Role",
    "SharedRateLimiter",
    "TokenRecord",
    "TokenStore",
    "TokenView",
    "check_name",
    "decide",
    "highest",
    "role_on",
    "split",
    "view",
]
