"""Kept so code written against this path still runs: an SDK application's NATS options are
``flagstream.sdk_connect_options`` (in the SDK itself, no server extras needed); the services' NATS users and
permissions are ``flagstream.services.runtime.nats_auth``."""

from ..credentials import sdk_connect_options, sdk_user

__all__ = ["sdk_connect_options", "sdk_user"]
