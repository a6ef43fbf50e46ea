"""The one JetStream stream that holds every event, created (or checked) at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RePublish, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from ...events import STREAM
from ...events.subjects import all_live_subjects, all_subjects
from ...events.tracking import metrics_filter

log = logging.getLogger("flagstream.stream")

T = TypeVar("T")

#: What JetStream answers (or fails to) while a cluster is still electing its leaders: worth another try.
SETTLING = (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError)
#: JetStream API errors of a cluster whose peers are not all known yet: "no suitable peers for placement"
#: (10005), "insufficient resources" (10023), "JetStream cluster not available" (10008).
SETTLING_CODES = frozenset({10005, 10008, 10023})


async def while_jetstream_settles(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    wait: float,
    failure: Callable[[str], Exception] = TimeoutError,
) -> T:
    """``attempt()``, tried again for up to ``wait`` seconds while JetStream times out or is unavailable (a
    cluster that has just started, or is electing a leader); then raises ``failure(message naming what)``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.25
    while True:
        try:
            return await attempt()
        except (*SETTLING, APIError) as exc:
            if isinstance(exc, APIError) and not isinstance(exc, SETTLING) and exc.err_code not in SETTLING_CODES:
                raise
            if loop.time() + delay > deadline:
                raise failure(f"JetStream did not answer for {what} within {wait:g}s ({exc!r})") from None
            log.warning("JetStream not answering for %s yet (%r); trying again in %.2fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


#: The KV buckets the services keep beside the stream (their NATS permissions are granted in ``nats_auth.py``).
TOKENS_BUCKET = "flagstream_tokens"  # API tokens (``services/tokens``)
RATE_BUCKET = "flagstream_ratelimit"  # the write rate per API token, shared by the admin replicas
WEBHOOKS_BUCKET = "flagstream_webhooks"  # webhook records and their delivery status (``services/webhooks``)
FLEET_BUCKET = "flagstream_fleet"  # last-evaluated times of the fleet view (``services/fleet``)
CLIENT_KEYS_BUCKET = "flagstream_clientkeys"  # client-side keys for browsers and apps (``services/clientkeys``)
USERS_BUCKET = "flagstream_users"  # people: local users, and those signed in via OpenID Connect (``services/people``)
SESSIONS_BUCKET = "flagstream_sessions"  # sign-in sessions, sign-in attempts in flight, failed-password counts
SDK_CREDENTIALS_BUCKET = "flagstream_sdkcredentials"  # SDK credentials made by admins (``services/sdkcredentials``)
RELEASE_BUCKET = "flagstream_release"  # release plans' leases and watches, the metric names seen (``services/release``)

#: Consumers the stream accepts. Every SDK instance follows its environment with one ordered consumer, and
#: nats-server (2.15) refuses the 1,001st consumer of a stream whose limit is left unset.
MAX_CONSUMERS = 1_000_000


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
        max_consumers=MAX_CONSUMERS,
        allow_rollup_hdrs=False,
        allow_direct=True,
        # One change to many entities (a flag in every environment, a promotion) is one atomic batch.
        allow_atomic=True,
        republish=live_republish(),
    )


def live_republish() -> RePublish:
    """Every stored event again on ``flagstream-live.<same tokens>``, with its stream sequence in the headers: the
    subjects SDK clients follow with a plain subscription once loaded (``flagstream.nats_source``)."""
    return RePublish(src=all_subjects(), dest=all_live_subjects())


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the stream if it does not exist; an existing one keeps its configuration, except what a stream made
    by an older Flagstream lacks: a consumer limit below ``MAX_CONSUMERS`` is raised, atomic batches allowed (one
    change to many entities), the live republishing added (SDK clients follow with a consumer until it is there)."""
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(stream_config(replicas))
        return
    config = info.config
    limit = config.max_consumers
    changes: dict[str, object] = {}
    if limit is None or limit < MAX_CONSUMERS:
        changes["max_consumers"] = MAX_CONSUMERS
    if not config.allow_atomic:
        changes["allow_atomic"] = True
    if config.republish is None and config.mirror is None:
        changes["republish"] = live_republish()
    if changes:
        try:
            await js.update_stream(replace(config, **changes))  # type: ignore[arg-type]
        except Exception as exc:  # e.g. a credential without the right to update streams
            log.warning(
                "stream %s (made by an older Flagstream): updating %s failed; run `flagstream stream` with the "
                "operator's credentials (%r)", STREAM, ", ".join(changes), exc,
            )  # fmt: skip


#: What SDK clients report of ``track()`` (``events/tracking.py``): kept for release plans and experiment results,
#: limited in age and size (oldest dropped first), never part of the append-only event log.
METRICS_STREAM = "FLAGSTREAM_METRICS"
#: Defaults: a day, 1 GiB. A release step's data is read again from this stream when a replica takes a plan over.
METRICS_MAX_AGE = 24 * 3600.0
METRICS_MAX_BYTES = 1 << 30


def metrics_stream_config(
    replicas: int = 1, max_age: float = METRICS_MAX_AGE, max_bytes: int = METRICS_MAX_BYTES
) -> StreamConfig:
    """The metrics stream: limits-based, oldest first out, a 2-minute window in which a resent message (same
    ``Nats-Msg-Id``) is stored once."""
    return StreamConfig(
        name=METRICS_STREAM,
        subjects=[metrics_filter()],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs=-1,
        max_bytes=max_bytes,
        max_age=max_age,
        num_replicas=replicas,
        duplicate_window=120.0,
        max_consumers=-1,
        allow_direct=True,
    )


async def ensure_metrics_stream(js: JetStreamContext, replicas: int | None = None) -> None:
    """Create the metrics stream if it does not exist (as many replicas as the event stream, unless given)."""
    try:
        await js.stream_info(METRICS_STREAM)
    except NotFoundError:
        if replicas is None:
            replicas = (await js.stream_info(STREAM)).config.num_replicas or 1
        await js.add_stream(metrics_stream_config(replicas))


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    history: int = 1,
    ttl: float | None = None,
    description: str | None = None,
    settle: float = 30.0,
    direct: bool = False,
) -> KeyValue:
    """The KV bucket ``bucket``, created if missing (file storage, as many replicas as the event stream: as
    available as the events it serves; ``direct``: its last message per key readable with JetStream's direct get,
    whose API subject names the key, so a permission can be limited to some keys). Tried again for up to
    ``settle`` seconds while JetStream times out or is unavailable (a cluster electing its leaders, a loaded
    machine), as the event stream's set-up is: a service starting then waits rather than exits."""

    async def attempt() -> KeyValue:
        try:
            return await js.key_value(bucket)
        except (BucketNotFoundError, NotFoundError):
            replicas = (await js.stream_info(STREAM)).config.num_replicas or 1
            config = KeyValueConfig(
                bucket=bucket, history=history, ttl=ttl, storage=StorageType.FILE, replicas=replicas,
                description=description, direct=direct or None,
            )  # fmt: skip
            return await js.create_key_value(config)

    return await while_jetstream_settles(f"the {bucket} bucket", attempt, settle)
