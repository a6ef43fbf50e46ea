"""History in an admin replica (``flagstream admin``): without ``--history-db`` it says so when it starts, not only
as a 503 later; with it, it answers on its own (its own read model, folded from the log); one file per replica.
The production topology (three NATS nodes, two replicas, the projector killed) is tested in
``tests/deploy/test_deploy_topology.py``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, AdminProcess, auth_headers, until

ENV = "/api/v1/environments/production"


async def test_an_admin_without_history_says_so_when_it_starts(nats_url: str) -> None:
    admin = AdminProcess(nats_url).start()
    try:
        # Printed before it serves (and so before any request could get a 503): the line names the option.
        (line,) = [line for line in admin.output if "history is off" in line]
        assert "--history-db" in line
        async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers()) as http:
            response = await http.get(f"{ENV}/history")
        assert response.status_code == 503
        assert "--history-db" in response.json()["error"]
    finally:
        admin.stop()


async def test_with_history_db_a_replica_answers_history_on_its_own(nats_url: str, tmp_path: Path) -> None:
    db = tmp_path / "admin" / "history.sqlite"
    admin = AdminProcess(nats_url, "--history-db", str(db)).start()
    try:
        assert not [line for line in admin.output if "history is off" in line]
        async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=30) as http:
            assert (await http.post("/api/v1/environments", json={"key": "production"})).status_code == 201
            assert (await http.post(f"{ENV}/flags", json={"key": "checkout"})).status_code == 201
            toggled = await http.post(f"{ENV}/flags/checkout/on", json={"comment": "launch"})
            assert toggled.status_code == 200
            # Asked right after the write: the answer waits for the replica's read model to have applied it.
            history = await http.get(f"{ENV}/flags/checkout/history")
            assert history.status_code == 200, history.text
            assert history.json()["items"][0]["lines"] == ["turned on"]
            state = await http.get(f"{ENV}/state", params={"seq": toggled.headers["ETag"].strip('"')})
            assert state.status_code == 200, state.text
            assert state.json()["flags"][0]["state"]["on"] is True
            # The fold's progress is in the replica's own metrics, under the projector's names.
            version = int(toggled.headers["ETag"].strip('"'))
            wanted = {f"flagstream_projector_last_applied_seq {version}.0", "flagstream_projector_lag 0.0"}

            async def reported() -> bool:
                return wanted <= set((await http.get("/metrics")).text.splitlines())

            await until(reported, "the replica's metrics show its fold caught up")
        assert db.exists()
    finally:
        admin.stop()


def test_two_replicas_on_one_history_file_the_second_refuses(nats_url: str, tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    first = AdminProcess(nats_url, "--history-db", str(db)).start()
    try:
        second = subprocess.run(
            [FLAGSTREAM, "admin", "--nats-url", nats_url, "--port", "0", "--history-db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ADMIN_TOKEN},
            check=False,
        )
        assert second.returncode == 2
        assert first.proc is not None
        assert f"pid {first.proc.pid}" in second.stderr
        assert "--history-db" in second.stderr
    finally:
        first.stop()


async def test_a_read_model_behind_the_log_answers_503_saying_how_far_never_a_stale_answer(
    nats_url: str, tmp_path: Path
) -> None:
    """A read model nobody folds any more (its projector gone): history waits for it, then says where it stands."""
    from flagstream.services.admin.app import create_app
    from flagstream.services.projector import ReadModel
    from tests.helpers import publish_flag, serving

    db = tmp_path / "readmodel.sqlite"
    await (await ReadModel.open(db)).close()  # an empty read model: position 0
    await publish_flag(nats_url, "checkout")
    app = create_app(nats_url=nats_url, read_model=db, operator_token=ADMIN_TOKEN)
    app.state.history.wait = 0.5
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=auth_headers()) as http:
        response = await http.get(f"{ENV}/flags/checkout/history")
        assert response.status_code == 503
        assert "applied the event log up to sequence 0 of 1" in response.json()["error"]
