"""One JSON object per log line (log_format: json), for log collectors."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import orjson


class JsonFormatter(logging.Formatter):
    """Render a record as {"time", "level", "logger", "message"[, "exception"]} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            # Structured lines (the access log) carry their values as fields, not only as text.
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()
