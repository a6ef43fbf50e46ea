"""``flagstream projector`` tells where it is on ``kill -USR1`` (docs/operations.md) and runs on; SIGTERM stops it."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import threading
from pathlib import Path

from flagstream.services.runtime import free_port
from tests.helpers import DUMP_END, FLAGSTREAM


def test_kill_usr1_shows_where_the_projector_is_and_it_runs_on(nats_url: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    proc = subprocess.Popen(
        [FLAGSTREAM, "projector", "--nats-url", nats_url, "--db", str(tmp_path / "read.db"),
         "--metrics-port", str(metrics_port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line.rstrip("\n"))

    def until_line(text: str) -> list[str]:
        seen: list[str] = []
        while not any(text in line for line in seen):
            assert proc.poll() is None, f"flagstream projector exited:\n{''.join(output)}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=30))  # a line within 30 s, or the test fails below
                continue
            raise AssertionError(f"no line with {text!r}:\n{''.join(output)}")
        return seen

    threading.Thread(target=pump, daemon=True).start()
    try:
        until_line("metrics at http://")
        proc.send_signal(signal.SIGUSR1)
        dump = "\n".join(until_line(DUMP_END))
        assert "Current thread" in dump  # every thread's stack
        main = dump.split(" _serve (pending):", 1)[1].split("\nTask ", 1)[0]  # the main task's await chain
        assert "services/projector/projector.py" in main, dump  # down into Projector.run
        assert ", in run" in main, dump
        assert "Task 'projector-lag' ProjectorMetrics.follow_stream (pending)" in dump, dump
        assert proc.poll() is None, "it runs on"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
