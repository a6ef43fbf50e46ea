"""docs/sdk.md: every Python block runs as written, in order, against a real nats-server."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest

from flagstream.events import Flag, FlagCreated, encode_event, subject
from flagstream.services.stream import ensure_stream

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


async def _prepare(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    event = FlagCreated(project="default", environment="production", actor="docs", at=datetime.now(UTC),
                        flag=Flag(key="new-checkout", on=True))  # fmt: skip
    await js.publish(subject("default", "production", "flag", "new-checkout"), encode_event(event))
    await nc.close()


def test_every_python_block_of_the_sdk_guide_runs(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_prepare(nats_url))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 10
    namespace: dict[str, object] = {"NATS_URL": nats_url, "__name__": "sdk_guide"}
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{DOC.name} python block {i + 1}", "exec"), namespace)
    finally:
        for name in ("client", "offline", "test_client"):
            client = namespace.get(name)
            if client is not None:
                client.close()  # type: ignore[attr-defined]
    assert (tmp_path / "flagstream-production.json").exists()
    assert namespace["exposures"]
