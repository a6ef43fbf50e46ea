"""Logging set-up for the service commands (``admin``, ``projector``, ``up``): plain text or one JSON object a line.

``--log-format json`` writes each record as ``{"time", "level", "logger", "message"}`` (plus ``exception`` with
the traceback, and any ``extra={...}`` fields given to the log call), for log shippers that parse JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Attributes every LogRecord has: anything else on a record came from ``extra=`` and is written too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-format text|json`` (``--log-level`` is each command's own)."""
    parser.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="log lines as text or JSON objects"
    )


def configure(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger once for the process (replacing handlers set earlier)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
