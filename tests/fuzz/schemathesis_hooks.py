"""Schemathesis hooks of the API fuzz (``tests/fuzz/test_fuzz_api.py``, ``make fuzz``), loaded by the ``st``
process through ``SCHEMATHESIS_HOOKS``. Applied to every request of every phase, just before it is sent:

* in the coverage and fuzzing phases, half of the requests with path parameters (chosen by a hash of the
  generated values, so the same case is always treated alike) are pointed at entities that exist
  (``FLAGSTREAM_FUZZ_PINS``, JSON), so writes reach the decision and validation code and not only the 404 of
  an unknown environment; the other half keep the generated values, which exercise key validation. The
  stateful phase is left alone: it follows the links from what it created (pointing it elsewhere would ask for
  another entity than the one it checks);
* every webhook URL becomes the test's own receiver on 127.0.0.1 (``FLAGSTREAM_FUZZ_RECEIVER``): no generated
  request may make the admin send traffic off this machine. The address policy that refuses other URLs has its
  own tests (``tests/webhooks/test_webhooks_ssrf.py``, and the property test beside this file).
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import schemathesis

PINS: dict[str, Any] = json.loads(os.environ.get("FLAGSTREAM_FUZZ_PINS", "{}"))
RECEIVER = os.environ.get("FLAGSTREAM_FUZZ_RECEIVER", "")


def _pins_for(path: str) -> dict[str, str]:
    """The existing entity for each path parameter of ``path`` (``id`` depends on what the path is about)."""
    pins = dict(PINS.get("keys", {}))
    for marker, name in (("/webhooks/", "webhook"), ("/schedules/", "schedule"), ("/tokens/", "token")):
        if marker in path and name in PINS:
            pins["id"] = PINS[name]
    return pins


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    stateful = case.meta is not None and case.meta.phase.name.value == "stateful"
    pin = not stateful and zlib.crc32(repr(sorted((case.path_parameters or {}).items())).encode()) % 2 == 0
    if case.path_parameters and pin:
        pins = _pins_for(case.operation.path)
        case.path_parameters = {name: pins.get(name, value) for name, value in case.path_parameters.items()}
    if "/webhooks" in case.operation.path and isinstance(case.body, dict) and isinstance(case.body.get("url"), str):
        case.body = {**case.body, "url": RECEIVER}
