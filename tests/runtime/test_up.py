"""`make run` from a user's side: `flagstream up` in an empty folder, use it, stop it, start it again."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from flagstream import FlagstreamClient, sdk_connect_options
from flagstream.services.runtime import free_port
from tests.helpers import DUMP_END, FLAGSTREAM, auth_headers

URL_LINE = re.compile(r"^http://127\.0\.0\.1:(\d+)$")
#: The admin API's port when none is given (the README's address).
DEFAULT_PORT = 8080


class Up:
    """A running `flagstream up` process and the URL it printed."""

    def __init__(self, data_dir: Path, *, port: int = 0, nats_port: int = 0, extra: Sequence[str] = ()) -> None:
        """``port`` -1: no ``--port`` (the default, 8080 unless it is taken); ``extra``: more options."""
        self.data_dir = data_dir
        ports = ["--port", str(port)] if port >= 0 else []
        self.proc = subprocess.Popen(
            [FLAGSTREAM, "up", "--data-dir", str(data_dir), *ports, "--nats-port", str(nats_port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self._wait_for_url(timeout=60)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line.rstrip("\n"))

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, f"flagstream up exited early:\n{''.join(self.output)}"
                continue
            if URL_LINE.match(line):
                return line
        raise AssertionError(f"no URL line from flagstream up:\n{''.join(self.output)}")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"/readyz never answered 200:\n{''.join(self.output)}")

    def dump(self, timeout: float = 30) -> list[str]:
        """What ``kill -USR1`` makes it write (docs/operations.md), up to its last line."""
        while not self.lines.empty():  # what it wrote before
            self.lines.get_nowait()
        self.proc.send_signal(signal.SIGUSR1)
        written: list[str] = []
        deadline = time.monotonic() + timeout
        while DUMP_END not in written:
            assert time.monotonic() < deadline, f"no task dump:\n{''.join(self.output)}"
            with contextlib.suppress(queue.Empty):
                written.append(self.lines.get(timeout=0.5))
        return written

    def interrupt(self, timeout: float = 30) -> int:
        """What Ctrl-C does."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (e.g. a nats-server left behind)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline and int(pid) != os.getpid():
            found.append(cmdline)
    return found


def open_stream(url: str, headers: dict[str, str]) -> threading.Event:
    """An event stream read in a thread, open once this returns; the event is set when the stream has ended."""
    opened, ended = threading.Event(), threading.Event()

    def read() -> None:
        try:
            with httpx.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}, timeout=60) as response:
                for _ in response.iter_bytes():
                    opened.set()
        except httpx.HTTPError:
            pass
        finally:
            opened.set()
            ended.set()

    threading.Thread(target=read, daemon=True).start()
    assert opened.wait(30), f"{url} did not open"
    assert not ended.is_set(), f"{url} ended at once"
    return ended


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "flagstream-data"
    yield path
    for cmd in processes_using(path):  # never leave a server behind, even when the test fails
        subprocess.run(["pkill", "-9", "-f", cmd.split()[0] + ".*" + re.escape(str(path))], check=False)


