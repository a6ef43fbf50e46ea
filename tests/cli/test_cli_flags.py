"""The CLI as a user runs it: real `flagstream` processes against a real `flagstream admin` (uvicorn) server."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import ADMIN_TOKEN, FLAGSTREAM

URL_LINE = re.compile(r"^http://127\.0\.0\.1:(\d+)$")


@pytest.fixture
def api_url(nats_url: str) -> Iterator[str]:
    """`flagstream admin` on a free port; the URL it prints on a line of its own."""
    proc = subprocess.Popen(
        [FLAGSTREAM, "admin", "--nats-url", nats_url, "--port", "0", "--log-level", "warning"],
        env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ADMIN_TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None:
            assert time.monotonic() < deadline, f"no URL line from flagstream admin:\n{''.join(output)}"
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, f"flagstream admin exited:\n{''.join(output)}"
                continue
            if URL_LINE.match(line):
                url = line
        while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "admin never ready"
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0, f"flagstream admin did not stop cleanly on Ctrl-C:\n{''.join(output)}"


def flagstream(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLAGSTREAM_ACTOR": "cli-test", "FLAGSTREAM_ENV": "staging", "FLAGSTREAM_TOKEN": ADMIN_TOKEN}
    return subprocess.run([FLAGSTREAM, *args, "--api", api], capture_output=True, text=True, timeout=60, env=env)


def test_cli_creates_lists_toggles_and_shows(api_url: str) -> None:
    created = flagstream(api_url, "envs", "create", "staging", "--name", "Staging")
    assert created.returncode == 0, created.stderr
    assert "created environment staging" in created.stdout

    envs = flagstream(api_url, "envs", "list")
    assert envs.returncode == 0, envs.stderr
    assert re.search(r"^staging\s+Staging\s+no\s+\d+$", envs.stdout, re.M), envs.stdout

    flag = flagstream(api_url, "flags", "create", "new-checkout", "--name", "New checkout", "--tag", "web")
    assert flag.returncode == 0, flag.stderr
    assert "created flag new-checkout in staging: off" in flag.stdout

    listed = flagstream(api_url, "flags", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["KEY", "NAME", "KIND", "STATE", "TAGS", "VERSION"]
    assert re.search(r"^new-checkout\s+New checkout\s+boolean\s+off\s+web\s+\d+$", listed.stdout, re.M)

    on = flagstream(api_url, "flags", "on", "new-checkout", "--comment", "launch")
    assert on.returncode == 0, on.stderr
    assert "flag new-checkout in staging: on" in on.stdout

    shown = flagstream(api_url, "flags", "show", "new-checkout")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^state\s+on$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^last change\s+flag\.toggled by operator \(for cli-test\) at .+: launch$", shown.stdout, re.M), (
        shown.stdout
    )

    machine = flagstream(api_url, "flags", "--json", "list")
    assert machine.returncode == 0, machine.stderr
    items = json.loads(machine.stdout)["items"]
    assert [(i["key"], i["flag"]["on"]) for i in items] == [("new-checkout", True)]
    one = flagstream(api_url, "flags", "show", "new-checkout", "--json", "--env", "staging")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["flag"]["tags"] == ["web"]


def test_cli_errors_are_one_clear_line(api_url: str) -> None:
    assert flagstream(api_url, "envs", "create", "staging").returncode == 0
    bad = flagstream(api_url, "flags", "create", "New Checkout!")
    assert bad.returncode != 0
    assert bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert "letters, digits, '-' or '_'" in lines[0]
    assert "$.key" in lines[0]
    assert "HTTP 422" in lines[0]

    newline = flagstream(api_url, "flags", "create", "checkout\n")  # passed the key pattern's `$` before
    assert newline.returncode != 0
    assert newline.stderr.strip().splitlines() == [
        "flagstream flags create: Expected a key (use 1 to 64 letters, digits, '-' or '_'), got one ending in a "
        "newline - at `$.key` (HTTP 422)"
    ]
    assert flagstream(api_url, "flags", "create", "checkout").returncode == 0  # off
    for key in ("checkout\n", "checkout#beta", "checkout?x=1"):  # each names another key, never checkout itself
        in_url = flagstream(api_url, "flags", "on", key)
        assert in_url.returncode != 0
        assert in_url.stderr.strip().splitlines() == [
            f"flagstream flags on: invalid key {key!r}: use 1 to 64 letters, digits, '-' or '_' (HTTP 400)"
        ]
    shown = flagstream(api_url, "flags", "show", "checkout")
    assert re.search(r"^state\s+off$", shown.stdout, re.M), shown.stdout

    missing = flagstream(api_url, "flags", "on", "nope")
    assert missing.returncode != 0
    assert missing.stderr.strip() == "flagstream flags on: flag 'nope' not found in environment 'staging' (HTTP 404)"

    no_env = flagstream(api_url, "flags", "list", "--env", "qa")
    assert no_env.returncode != 0
    assert "environment 'qa' not found" in no_env.stderr


def test_cli_without_a_server_says_so() -> None:
    result = flagstream("http://127.0.0.1:9", "flags", "list")
    assert result.returncode != 0
    assert result.stderr.startswith("flagstream flags list: cannot reach the admin API at http://127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1


def test_admin_without_nats_exits_with_a_clear_line() -> None:
    result = subprocess.run(
        [FLAGSTREAM, "admin", "--nats-url", "nats://127.0.0.1:9", "--port", "0", "--connect-wait", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "flagstream admin: the API did not start (is NATS reachable at nats://127.0.0.1:9?)"
    )
