"""Admin feature module: ui (see registry.py for the contract)."""

from __future__ import annotations

from .routes import Endpoint

ENDPOINTS: list[Endpoint] = []
