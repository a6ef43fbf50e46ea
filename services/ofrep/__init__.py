"""Server-side evaluation for OFREP (other languages, browsers): a pool of live in-memory rulesets, one SDK
client per environment asked for, kept current from JetStream. The HTTP routes are ``admin/ofrep.py``.
"""

from .evaluator import EvaluatorPool, NotLoaded

__all__ = ["EvaluatorPool", "NotLoaded"]
