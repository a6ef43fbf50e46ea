"""Client-side keys: public keys, per environment, that let browsers and mobile apps evaluate the flags marked
available to client-side apps (and nothing else) through OFREP, from the web pages' origins they name.

``model`` (pure): the record, the key's shape, origins, what a key may see. ``store``: the records in a KV
bucket shared by the admin replicas. ``view``: a ruleset as a key's holder sees it, and the request limits.
"""

from .model import ORIGINS_MAX, ClientKey, check_name, check_origin, check_origins, depends_on, is_key, visible
from .store import ClientKeyStore, StoreUnavailable
from .view import ClientLimits, ClientView, ClientViews

__all__ = [
    "ORIGINS_MAX",
    "ClientKey",
    "ClientKeyStore",
    "ClientLimits",
    "ClientView",
    "ClientViews",
    "StoreUnavailable",
    "check_name",
    "check_origin",
    "check_origins",
    "depends_on",
    "is_key",
    "visible",
]
