"""Server-side evaluation for OFREP (other languages, browsers): a pool of live in-memory rulesets, one SDK
client per environment asked for, kept current from JetStream, and private context attributes. The HTTP routes
are ``admin/ofrep.py``.
"""

from .evaluator import EvaluatorPool, NotLoaded
from .privacy import PRIVATE, REDACTED, PrivateAttributesError, redacted, split

__all__ = ["PRIVATE", "REDACTED", "EvaluatorPool", "NotLoaded", "PrivateAttributesError", "redacted", "split"]
