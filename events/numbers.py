"""Whole numbers a client may name (a stream sequence, a version, a page size), read one way everywhere.

``str.isdigit()`` is not the test: it accepts ``'¹'`` and ``'²'`` (which ``int`` refuses) and ``int`` reads
``'٣'`` as 3; and Python's ints have no bound while SQLite's and JetStream's stop at 64 bits. A number from a URL,
a header or a JSON body is ASCII digits, from 0 to ``MAX_SEQ``.
"""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

#: The largest stream sequence (or version, or count) a request may name: SQLite's signed 64-bit range, which
#: JetStream's unsigned sequences never reach.
MAX_SEQ = 2**63 - 1

#: A stream sequence in a JSON body: 0 to ``MAX_SEQ`` (anything else is a 422 naming the field).
Seq = Annotated[int, Meta(ge=0, le=MAX_SEQ)]

_DIGITS = re.compile(r"[0-9]{1,19}")


def whole_number(text: str, maximum: int = MAX_SEQ) -> int | None:
    """``text`` (surrounding spaces aside) as a whole number from 0 to ``maximum``, if it is one written in ASCII
    digits; else None."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None
