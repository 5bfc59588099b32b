"""Log set-up for ``streamhub serve``: level and format from the command line or the environment.

Why a module: operators feed the log to a collector, which wants one JSON object per line (``--log-format json``),
while a person at a terminal wants text; and a mistyped level (``--log-level verbose``) must say so in one line
instead of dying in ``logging`` with a traceback.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

from streamhub.errors import ConfigError

__all__ = ["LEVELS", "LOG_FORMATS", "JsonFormatter", "configure_logging", "parse_level"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_level(value: str, source: str) -> int:
    """The ``logging`` level a user wrote (any case); ``ConfigError`` naming ``source`` for anything else."""
    name = value.strip().upper()
    name = _ALIASES.get(name, name)
    if name not in LEVELS:
        raise ConfigError(f"{source}: unknown log level {value!r} (use one of {', '.join(LEVELS)})")
    level: int = getattr(logging, name)
    return level


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``exception``.

    The message is formatted with its arguments first, so a collector sees exactly what the text format shows;
    ``exception`` (the traceback text) is present only when the record carries one.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: int, log_format: str, stream: TextIO | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (stderr) as text or JSON lines."""
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"--log-format: unknown format {log_format!r} (use {' or '.join(LOG_FORMATS)})")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
