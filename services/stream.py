"""The one JetStream stream that holds every event, created (or checked) at start-up."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from ..events import STREAM
from ..events.subjects import all_subjects


def stream_config(replicas: int = 1) -> StreamConfig:
    """Append-only by construction: no delete, no purge, no age or size limit, a 2-minute dedup window."""
    return StreamConfig(
        name=STREAM,
        subjects=[all_subjects()],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        max_msgs_per_subject=-1,
        num_replicas=replicas,
        duplicate_window=120.0,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the stream if it does not exist; leave an existing one as it is."""
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(stream_config(replicas))
