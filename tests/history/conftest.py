"""Fixtures of the history tests: the admin API with a projector and its read model (history, time travel)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import WithHistory, admin_with_history


@pytest.fixture
async def api(nats_url: str, tmp_path: Path) -> AsyncIterator[WithHistory]:
    """The admin app in-process (ASGI) with every route answering, signed in as the operator."""
    async with admin_with_history(nats_url, tmp_path, http_timeout=120) as found:
        yield found
