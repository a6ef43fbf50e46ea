"""API tokens: roles and environment scopes, stored as salted hashes in a KV bucket shared by every admin replica
(``store``), and the write rate per token, also shared (``rate``).
"""

from .rate import RateLimiter, SharedRateLimiter
from .store import Role, TokenRecord, TokenStore, TokenView, check_name, split, view

__all__ = [
    "RateLimiter",
    "Role",
    "SharedRateLimiter",
    "TokenRecord",
    "TokenStore",
    "TokenView",
    "check_name",
    "split",
    "view",
]
