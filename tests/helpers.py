"""Helpers shared by the tests: waiting on a condition (never on a sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], object], within: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate()`` until it is truthy; fail after ``within`` seconds (generous: CI machines are noisy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        await asyncio.sleep(0.005)


#: The operator token the test fixtures start the admin service with.
ADMIN_TOKEN = "fs_test_operator_token_0123456789"


def auth_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    """Headers for an authenticated admin API call (every HTTP call of a test should send them)."""
    return {"Authorization": f"Bearer {token}"}
