"""``flagstream projector --rebuild`` (also ``flagstream rebuild``): fold the whole stream from sequence 1 into
a fresh read model beside the live one, print the position and state hash of both, and swap the new one in
atomically if they agree (or the old one was behind). The caller holds the read model's lock, so no projector
writes to it meanwhile; a projector started later repositions its durable consumer from the new file.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from .projector import Projector
from .readmodel import ReadModel, rebuild_path, remove_database, seal, swap_in


async def rebuild(nats_url: str, db: Path, limit: float, connect_options: dict[str, Any] | None = None) -> int:
    """0 when the rebuilt read model is in place; 1 (``db`` left as it was) when it could not catch up within
    ``limit`` seconds or differs from the old one at the same sequence."""
    before: tuple[int, str] | None = None
    if await asyncio.to_thread(db.exists):
        async with await ReadModel.open(db, readonly=True) as model:
            before = (await model.last_seq(), await model.state_hash_all())
        print(f"before:  sequence {before[0]}, state hash {before[1]}", flush=True)
    fresh = rebuild_path(db)
    remove_database(fresh)
    # A throw-away durable of its own, from sequence 1 (the fresh file's position is 0).
    projector = Projector(
        nats_url=nats_url,
        db_path=fresh,
        durable=f"projector-rebuild-{os.getpid()}",
        inactive_threshold=60,
        connect_options=connect_options,
    )
    if not await projector.catch_up(limit):
        print(f"flagstream rebuild: not caught up after {limit:g}s; {db} left as it was", file=sys.stderr)
        return 1
    async with await ReadModel.open(fresh, readonly=True) as model:
        after = (await model.last_seq(), await model.state_hash_all())
    print(f"after:   sequence {after[0]}, state hash {after[1]}", flush=True)
    if before is not None and before[0] == after[0] and before[1] != after[1]:
        print(f"flagstream rebuild: the rebuilt state differs at the same sequence; {db} kept, the rebuild is in "
              f"{fresh}", file=sys.stderr)  # fmt: skip
        return 1
    await seal(fresh)
    swap_in(fresh, db)
    if before is None or before[0] == after[0]:
        print("identical" if before is not None else f"created {db}", flush=True)
    else:
        print(f"(the old read model was at sequence {before[0]}: compare hashes at the same position)", flush=True)
    return 0
