"""Schemathesis against the real admin API (``flagstream up`` as a process: nats-server, API, projector).

Every operation of ``/openapi.json``, through schemathesis' three phases: coverage (each parameter and body
field at its boundaries and just past them, each required field missing, an unknown one added, every type that is
not the documented one), fuzzing (generated valid and invalid requests) and stateful (sequences that create,
read, change and delete, following the links schemathesis infers from Location headers and parameter names).
Every answer is checked: never a 5xx, status code, content type, headers and body as documented, invalid data
refused, authentication required, a deleted entity gone, a method the path does not have answered 405 with the
right ``Allow``.

Half of the requests with path parameters are pointed at entities that exist, every webhook at a receiver of
the test on 127.0.0.1 (``schemathesis_hooks.py``): nothing generated leaves this machine. The default-project
short forms (``/api/v1/environments/...``, the same handlers) are left to ``make fuzz``.

A run's seed is printed; ``FLAGSTREAM_FUZZ_SEED=<seed>`` runs the same cases again (the "Reproduce with" lines of a
failure are the requests themselves). ``FLAGSTREAM_FUZZ_EXAMPLES`` sets the examples per operation and phase
(``EXAMPLES`` here; ``make fuzz``: 60, every operation: docs/reliability.md has its figures).

The event streams are fuzzed too: without ``Accept: text/event-stream`` they send their first event and end.
What they do as long-lived streams, with generated ``Last-Event-ID`` values, is ``test_fuzz_streams.py``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.helpers import FLAGSTREAM, auth_headers, read_url

HERE = Path(__file__).parent
#: Examples per operation, phase and mode in the suite (enough to find each bug of issue 18 in the code before
#: its fixes, in about two minutes on 2 cores).
EXAMPLES = 8
SHORT_FORMS = r"^/api/v1/environments"
#: Examples of this run (``make fuzz`` sets more), and the time it may take (a stuck run fails, it does not hang).
RUN_EXAMPLES = int(os.environ.get("FLAGSTREAM_FUZZ_EXAMPLES") or EXAMPLES)


@dataclass
class Running:
    url: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class _Taker(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    """A webhook receiver on 127.0.0.1 that takes everything: where every generated webhook sends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Taker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


@pytest.fixture
def flagstream_up(tmp_path: Path) -> Iterator[Running]:
    """``flagstream up`` (nats-server, admin API and projector: every route works) on free ports, allowing
    webhooks to the test's receiver on 127.0.0.1."""
    proc = subprocess.Popen(
        [FLAGSTREAM, "up", "--data-dir", str(tmp_path / "data"), "--port", "0", "--nats-port", "0",
         "--log-level", "warning", "--webhook-allow", "127.0.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        token_files: list[Path] = []

        def on_line(line: str) -> None:
            if line.startswith("Operator token"):
                token_files.append(Path(line.rsplit(": ", 1)[1].strip()))

        url = read_url(proc, on_line)
        assert token_files, "flagstream up printed no operator token file"
        token = token_files[0].read_text().strip()
        yield Running(url, token)
    finally:
        proc.terminate()
        proc.wait(30)


def seed(up: Running, receiver: str) -> dict[str, object]:
    """Entities under the keys and ids the fuzz points half its requests at: a flag and a segment ``checkout`` in
    development, a pending schedule, a token and a webhook."""
    with httpx.Client(base_url=f"{up.url}/api/v1", timeout=30, headers=up.headers()) as http:
        env = "/projects/default/environments/development"
        assert http.post("/projects/default/environments", json={"key": "development"}).status_code in (201, 409)
        assert http.post(f"{env}/flags", json={"key": "checkout"}).status_code == 201
        assert http.post(f"{env}/segments", json={"key": "checkout"}).status_code == 201
        due = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
        schedule = http.post(f"{env}/schedules", json={"due": due, "flag": "checkout", "action": "on"})
        assert schedule.status_code == 201, schedule.text
        token = http.post("/tokens", json={"name": "fuzz", "role": "reader"})
        assert token.status_code == 201, token.text
        webhook = http.post("/webhooks", json={"url": receiver})
        assert webhook.status_code == 201, webhook.text
    return {
        "keys": {"project": "default", "environment": "development", "key": "checkout"},
        "schedule": schedule.json()["id"],
        "token": token.json()["id"],
        "webhook": webhook.json()["id"],
    }


def fuzz(up: Running, receiver: str, workdir: Path, *, examples: int, seed_value: int, every_operation: bool) -> str:
    """Run schemathesis (``st run``) against ``up``; its output. Fails the test with the failures it reports."""
    pins = seed(up, receiver)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": str(HERE),
        "FLAGSTREAM_FUZZ_PINS": json.dumps(pins),
        "FLAGSTREAM_FUZZ_RECEIVER": receiver,
    }
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(HERE / "schemathesis.toml"), "run",
        f"{up.url}/openapi.json", "--header", f"Authorization: Bearer {up.token}",
        "--phases", "coverage,fuzzing,stateful", "--max-examples", str(examples), "--seed", str(seed_value),
        "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--workers", "1",
        "--request-timeout", "30", "--no-color",
        *([] if every_operation else ["--exclude-path-regex", SHORT_FORMS]),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=90 * examples + 600, check=False
    )
    output = done.stdout + done.stderr
    (workdir / "schemathesis.log").write_text(output)
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    print(f"\nschemathesis (seed {seed_value}, {examples} examples):\n{summary}")
    assert done.returncode == 0, (
        f"schemathesis failed (seed {seed_value}; FLAGSTREAM_FUZZ_SEED={seed_value}):\n{output[-20000:]}"
    )
    return output


def seed_of_run() -> int:
    """``FLAGSTREAM_FUZZ_SEED`` if set, else a new one (printed, so a failing run can be repeated)."""
    given = os.environ.get("FLAGSTREAM_FUZZ_SEED", "").strip()
    return int(given) if given else random.SystemRandom().randrange(2**31)


@pytest.mark.timeout(max(900, 90 * RUN_EXAMPLES))
def test_generated_requests_never_fail_and_match_the_document(
    flagstream_up: Running, receiver: str, tmp_path: Path
) -> None:
    examples = RUN_EXAMPLES
    every_operation = os.environ.get("FLAGSTREAM_FUZZ_EVERY_OPERATION", "") == "1"
    seed_value = seed_of_run()
    print(f"\nfuzz seed {seed_value} (FLAGSTREAM_FUZZ_SEED={seed_value} repeats this run)")
    output = fuzz(flagstream_up, receiver, tmp_path, examples=examples, seed_value=seed_value,
                  every_operation=every_operation)  # fmt: skip
    for phase in ("Coverage", "Fuzzing", "Stateful"):  # each ran and passed (not skipped)
        assert f"✅ {phase}" in output, f"the {phase} phase did not run:\n{output[-3000:]}"


async def test_listing_tokens_before_any_was_created_is_an_empty_list(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        response = await http.get("/api/v1/tokens")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": []}


async def test_revoking_a_token_id_that_is_no_valid_key_is_404(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        response = await http.delete("/api/v1/tokens/s%C2%89%C2%A7")  # "s\x89§": not a KV key
    assert response.status_code == 404, response.text
