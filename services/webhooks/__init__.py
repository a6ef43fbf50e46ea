"""Webhooks: each change POSTed to a URL, signed, in stream order, retried until taken. ``model`` is the pure part
(the record, the subjects a webhook reads, the body and its signature: ``verify`` checks one on your side),
``store`` keeps the records in NATS, ``delivery`` sends, ``address`` decides where it may send (public addresses,
and the receivers an operator allows).
"""

from .address import ALLOW_ENV, AddressPolicy
from .address import add_arguments as add_webhook_arguments
from .address import policy_from as webhook_policy
from .address import problem as address_problem
from .delivery import WebhookDelivery
from .model import DELIVERY_HEADER, KINDS, SIGNATURE_HEADER, WebhookRecord, WebhookView, url_problem, verify, view
from .store import DeliveryStatus, WebhookStore

__all__ = [
    "ALLOW_ENV",
    "DELIVERY_HEADER",
    "KINDS",
    "SIGNATURE_HEADER",
    "AddressPolicy",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookRecord",
    "WebhookStore",
    "WebhookView",
    "add_webhook_arguments",
    "address_problem",
    "url_problem",
    "verify",
    "view",
    "webhook_policy",
]
