"""What a Flagstream process runs on: the nats-server it may embed (``natsd``), the NATS users and permissions of
each role (``nats_auth``), the event stream and the KV buckets (``stream``), the data folder's lock
(``filelock``), listening sockets (``listen``), logging (``logs``), Prometheus metrics (``metrics``) and small
asyncio helpers (``aio``). ``up`` is the composition root of the embedded default (``flagstream up``): the one
module here that may import every other package, and so it is not imported by this ``__init__``.
"""

from .aio import BackgroundRunner, cancel_and_wait, dump_on_signal, first_done, in_background, run_passes, task_dump
from .filelock import hold_lock, lock_beside
from .listen import listening_socket
from .logs import add_log_arguments, configure
from .metrics import AdminMetrics, ProjectorMetrics, exposition, serve
from .nats_auth import (
    ADMIN,
    OPERATOR,
    PROJECTOR,
    Credentials,
    HashedUser,
    ServerTls,
    add_nats_arguments,
    authorization_block,
    hash_password,
    nats_options,
    redact_logs,
    tls_block,
    with_credentials,
    write_private,
    write_server_config,
)
from .natsd import NatsCluster, NatsServer, free_port
from .records import Revocable, RevocableRecords
from .stream import (
    CLIENT_KEYS_BUCKET,
    FLEET_BUCKET,
    MAX_CONSUMERS,
    METRICS_STREAM,
    RATE_BUCKET,
    RELEASE_BUCKET,
    SDK_CREDENTIALS_BUCKET,
    SESSIONS_BUCKET,
    TOKENS_BUCKET,
    USERS_BUCKET,
    WEBHOOKS_BUCKET,
    ensure_bucket,
    ensure_metrics_stream,
    ensure_stream,
    metrics_stream_config,
    stream_config,
    while_jetstream_settles,
)

__all__ = [
    "ADMIN",
    "CLIENT_KEYS_BUCKET",
    "FLEET_BUCKET",
    "MAX_CONSUMERS",
    "METRICS_STREAM",
    "OPERATOR",
    "PROJECTOR",
    "RATE_BUCKET",
    "RELEASE_BUCKET",
    "SDK_CREDENTIALS_BUCKET",
    "SESSIONS_BUCKET",
    "TOKENS_BUCKET",
    "USERS_BUCKET",
    "WEBHOOKS_BUCKET",
    "AdminMetrics",
    "BackgroundRunner",
    "Credentials",
    "HashedUser",
    "NatsCluster",
    "NatsServer",
    "ProjectorMetrics",
    "Revocable",
    "RevocableRecords",
    "ServerTls",
    "add_log_arguments",
    "add_nats_arguments",
    "authorization_block",
    "cancel_and_wait",
    "configure",
    "dump_on_signal",
    "ensure_bucket",
    "ensure_metrics_stream",
    "ensure_stream",
    "exposition",
    "first_done",
    "free_port",
    "hash_password",
    "hold_lock",
    "in_background",
    "listening_socket",
    "lock_beside",
    "metrics_stream_config",
    "nats_options",
    "redact_logs",
    "run_passes",
    "serve",
    "stream_config",
    "task_dump",
    "tls_block",
    "while_jetstream_settles",
    "with_credentials",
    "write_private",
    "write_server_config",
]
