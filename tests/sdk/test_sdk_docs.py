"""docs/sdk.md: every Python block runs as written, in order, against a real nats-server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.helpers import publish_flag

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


async def _prepare(url: str) -> None:
    await publish_flag(url, "new-checkout")


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
