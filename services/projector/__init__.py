"""The projector: a durable JetStream consumer folding the event log into a SQLite read model.

``projection`` is the pure part (messages -> rows), ``readmodel`` the SQLite schema and queries,
``projector`` the NATS edge, ``main`` the ``flagstream projector`` command.
"""

from .projector import Projector
from .readmodel import EntityRecord, EventRecord, ReadModel

__all__ = ["EntityRecord", "EventRecord", "Projector", "ReadModel"]
