"""Compacted snapshots of every environment (``events/snapshot.py``), kept current by the one replica holding the
writer's lease (``writer``), so an SDK client loads 10,000 flags from a few messages instead of 10,000."""

from .writer import INTERVAL, LEASE, LEASE_KEY, MAX_AGE, MIN_EVENTS, SnapshotWriter, WriterLease, running

__all__ = ["INTERVAL", "LEASE", "LEASE_KEY", "MAX_AGE", "MIN_EVENTS", "SnapshotWriter", "WriterLease", "running"]
