"""``--log-format json``: one JSON object a line, for log collectors.

Each record is ``{"time", "level", "logger", "role", "message"}`` (``role``: "master" or
"worker #N", as the text format's), plus ``"exception"`` with the traceback's text when the
record has one. Installed by the command line only; the library installs no handler.
"""

from __future__ import annotations

import json
import logging

__all__ = ["JSONFormatter"]


class JSONFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "role": self.role,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
