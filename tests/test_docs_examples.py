"""Every shell example in docs/ that talks to the admin API runs as written, against `flagstream up` (what `make
run` starts), from the folder it runs in, as the README's block does (tests/security/test_security_up.py).

Only the address differs: ``localhost:8080`` and ``127.0.0.1:8080`` become the test's, and the CLI gets it in
``FLAGSTREAM_API``. Made-up values the reader replaces too (the Slack URL of the webhooks page, the webhook id the
server made) are replaced by the test's. A block runs in bash with ``-e -o pipefail``, after the variable
assignments of the blocks before it on the same page (``TOKEN=...``), as a reader's shell keeps them. A block that
follows a stream (``curl -N``) is read until the documented lines come, then stopped.

Every shell block of docs/ is either run here, or run by another test, or listed with why it does not talk to the
API: a new block that is in none of these fails the first test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import FLAGSTREAM
from tests.runtime.test_up import Up, processes_using

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SHELL = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```", re.S | re.M)

#: (page, start of the block's first line) of the blocks this file runs.
RUN = {
    ("api.md", "API=http://127.0.0.1:8080/api/v1/projects/default/environments/production"),
    ("ofrep.md", "TOKEN=$(cat .flagstream/operator-token)"),
    ("ofrep.md", "curl -si localhost:8080/ofrep/v1/evaluate/flags"),
    ("ofrep.md", "curl -sN 'localhost:8080/ofrep/v1/events?environment=production'"),
    ("ofrep.md", "ADMIN_TOKEN=$(cat .flagstream/operator-token)"),
    ("ui.md", "TOKEN=$(cat .flagstream/operator-token)"),
    ("flags-as-code.md", "flagstream export --env staging -o flags/staging.yaml"),
    ("flags-as-code.md", "flagstream export --env staging | flagstream apply -f - --env production"),
    ("flags-as-code.md", "flagstream plan -f flags/production.yaml --env production"),
    ("migration.md", "flagstream import unleash export.json --env production --dry-run"),
    ("webhooks.md", "flagstream webhooks create https://hooks.slack.com/services/T000/B000/XXXX"),
    ("environments.md", 'flagstream flags create new-checkout --name "New checkout"'),
    ("environments.md", "flagstream flags diff new-checkout --from production --to development"),
    ("environments.md", "TOKEN=$(cat .flagstream/operator-token)"),
    ("environments.md", "flagstream history new-checkout --all-envs"),
}
#: Pages whose examples another test runs as written.
ELSEWHERE = {
    "clientside.md": "tests/ui/test_ui_clientside_docs.py (curl, the CLI, the web, React and Node examples)",
    "release.md": "tests/release/test_release_docs.py (the flagstream plans blocks, the Python block, the option)",
}
#: Blocks that do not talk to the admin API, and why.
NOT_API = {
    ("deploy.md", 'echo "FLAGSTREAM_OPERATOR_TOKEN'): "starts the compose topology with Docker (tests/deploy runs the "
    "same topology as processes)",
    ("deploy.md", "nats --server nats://edge:4222"): "the nats CLI against an edge server of the compose topology",
    ("observability.md", "flagstream projector"): "starts a service",
    ("operations.md", "flagstream admin --nats-url"): "starts services",
    ("sdk.md", "pip install flagstream"): "installs the SDK",
    ("security.md", "flagstream admin --webhook-allow"): "starts services with an option",
    ("security.md", "flagstream users create ada"): "run as written by tests/people/test_people_docs.py",
    ("security.md", "flagstream users create grace"): "run as written by tests/people/test_people_docs.py",
    ("security.md", "API=http://127.0.0.1:8080/api/v1/projects/default/environments/production"): "run as written "
    "by tests/security/test_security_sdk_credentials.py (with the Python block between)",
    ("security.md", "ID=$(python3"): "run as written by tests/security/test_security_sdk_credentials.py",
    ("sso-keycloak.md", "FLAGSTREAM_OIDC_CLIENT_SECRET="): "starts a service with a Keycloak of yours "
    "(tests/people/test_people_docs.py loads its configuration)",
    ("ui.md", "flagstream up"): "starts the product (tests/runtime/test_up.py)",
}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    text: str

    @property
    def first(self) -> str:
        return next(line for line in self.text.splitlines() if line.strip())


def shell_blocks(page: str | None = None) -> list[Block]:
    found = []
    for path in sorted(DOCS.glob("*.md")) if page is None else [DOCS / page]:
        text = path.read_text()
        for m in SHELL.finditer(text):
            found.append(Block(path.name, text[: m.start()].count("\n") + 1, m.group(1)))
    return found


def test_every_shell_example_is_run_or_said_why_not() -> None:
    unaccounted, seen = [], set()
    for block in shell_blocks():
        if block.page in ELSEWHERE:
            continue
        listed = [k for k in (*RUN, *NOT_API) if k[0] == block.page and block.first.startswith(k[1])]
        if len(listed) == 1:
            seen.add(listed[0])
        else:
            unaccounted.append(f"docs/{block.page}:{block.line}: {block.first}")
    assert not unaccounted, "shell examples neither run by a test nor listed in NOT_API:\n" + "\n".join(unaccounted)
    stale = (RUN | set(NOT_API)) - seen
    assert not stale, f"listed here but no longer in docs/: {stale}"
    for page, test in ELSEWHERE.items():
        assert (DOCS / page).exists()
        assert (REPO / test.split()[0]).exists(), test


# -- running a page's examples -----------------------------------------------------------------------------


class Docs:
    """`flagstream up` in a folder of its own (data in ``.flagstream/``, as `make run`), and the page's blocks."""

    def __init__(self, folder: Path, up: Up) -> None:
        self.folder = folder
        self.up = up
        self.address = up.url.removeprefix("http://")
        self.token = (folder / ".flagstream" / "operator-token").read_text().strip()
        self.http = httpx.Client(base_url=up.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        bin_dir = str(Path(FLAGSTREAM).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
        self.env.update(PATH=f"{bin_dir}:{os.environ.get('PATH', '')}", FLAGSTREAM_API=up.url)

    def script(self, page: str, index: int, replace: dict[str, str] | None = None) -> str:
        """Block ``index`` of ``page`` as it will run: after the assignments of the blocks before it."""
        blocks = shell_blocks(page)
        assignments = [line for b in blocks[:index] for line in b.text.splitlines() if re.match(r"^[A-Z_]+=", line)]
        text = "\n".join([*assignments, blocks[index].text])
        for old, new in {"localhost:8080": self.address, "127.0.0.1:8080": self.address, **(replace or {})}.items():
            text = text.replace(old, new)
        return text

    def run(self, page: str, index: int, replace: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", self.script(page, index, replace)],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"docs/{page} block {index + 1} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def follow(self, page: str, index: int) -> Stream:
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", self.script(page, index)],
            cwd=self.folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        return Stream(proc)

    def flag(self, env: str, key: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/v1/environments/{env}/flags/{key}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


class Stream:
    """A block that follows an event stream: its lines as they come, stopped (Ctrl-C) at the end."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._new = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        with self._new:
            found = self._new.wait_for(
                lambda: any(re.search(pattern, line) for line in self.lines) or self.proc.poll() is not None, timeout
            )
            match = next((line for line in self.lines if re.search(pattern, line)), None)
        stderr = "" if self.proc.poll() is None or self.proc.stderr is None else self.proc.stderr.read()
        assert found, f"no line matching {pattern!r} in:\n" + "\n".join(self.lines) + stderr
        assert match is not None, f"the block ended without a line matching {pattern!r}:\n{stderr}"
        return match

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(30)


@pytest.fixture
def docs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Docs]:
    folder = tmp_path / "project"
    folder.mkdir()
    data = folder / ".flagstream"
    up = Up(data, extra=getattr(request, "param", ()))
    try:
        up.wait_ready()
        made = Docs(folder, up)
        yield made
        made.http.close()
    finally:
        assert up.interrupt() == 0, "".join(up.output)
        for cmd in processes_using(data):  # never leave a server behind, even when the test fails
            subprocess.run(["pkill", "-9", "-f", cmd.split()[0] + ".*" + re.escape(str(data))], check=False)


def _documented_json(page: str, after: str) -> Any:
    """The JSON block that follows the line ``after`` on ``page`` (what the page says comes back)."""
    text = (DOCS / page).read_text()
    tail = text[text.index(after) :]
    block = re.search(r"```json\n(.*?)```", tail, re.S)
    assert block is not None
    return json.loads(block.group(1))


# -- the pages ---------------------------------------------------------------------------------------------


def test_the_api_examples(docs: Docs) -> None:
    done = docs.run("api.md", 0)
    assert '"error"' not in done.stdout, done.stdout
    rec = docs.flag("production", "new-checkout")
    flag = rec["flag"]
    assert (flag["on"], flag["description"], flag["tags"]) == (True, "One-page checkout", ["web"])
    assert [w["weight"] for w in flag["rules"][0]["serve"]["rollout"]["variations"]] == [20000, 80000]
    assert rec["comment"] == "launch"
    listed = json.loads(done.stdout[done.stdout.rindex('{"items"') :])
    assert [item["key"] for item in listed["items"]] == ["new-checkout"]


def _ofrep_flags(docs: Docs) -> None:
    """What docs/ofrep.md's answers show: new-checkout on for the nordics, a string flag banner."""
    nordics = {"id": "nordics", "clauses": [{"attribute": "country", "op": "in", "values": ["NO", "SE", "DK"]}],
               "serve": {"variation": "on"}}  # fmt: skip
    flags = "/api/v1/environments/production/flags"
    for body in (
        {"key": "new-checkout", "on": True, "rules": [nordics], "fallthrough": {"variation": "off"}},
        {"key": "banner", "kind": "string", "on": True, "off_variation": "plain", "fallthrough": {"variation": "plain"},
         "variations": [{"key": "plain", "value": "plain"}, {"key": "festive", "value": "festive"}]},
    ):  # fmt: skip
        answer = docs.http.post(flags, json=body)
        assert answer.status_code == 201, answer.text


def test_the_ofrep_examples(docs: Docs) -> None:
    _ofrep_flags(docs)
    one = json.loads(docs.run("ofrep.md", 0).stdout)
    documented = _documented_json("ofrep.md", "curl -s localhost:8080/ofrep/v1/evaluate/flags/new-checkout")
    for name in ("key", "value", "reason", "variant"):
        assert one[name] == documented[name], (name, one)
    for name in ("reason_kind", "rule_id", "rule_index"):
        assert one["metadata"][name] == documented["metadata"][name], (name, one)

    bulk = docs.run("ofrep.md", 1).stdout
    assert "HTTP/1.1 200 OK" in bulk, bulk
    assert re.search(r"(?im)^etag: \"\d+-\w+\"", bulk), bulk
    assert '"key":"banner","value":"plain","reason":"DEFAULT","variant":"plain"' in bulk, bulk
    assert "HTTP/1.1 304 Not Modified" in bulk, "the second request, with the first's ETag"

    stream = docs.follow("ofrep.md", 2)
    try:
        stream.wait_for(r"^: flagstream ofrep events")  # the stream is open: what happens now comes through it
        assert docs.http.post("/api/v1/environments/production/flags/banner/off").status_code == 200
        event = stream.wait_for(r"^data: ")
        assert json.loads(event.removeprefix("data: "))["type"] == "refetchEvaluation"
    finally:
        stream.stop()

    token = json.loads(docs.run("ofrep.md", 3).stdout)
    assert (token["name"], token["role"], token["environments"]) == ("web-shop", "reader", ["production"])


def test_the_change_stream_example_of_the_ui_page(docs: Docs) -> None:
    stream = docs.follow("ui.md", 1)
    try:
        stream.wait_for(r"^event: ready")  # the stream is open: what happens now comes through it
        created = docs.http.post("/api/v1/environments/production/flags", json={"key": "dark-mode"})
        assert created.status_code == 201, created.text
        stream.wait_for(r"^event: change")
        data = json.loads(stream.wait_for(r"^data: .*dark-mode").removeprefix("data: "))
        assert (data["kind"], data["event"], data["record"]["key"]) == ("flag", "flag.created", "dark-mode")
    finally:
        stream.stop()


def test_the_flags_as_code_examples(docs: Docs) -> None:
    assert docs.http.post("/api/v1/environments", json={"key": "staging"}).status_code == 201
    staging = "/api/v1/environments/staging"
    assert docs.http.post(f"{staging}/segments", json={"key": "beta", "included": ["ada"]}).status_code == 201
    rule = {"id": "beta", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}
    body = {"key": "new-checkout", "description": "the one-page checkout", "rules": [rule], "on": True}
    assert docs.http.post(f"{staging}/flags", json=body).status_code == 201

    first = docs.run("flags-as-code.md", 0)  # export, plan, apply
    assert (docs.folder / "flags" / "staging.yaml").exists()
    assert "new-checkout" in first.stdout, first.stdout
    production, staged = docs.flag("production", "new-checkout")["flag"], docs.flag("staging", "new-checkout")["flag"]
    assert (production["rules"], production["on"]) == (staged["rules"], True)

    assert docs.http.post(f"{staging}/flags/new-checkout/off").status_code == 200
    docs.run("flags-as-code.md", 1)  # promotion through a pipe
    promoted = docs.flag("production", "new-checkout")
    assert (promoted["flag"]["on"], promoted["comment"]) == (False, "release 42")

    exported = subprocess.run(
        [FLAGSTREAM, "export", "--env", "production", "-o", "flags/production.yaml"],
        cwd=docs.folder, env=docs.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    docs.env["GIT_COMMIT"] = "4f2c9e1"
    ci = docs.run("flags-as-code.md", 2)  # plan on the pull request, apply on merge
    assert "No changes" in ci.stdout, ci.stdout


def test_the_migration_examples(docs: Docs) -> None:
    data = REPO / "tests" / "importers" / "data"
    shutil.copy(data / "unleash-features.json", docs.folder / "export.json")
    shutil.copy(data / "flagd-flags.json", docs.folder / "flags.json")
    shutil.copy(data / "launchdarkly-flags.json", docs.folder / "ld-flags.json")
    shutil.copy(data / "flagsmith-environment.json", docs.folder / "environment.json")
    shutil.copy(data / "growthbook-features.json", docs.folder / "features.json")
    done = docs.run("migration.md", 0)
    assert "would write flag" in done.stdout, done.stdout
    written = re.findall(r"^(?:created|updated) flag (\S+) in production", done.stdout, re.M)
    assert written, done.stdout
    for key in written:
        assert docs.flag("production", key)["flag"]["key"] == key
    assert {"banner_colour", "checkout-layout"} <= set(written), written  # from Flagsmith, from GrowthBook


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("docs", [("--webhook-allow", "127.0.0.1")], indirect=True)
def test_the_webhooks_examples(docs: Docs) -> None:
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/slack"
        block = shell_blocks("webhooks.md")[0].text
        create, rest = block.split("# created webhook", 1)
        done = subprocess.run(
            ["bash", "-e", "-c", create.replace("https://hooks.slack.com/services/T000/B000/XXXX", url)],
            cwd=docs.folder, env=docs.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        said = re.match(r"created webhook (wh\w+) -> (\S+) \(flag in default/production\)\n", done.stdout)
        assert said is not None, done.stdout
        assert said.group(2) == url
        assert re.search(r"^signing secret: whsec_\S+$", done.stdout, re.M), done.stdout
        assert "store it now: it is not shown again" in done.stdout
        webhook = said.group(1)
        commands = "\n".join(line for line in rest.splitlines()[1:] if not line.startswith("#"))
        after = subprocess.run(
            ["bash", "-e", "-c", commands.replace("wh3f2a...", webhook)],
            cwd=docs.folder, env=docs.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert after.returncode == 0, after.stdout + after.stderr
        assert "the endpoint answered 200" in after.stdout, after.stdout
        assert docs.http.get(f"/api/v1/webhooks/{webhook}").status_code == 404, "deleted at the end"
    finally:
        receiver.shutdown()


if __name__ == "__main__":  # pragma: no cover - a quick listing of the blocks
    for b in shell_blocks():
        print(f"docs/{b.page}:{b.line}: {b.first}", file=sys.stderr)


def test_the_environments_examples(docs: Docs) -> None:
    shown = docs.run("environments.md", 0).stdout
    documented = (DOCS / "environments.md").read_text().split("```text\n", 1)[1].split("```", 1)[0]
    assert documented in shown, shown  # flags show prints what the page says it prints
    promoted = docs.run("environments.md", 1).stdout
    assert "on: false -> true" in promoted, promoted  # the diff, before the copy
    assert "1 flag(s) changed in development" in promoted, promoted
    dev = docs.flag("development", "new-checkout")
    assert (dev["flag"]["on"], dev["flag"]["rules"][0]["id"], dev["comment"]) == (
        True,
        "state-os",
        "same as production",
    )

    docs.run("environments.md", 2)
    dark = {env: docs.flag(env, "dark-mode")["flag"] for env in ("development", "production")}
    assert (dark["development"]["on"], dark["production"]["on"]) == (True, False)
    assert dark["development"]["tags"] == dark["production"]["tags"] == ["ui"]

    history = docs.run("environments.md", 3).stdout
    assert "Rule 1 (state-os) added: If state is CA and os is iOS, serve on to 10%, off to 90%" in history, history
    assert "turned on" in history
    assert "  development  " in history
