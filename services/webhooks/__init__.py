"""Webhooks: each change POSTed to a URL, signed, in stream order, retried until taken. ``model`` is the pure part
(the record, the subjects a webhook reads, the body and its signature: ``verify`` checks one on your side),
``store`` keeps the records in NATS, ``delivery`` sends.
"""

from .delivery import WebhookDelivery
from .model import DELIVERY_HEADER, KINDS, SIGNATURE_HEADER, WebhookRecord, WebhookView, url_problem, verify, view
from .store import DeliveryStatus, WebhookStore

__all__ = [
    "DELIVERY_HEADER",
    "KINDS",
    "SIGNATURE_HEADER",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookRecord",
    "WebhookStore",
    "WebhookView",
    "url_problem",
    "verify",
    "view",
]
