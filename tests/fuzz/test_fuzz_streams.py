"""The event streams as event streams, fuzzed (hypothesis): the API fuzz calls them without
``Accept: text/event-stream``, so they answer their first event and end; a real client asks for the stream, which
stays open (25 s, then it asks the client to reconnect) and so cannot be part of a request-answer fuzz.

Here every request asks for the stream, with a generated ``Last-Event-ID`` header (and ``after`` for the UI's
stream, ``environment`` and ``project`` for OFREP's), reads the first event, and hangs up. Each answer is one the
document lists for the operation, never a 5xx; a 200 is an event stream that starts at once; a 400 names what
is wrong. Then the server is asked for something else: hung-up streams leave nothing behind that breaks it.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.helpers import auth_headers

SEED = int(os.environ.get("FLAGSTREAM_FUZZ_SEED") or random.SystemRandom().randrange(2**31))
EXAMPLES = int(os.environ.get("FLAGSTREAM_FUZZ_EXAMPLES") or 8) * 25
UI_STREAM = "/api/v1/projects/{project}/environments/{environment}/changes/stream"
OFREP_STREAM = "/ofrep/v1/events"

#: What a header may carry (Latin-1, no surrounding space), with the values that broke parsers before.
header_values = st.one_of(
    st.sampled_from(["", "0", "1", "¹", "²", "007", "-1", "9223372036854775807", "9223372036854775808", "1e3", "x"]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30),
)
junk_keys = st.one_of(
    st.sampled_from(["nope", "Ø", "a.b", "*", ">", "-", "x" * 65]),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="/?#%\x7f"), min_size=1, max_size=20
    ),
)
#: Half the requests name a project and an environment that exist, so they reach the stream's own parsing.
projects = st.one_of(st.just("default"), junk_keys)
environments = st.one_of(st.sampled_from(["development", "production"]), junk_keys)


def first_event(http: httpx.Client, path: str, **request: Any) -> tuple[int, str, bytes]:
    """(status, content type, the first chunk of the body) of a stream request; it hangs up after that chunk."""
    with http.stream("GET", path, **request) as response:
        chunk = next(response.iter_raw(), b"") if response.status_code == 200 else response.read()
        return response.status_code, response.headers.get("content-type", ""), chunk


def check(doc: dict[str, Any], template: str, status: int, kind: str, body: bytes) -> None:
    documented = doc["paths"][template]["get"]["responses"]
    assert str(status) in documented, (template, status, body[:300])
    assert status < 500, (template, status, body[:300])
    if status == 200:
        assert kind.startswith("text/event-stream"), kind
        assert body.startswith(b"retry: 1000\n"), body[:100]
    else:
        assert body, "an error names what is wrong"


def fuzz_streams(url: str) -> set[int]:
    seen: set[int] = set()
    with httpx.Client(base_url=url, headers=auth_headers(), timeout=30) as http:
        doc = http.get("/openapi.json").json()
        sse = {"Accept": "text/event-stream"}

        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(
            last=st.none() | header_values,
            after=st.none() | header_values,
            environment=environments,
            project=projects,
        )
        def one(last: str | None, after: str | None, environment: str, project: str) -> None:
            headers = {**sse, **({"Last-Event-ID": last.encode("latin-1")} if last is not None else {})}
            path = UI_STREAM.format(project=project, environment=environment)
            query = {"after": after} if after is not None else {}
            status, kind, body = first_event(http, path, headers=headers, params=query)
            check(doc, UI_STREAM, status, kind, body)
            seen.add(status)
            query = {"environment": environment, "project": project}
            status, kind, body = first_event(http, OFREP_STREAM, headers=headers, params=query)
            check(doc, OFREP_STREAM, status, kind, body)
            seen.add(status)

        one()
        assert http.get("/readyz").status_code == 200  # nothing the hung-up streams left behind broke it
    return seen


async def test_generated_stream_requests_answer_as_documented_and_hang_up_cleanly(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as http:
        for env in ("development", "production"):
            assert (await http.post("/api/v1/projects/default/environments", json={"key": env})).status_code == 201
    print(f"\nstream fuzz seed {SEED} (FLAGSTREAM_FUZZ_SEED={SEED} repeats it)")
    seen = await asyncio.to_thread(fuzz_streams, admin_url)  # the server runs in this loop: the client in a thread
    assert {200, 400} <= seen, seen  # streams were opened, and malformed requests refused