def test_up_runs_the_product_and_keeps_data_across_a_restart(data_dir: Path) -> None:
    flags = "/api/v1/projects/default/environments/development/flags"

    first = Up(data_dir)
    first.wait_ready()
    # A second `make run` on the same folder is refused (two nats-servers on one store would damage it).
    twice = subprocess.run(
        [FLAGSTREAM, "up", "--data-dir", str(data_dir), "--port", "0", "--nats-port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert twice.returncode == 2, twice.stdout + twice.stderr
    assert f"is in use by another flagstream up (pid {first.proc.pid})" in twice.stderr
    # So is a rebuild of its read model (the embedded projector writes it).
    rebuild = subprocess.run(
        [FLAGSTREAM, "projector", "--rebuild", "--db", str(data_dir / "readmodel.sqlite"), "--nats-url", "nats://x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert rebuild.returncode == 2, rebuild.stdout + rebuild.stderr
    assert f"in use by another projector (pid {first.proc.pid})" in rebuild.stderr
    assert httpx.get(f"{first.url}/readyz", timeout=10).status_code == 200  # the first one goes on
    token_file = data_dir / "operator-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    auth = auth_headers(token_file.read_text().strip())
    body = {"key": "new-checkout", "name": "New checkout"}
    created = httpx.post(f"{first.url}{flags}", json=body, timeout=10, headers=auth)
    assert created.status_code == 201, created.text
    toggled = httpx.post(f"{first.url}{flags}/new-checkout/on", json={"comment": "launch"}, timeout=10, headers=auth)
    assert toggled.status_code == 200, toggled.text
    assert httpx.get(f"{first.url}{flags}/new-checkout", timeout=10, headers=auth).json()["flag"]["on"] is True
    # One /metrics for the embedded product: the admin's and the projector's (caught up with the stream).
    deadline = time.monotonic() + 60
    while True:
        metrics = httpx.get(f"{first.url}/metrics", timeout=10, headers=auth).text.splitlines()
        applied = next(
            (float(m.split()[1]) for m in metrics if m.startswith("flagstream_projector_last_applied_seq ")), 0
        )
        if applied >= created.json()["version"] and "flagstream_projector_lag 0.0" in metrics:
            break
        assert time.monotonic() < deadline, "the projector's metrics never showed it caught up:\n" + "\n".join(metrics)
        time.sleep(0.1)
    assert any(m.startswith("flagstream_admin_requests_total{") for m in metrics)

    # A browser with the UI open holds a change stream, an OFREP provider an event stream: Ctrl-C ends them
    # and stops cleanly (it used to wait for them, then give up with a traceback).
    streams = [
        open_stream(f"{first.url}/api/v1/environments/development/changes/stream", auth),
        open_stream(f"{first.url}/ofrep/v1/events?environment=development", auth),
    ]
    assert first.interrupt() == 0, "".join(first.output)
    for ended in streams:
        assert ended.wait(30), "an event stream was still open after the server stopped"
    assert not [line for line in first.output if "Traceback" in line or "did not stop" in line], "".join(first.output)
    assert processes_using(data_dir) == [], "something was left running after Ctrl-C"

    second = Up(data_dir)
    try:
        second.wait_ready()
        again = httpx.get(f"{second.url}{flags}/new-checkout", timeout=10, headers=auth)
        assert again.status_code == 200, again.text
        assert again.json()["flag"]["on"] is True
        assert again.json()["flag"]["name"] == "New checkout"
        envs = httpx.get(f"{second.url}/api/v1/projects/default/environments", timeout=10, headers=auth).json()
        assert {"development", "production"} <= {e["key"] for e in envs["items"]}
    finally:
        assert second.interrupt() == 0, "".join(second.output)
    assert processes_using(data_dir) == []


def _established(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:``port`` is established (from /proc/net/tcp: state 01)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state == "01" and f":{port:04X}" in (local[-5:], remote[-5:]):
            return True
    return False


def _lingering(port: int) -> bool:
    """Whether the server side of a closed connection on ``port`` is in TIME_WAIT (state 06)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "06" and fields[1].endswith(f":{port:04X}"):
            return True
    return False


def test_kill_usr1_shows_where_each_part_of_up_is_and_up_runs_on(data_dir: Path) -> None:
    up = Up(data_dir)
    try:
        up.wait_ready()
        dump = "\n".join(up.dump())
        assert "Current thread" in dump  # every thread's stack
        for task in ("Task 'admin-api'", "Task 'projector' Projector.run (pending)", "Task 'projector-lag'"):
            assert task in dump, dump
        assert "services/projector/projector.py" in dump  # each task's await chain, down to where it waits
        assert httpx.get(f"{up.url}/readyz", timeout=10).status_code == 200, "it runs on"
    finally:
        assert up.interrupt() == 0, "".join(up.output)


def test_up_restarts_at_once_after_ctrl_c_while_an_sdk_is_connected(data_dir: Path) -> None:
    """Ctrl-C with an application connected leaves the server's side of its connection in TIME_WAIT; a restart
    on the same ports must still work at once (nats-server itself binds with SO_REUSEADDR)."""
    nats_port, api_port = free_port(), free_port()
    first = Up(data_dir, port=api_port, nats_port=nats_port)
    first.wait_ready()
    password = json.loads((data_dir / "nats-users.json").read_text())["passwords"]["sdk-default-development"]
    client = FlagstreamClient(
        f"nats://127.0.0.1:{nats_port}", environment="development",
        connect_options=sdk_connect_options("default", "development", password), reconnect_wait=0.2,
    )  # fmt: skip
    try:
        assert client.start(wait=30), f"the SDK did not connect: {client.last_error!r}"
        assert _established(nats_port)
        assert first.interrupt() == 0, "".join(first.output)
        assert _lingering(nats_port), "the setting of this test: the server's side of the closed connection lingers"

        second = Up(data_dir, port=api_port, nats_port=nats_port)
        try:
            second.wait_ready()
            assert second.url == f"http://127.0.0.1:{api_port}"
            token = (data_dir / "operator-token").read_text().strip()
            created = httpx.post(
                f"{second.url}/api/v1/environments/development/flags", json={"key": "after-restart", "on": True},
                headers=auth_headers(token), timeout=10,
            )  # fmt: skip
            assert created.status_code == 201, created.text
            assert client.wait_for_sequence(created.json()["version"], timeout=30), "the SDK reconnected and caught up"
            assert client.bool_variation("after-restart", {"key": "u1"}, False) is True
        finally:
            assert second.interrupt() == 0, "".join(second.output)
    finally:
        client.close()


def test_up_takes_a_free_port_when_8080_is_taken_and_prints_it(data_dir: Path) -> None:
    """The README: the admin API is at http://127.0.0.1:8080 unless that port is taken; then on a port it prints."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", DEFAULT_PORT))
        holder.listen()
    except OSError:  # something else has it already: taken all the same
        holder.close()
        holder = None  # type: ignore[assignment]
    try:
        proc = subprocess.run(
            [FLAGSTREAM, "up", "--data-dir", str(data_dir), "--nats-port", "0", "--port", str(DEFAULT_PORT)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, "a port asked for by name is that port, or a clear error"
        assert f"cannot listen on 127.0.0.1:{DEFAULT_PORT}" in proc.stderr, proc.stderr

        up = Up(data_dir, port=-1)  # no --port: the default
        try:
            up.wait_ready()
            port = int(up.url.rsplit(":", 1)[1])
            assert port != DEFAULT_PORT
            assert any(f"Port {DEFAULT_PORT} is taken" in line for line in up.output), "".join(up.output)
        finally:
            assert up.interrupt() == 0, "".join(up.output)
    finally:
        if holder is not None:
            holder.close()


def test_make_run_takes_options(data_dir: Path, tmp_path: Path) -> None:
    """`make run ARGS="--port 9000"`: the options reach `flagstream up`."""
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    args = f"--port {port} --nats-port 0 --data-dir {data_dir}"
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "-C", str(repo), "run", f"ARGS={args}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.strip().startswith("http://"):
                break
        assert lines, "make run printed nothing"
        assert lines[-1].strip() == f"http://127.0.0.1:{port}", "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
        rest = proc.communicate(timeout=60)[0]
    assert "flagstream stopped" in rest, rest
    assert processes_using(data_dir) == []


def test_up_refuses_a_nats_port_something_listens_on(data_dir: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = subprocess.run(
            [FLAGSTREAM, "up", "--data-dir", str(data_dir), "--port", "0", "--nats-port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"port {port} is taken; pass --nats-port 0" in proc.stderr
