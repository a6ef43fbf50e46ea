"""Where history is answered from: a read model (the projector's SQLite schema) and how far it has applied the log.

Two shapes, one query path:

* **shared** (``HistorySource(path)``): a read model that another part of the same deployment folds, e.g. the
  projector that ``flagstream up`` runs in its own process beside the admin API;
* **own** (``HistorySource.folding(path, nats_url=...)``): this process folds the event log into ``path`` itself,
  with a durable consumer of its own (``flagstream admin --history-db PATH``). Every admin replica of the
  production topology then answers history with no other process involved: the projector may be killed, or its
  file deleted, and the replicas still answer from the log as they folded it.

Either way a question is answered only once the read model has applied the log as of the moment it was asked
(``applied(last_seq)``): an answer through one replica includes every write acknowledged before the question, through
whichever replica it went. A read model that cannot get there within ``wait`` seconds (still folding a long log
after a first start, or its folder gone) gives ``Unavailable`` naming how far it is, never a stale answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
from pathlib import Path
from typing import Any

from ..changes import Unavailable
from ..projector import Projector, ReadModel
from ..runtime import end_within

log = logging.getLogger("flagstream.history")

#: Seconds a history question waits for the read model to apply the log as of the question.
WAIT = 10.0
#: Seconds a replica's durable consumer outlives the replica (the server then deletes it; a replica that comes back
#: later makes a new one at its file's position).
INACTIVE = 3600.0
#: The command-line option that gives an admin replica a read model of its own.
OPTION = "--history-db"


def durable_name(path: Path, host: str | None = None) -> str:
    """The durable consumer of the replica folding into ``path`` on this host: distinct per host and file (two
    replicas must never share one), stable across restarts (a restart resumes where the file stands)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", host or socket.gethostname())[:40] or "host"
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:10]
    return f"history-{host}-{digest}"


class HistorySource:
    """A read model for history questions. ``await start()`` (begins folding, for an own read model), then
    ``await applied(seq)`` per question, ``await close()`` at the end."""

    def __init__(self, path: Path, *, fold: Projector | None = None, wait: float = WAIT) -> None:
        self.path = Path(path)
        self.fold = fold
        self.wait = wait
        self._model: ReadModel | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def folding(
        cls,
        path: Path,
        *,
        nats_url: str,
        connect_options: dict[str, Any] | None = None,
        durable: str | None = None,
        wait: float = WAIT,
    ) -> HistorySource:
        """A read model of this process's own at ``path``, folded from the log at ``nats_url``."""
        projector = Projector(
            nats_url=nats_url,
            db_path=Path(path),
            durable=durable or durable_name(Path(path)),
            inactive_threshold=INACTIVE,
            connect_options=connect_options,
        )
        return cls(path, fold=projector, wait=wait)

    @property
    def own(self) -> bool:
        """Whether this process folds the read model itself."""
        return self.fold is not None

    async def start(self) -> None:
        if self.fold is not None and self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self.fold.run(self._stop), name="history-fold")
            log.info("history: folding the event log into %s (consumer %r)", self.path, self.fold.durable)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            await end_within(task, "history: the fold", grace=30, log=log)  # not wait_for(task, 30): see there
        if self._model is not None:
            await self._model.close()
            self._model = None

    async def model(self) -> ReadModel:
        """The read model, opened read-only once; ``Unavailable`` naming the file while there is none."""
        if self._model is not None:
            return self._model
        async with self._lock:
            if self._model is None:
                if not await asyncio.to_thread(self.path.exists):
                    who = "this admin's fold" if self.own else "the projector"
                    raise Unavailable(f"the read model {self.path} does not exist yet: is {who} running?")
                try:
                    self._model = await ReadModel.open(self.path, readonly=True)
                except Exception as exc:
                    raise Unavailable(f"cannot open the read model {self.path}: {exc}") from None
        return self._model

    async def applied(self, seq: int) -> ReadModel:
        """The read model once it has applied stream sequence ``seq`` (the log's last one when the question was
        asked). ``Unavailable`` after ``wait`` seconds, saying how far it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        delay = 0.002
        while True:
            try:
                model = await self.model()
                position = await model.last_seq()
            except Unavailable:
                if loop.time() >= deadline:
                    raise
                position = -1
            except Exception:  # the file exists, its schema not yet (the fold has just created it)
                position = -1
            else:
                if position >= seq:
                    return model
            if self._task is not None and self._task.done():
                raise Unavailable(f"history stopped folding the event log: {self._task.exception()!r}")
            if loop.time() >= deadline:
                who = "this admin's read model" if self.own else "the projector's read model"
                raise Unavailable(
                    f"history is not caught up: {who} {self.path} has applied the event log up to sequence "
                    f"{position} of {seq} (still folding?); try again shortly"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
