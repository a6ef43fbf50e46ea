"""Many concurrent read-modify-write clients on ONE flag, each sending the version it read as If-Match.

Each client adds its own tag to the flag's tags (PATCH or PUT of the whole flag). The guarantees, checked
against the stream itself:

- every accepted write is based on the version it read: the event stored before it on the subject is exactly
  the one its If-Match named;
- every refused write got 409 with the current version, and wrote nothing;
- no update is lost: the final tags are exactly the accepted tags, in the order they were accepted.

(``tests/admin/test_admin_concurrency.py`` covers concurrent writes *without* If-Match.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from nats.js.errors import NotFoundError

from flagstream.events import STREAM, decode_event, subject
from tests.helpers import auth_headers

API = "/api/v1/projects/default"
FLAG = f"{API}/environments/production/flags/contended"
SUBJECT = subject("default", "production", "flag", "contended")
WORKERS = 8
LOCKSTEP_ROUNDS = 4
FREE_TAGS = 3  # per worker, in the free-running phase


@dataclass
class Attempt:
    tag: str
    method: str
    if_match: int
    status: int
    version: int | None  # of the answer (the new version on 200, the current one on 409)


async def read_then_write(http: httpx.AsyncClient, tag: str, method: str, barrier: asyncio.Barrier | None) -> Attempt:
    """GET the flag, (wait for the others to have read too), then write it back with one more tag."""
    current = await http.get(FLAG)
    assert current.status_code == 200, current.text
    version = int(current.headers["etag"].strip('"'))
    flag: dict[str, Any] = current.json()["flag"]
    if barrier is not None:
        await barrier.wait()
    headers = {"If-Match": f'"{version}"'}
    tags = [*flag["tags"], tag]
    if method == "PATCH":
        response = await http.patch(FLAG, json={"tags": tags}, headers=headers)
    else:
        response = await http.put(FLAG, json={**flag, "tags": tags}, headers=headers)
    assert response.status_code in (200, 409), response.text
    answered = response.json().get("version")
    return Attempt(tag, method, version, response.status_code, answered)


async def subject_history(nats_url: str) -> list[tuple[int, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        history: list[tuple[int, Any]] = []
        seq = 0
        while True:
            try:
                msg = await js.get_msg(STREAM, seq=seq + 1, subject=SUBJECT, next=True, direct=True)
            except NotFoundError:
                return history
            assert msg.seq is not None
            seq = msg.seq
            history.append((seq, decode_event(msg.data or b"")))
    finally:
        await nc.close()


async def test_concurrent_if_match_writers_never_lose_an_update(nats_url: str, admin_url: str) -> None:
    limits = httpx.Limits(max_connections=WORKERS * 2)
    async with httpx.AsyncClient(base_url=admin_url, timeout=30, limits=limits, headers=auth_headers()) as http:
        assert (await http.post(f"{API}/environments", json={"key": "production"})).status_code == 201
        assert (await http.post(f"{API}/environments/production/flags", json={"key": "contended"})).status_code == 201
        attempts: list[Attempt] = []

        # Lockstep: everybody reads the same version, then everybody writes: exactly one wins each round.
        for r in range(LOCKSTEP_ROUNDS):
            barrier = asyncio.Barrier(WORKERS)
            results = await asyncio.gather(
                *(read_then_write(http, f"r{r}-w{w}", "PATCH" if w % 2 else "PUT", barrier) for w in range(WORKERS))
            )
            assert sorted(a.status for a in results) == [200] + [409] * (WORKERS - 1), results
            attempts += results

        # Free running: each worker retries (re-reading) until each of its tags has landed, like a real client.
        async def worker(w: int) -> None:
            for i in range(FREE_TAGS):
                for _ in range(100):
                    attempt = await read_then_write(http, f"free-w{w}-{i}", "PATCH" if (w + i) % 2 else "PUT", None)
                    attempts.append(attempt)
                    if attempt.status == 200:
                        break
                else:
                    raise AssertionError(f"worker {w} never got tag {i} in")

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))

        final = (await http.get(FLAG)).json()

    history = await subject_history(nats_url)
    seqs = [seq for seq, _ in history]
    accepted = sorted((a for a in attempts if a.status == 200), key=lambda a: a.version or 0)
    refused = [a for a in attempts if a.status == 409]
    assert len(accepted) == LOCKSTEP_ROUNDS + WORKERS * FREE_TAGS
    assert refused, "the lockstep rounds make conflicts certain"

    # One stored event per accepted write, none for a refused one.
    assert [a.version for a in accepted] == seqs[1:]
    for attempt in accepted:
        position = seqs.index(attempt.version)
        assert seqs[position - 1] == attempt.if_match, f"{attempt} is not based on the version it read"
    for attempt in refused:
        assert attempt.version is not None, attempt
        assert attempt.version > attempt.if_match, attempt

    # No lost update: the tags are exactly the accepted ones, in acceptance order, in the stream and the API.
    expected = [a.tag for a in accepted]
    assert list(history[-1][1].flag.tags) == expected
    assert final["flag"]["tags"] == expected
    assert final["version"] == seqs[-1]
    print(f"\ncontention figures: {len(attempts)} attempts, {len(accepted)} accepted, {len(refused)} refused (409)")
