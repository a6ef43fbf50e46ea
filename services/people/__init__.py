"""People: local users with Argon2id passwords, OpenID Connect sign-in (authorization code with PKCE), sessions
shared by every admin replica, lock-out after wrong passwords, and a provider's groups mapped to roles per
project and environment. The roles themselves, and the one decision of who may do what, are the tokens'
(``services/tokens``): a person and an API token are judged alike.

``service`` holds the rules (``People``); ``users`` and ``sessions`` the two KV buckets; ``oidc`` the provider
client; ``passwords`` Argon2id; ``config`` the sign-in configuration file.
"""

from .config import GroupRole, OidcConfig, PeopleConfig, group_grants, load_config
from .oidc import Identity, OidcClient, SignInFailed
from .passwords import MIN_LENGTH, password_problem
from .service import REFUSED, People, SignedIn, SignInRefused
from .sessions import LOCK_TIME, MAX_FAILURES, Session
from .users import User, UserView, user_view

__all__ = [
    "LOCK_TIME",
    "MAX_FAILURES",
    "MIN_LENGTH",
    "REFUSED",
    "GroupRole",
    "Identity",
    "OidcClient",
    "OidcConfig",
    "People",
    "PeopleConfig",
    "Session",
    "SignInFailed",
    "SignInRefused",
    "SignedIn",
    "User",
    "UserView",
    "group_grants",
    "load_config",
    "password_problem",
    "user_view",
]
