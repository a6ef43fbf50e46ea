"""One process at a time on a data folder or a read model: an advisory ``flock`` on a lock file.

Two nats-servers on one JetStream store, or two projectors on one SQLite read model, would damage them. The
lock is held while its file stays open and released by the kernel when the process ends, however it ends
(SIGKILL included), so a crash never leaves a stale lock behind. The file holds the owner's pid, for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


def hold_lock(path: Path) -> tuple[IO[str] | None, str]:
    """An exclusive lock on ``path`` (the open file, with this pid in it; keep it open), or ``(None, the owner's
    pid)`` if another process holds it."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip()
        handle.close()
        return None, owner
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle, ""


def lock_beside(path: Path) -> Path:
    """The lock file that guards ``path`` (a read model): ``<path>.lock`` in the same folder."""
    return path.with_name(path.name + ".lock")
