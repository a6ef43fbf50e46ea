"""SDK credentials made by admins: NATS users that read one environment's flags, several per environment, each
shown once and revocable on its own (``docs/security.md``).

``model`` (pure): the record, its user name, a new password and its bcrypt hash. ``store``: the records in a KV
bucket shared by the admin replicas, the audit trail in its history.
"""

from .model import NAME_MAX, SdkCredential, SdkCredentialView, check_name, credential_user, is_id, view
from .store import BUCKET, SdkCredentialStore

__all__ = [
    "BUCKET",
    "NAME_MAX",
    "SdkCredential",
    "SdkCredentialStore",
    "SdkCredentialView",
    "check_name",
    "credential_user",
    "is_id",
    "view",
]
