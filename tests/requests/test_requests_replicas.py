"""Applying a change request happens exactly once and all or nothing, with real admin processes racing and one of
them SIGKILLed in the middle of its batch (``FLAGSTREAM_TEST_PAUSE_BEFORE_COMMIT``: it has sent every event of
the batch but the committing one when it is killed)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import nats
import pytest

from flagstream.events import STREAM
from flagstream.services.changes import EventStore
from tests.helpers import AdminProcess, auth_headers, eventually

API = "/api/v1/projects/default"
PROD = f"{API}/environments/production"
FLAGS = [f"flag-{n:02}" for n in range(30)]

pytestmark = pytest.mark.slow


async def _ok(answer: Any, *codes: int) -> Any:
    answer = await answer
    assert answer.status_code in (codes or (200, 201)), answer.text
    return answer.json()


async def _setup(http: httpx.AsyncClient) -> tuple[dict[str, str], list[str]]:
    """Production asking for an approval, 30 flags, and two requests turning every one of them on, each approved by
    someone else than its author: the tokens of ann (author) and bob (approver), and the requests' ids."""
    for env in ("development", "production"):
        await _ok(http.post(f"{API}/environments", json={"key": env}))
    for key in FLAGS:
        await _ok(http.post(f"{API}/flags", json={"key": key}))
    await _ok(http.patch(f"{API}/environments/production", json={"approvals": 1}))
    tokens = {}
    for name in ("ann", "bob"):
        tokens[name] = (await _ok(http.post("/api/v1/tokens", json={"name": name, "role": "writer"})))["token"]
    ids = []
    for half in (FLAGS[:15], FLAGS[15:]):
        changes = [{"method": "POST", "path": f"{PROD}/flags/{key}/on", "body": {"comment": "launch"}} for key in half]
        created = await _ok(
            http.post(
                f"{API}/requests", json={"title": "launch", "changes": changes}, headers=auth_headers(tokens["ann"])
            )
        )
        await _ok(http.post(f"{API}/requests/{created['id']}/approve", json={}, headers=auth_headers(tokens["bob"])))
        ids.append(created["id"])
    return tokens, ids


async def _events(nats_url: str) -> dict[str, list[str]]:
    """Every event tag per subject of production, from the stream (what actually landed)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(STREAM)).state.last_seq
        out: dict[str, list[str]] = {}
        from flagstream.events import decode_event, tag_of

        for seq in range(1, last + 1):
            msg = await js.get_msg(STREAM, seq=seq, direct=True)
            assert msg.subject is not None
            if msg.subject.startswith("flagstream.default.production."):
                out.setdefault(msg.subject, []).append(tag_of(decode_event(msg.data or b"")))
        return out
    finally:
        await nc.close()


async def _last_seq(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return await EventStore(nc).last_seq()
    finally:
        await nc.close()


async def test_two_replicas_apply_a_request_once_and_a_killed_one_applies_nothing(nats_url: str) -> None:
    paused = AdminProcess(nats_url, env={"FLAGSTREAM_TEST_PAUSE_BEFORE_COMMIT": "120"}).start()
    other = AdminProcess(nats_url).start()
    try:
        async with httpx.AsyncClient(base_url=other.url, timeout=60, headers=auth_headers()) as http:
            tokens, (first, second) = await _setup(http)
            ann = auth_headers(tokens["ann"])

            # 1. One replica sends its whole batch but the commit, and is killed there: nothing of it is stored.
            before = await _last_seq(nats_url)
            async with httpx.AsyncClient(base_url=paused.url, timeout=120, headers=ann) as doomed:
                attempt = asyncio.create_task(doomed.post(f"{API}/requests/{first}/apply", json={}))
                await eventually(lambda: any("paused before commit" in line for line in paused.output),
                                 within=60, what="the replica sent its batch but the commit")  # fmt: skip
                # 2. Meanwhile the other replica applies the same request: it wins, once.
                applied = await http.post(f"{API}/requests/{first}/apply", json={}, headers=ann)
                assert applied.status_code == 200, applied.text
                assert len(applied.json()["applied"]) == 15
                paused.kill()
                with pytest.raises(httpx.HTTPError):
                    await attempt
            assert await _last_seq(nats_url) == before + 16  # 15 flags and the request's own event: nothing more

            # 3. A replica killed while it held the second request's batch: nothing of that batch was stored.
            paused.proc = None
            paused.start()
            async with httpx.AsyncClient(base_url=paused.url, timeout=120, headers=ann) as doomed:
                before = await _last_seq(nats_url)
                attempt = asyncio.create_task(doomed.post(f"{API}/requests/{second}/apply", json={}))
                await eventually(lambda: sum("paused before commit" in line for line in paused.output) == 2,
                                 within=60, what="the restarted replica sent its batch but the commit")  # fmt: skip
                paused.kill()
                with pytest.raises(httpx.HTTPError):
                    await attempt
            assert await _last_seq(nats_url) == before
            request = await _ok(http.get(f"{API}/requests/{second}"))
            assert request["status"] == "open"
            assert request["approved"] is True
            # ...and the request is applied, whole, by the replica still up.
            applied = await http.post(f"{API}/requests/{second}/apply", json={}, headers=ann)
            assert applied.status_code == 200, applied.text
    finally:
        paused.stop()
        other.stop()

    landed = await _events(nats_url)
    for key in FLAGS:
        assert landed[f"flagstream.default.production.flag.{key}"] == ["flag.created", "flag.toggled"], key
    for rid in (first, second):
        steps = landed[f"flagstream.default.production.request.{rid}"]
        assert steps == ["request.opened", "request.approved", "request.applied"], rid


async def test_two_replicas_racing_to_apply_store_it_once(nats_url: str) -> None:
    admins = [AdminProcess(nats_url).start(), AdminProcess(nats_url).start()]
    try:
        async with httpx.AsyncClient(base_url=admins[0].url, timeout=60, headers=auth_headers()) as http:
            tokens, ids = await _setup(http)
            ann = auth_headers(tokens["ann"])
            clients = [httpx.AsyncClient(base_url=a.url, timeout=60, headers=ann) for a in admins]
            try:
                for rid in ids:
                    answers = await asyncio.gather(*(c.post(f"{API}/requests/{rid}/apply", json={}) for c in clients))
                    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
                    loser = next(a for a in answers if a.status_code == 409).json()["error"]
                    assert "already applied" in loser or "moved while it was being applied" in loser
            finally:
                for c in clients:
                    await c.aclose()
    finally:
        for a in admins:
            a.stop()
    landed = await _events(nats_url)
    for key in FLAGS:
        assert landed[f"flagstream.default.production.flag.{key}"] == ["flag.created", "flag.toggled"], key
    for rid in ids:
        assert landed[f"flagstream.default.production.request.{rid}"][-1] == "request.applied"
        assert landed[f"flagstream.default.production.request.{rid}"].count("request.applied") == 1
