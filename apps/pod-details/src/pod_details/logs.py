"""JSON logs on stdout, one object per line, for the app, for gunicorn itself, and for every request.

The standard library is enough for a formatter this small, and it keeps one more dependency out of the image.
Structured fields travel in `extra={"fields": {...}}` and become top-level keys of the line.

The per-request line is written by `AccessLog`, not through a Logger: the logging machinery (record, logger
hierarchy, handler locks, formatter, a write system call per line) cost about as much as Flask's own request
handling, for a line whose shape never changes. It writes the same JSON shape, and is on exactly when the
`pod_details.access` logger is enabled for INFO, so LOG_LEVEL governs it like every other line. Lines are written
in batches: when 64 are pending, and at least once a second by a background thread, and when a worker exits.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

_RESERVED = ("time", "level", "logger", "message", "pid")
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode

# Fields every line gets from the context it is written in (tracing.py sets it to the current trace and span ids
# when tracing is on); None costs one comparison per line.
_context_fields: Callable[[], dict[str, Any]] | None = None


def set_context_fields(fields: Callable[[], dict[str, Any]] | None) -> None:
    global _context_fields
    _context_fields = fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record. It runs once per request (the access line), so it avoids needless work."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which gunicorn worker (or the master) wrote it
        }
        if _context_fields is not None:
            doc.update(_context_fields())
        fields = getattr(record, "fields", None)
        if fields:
            doc.update((k, v) for k, v in fields.items() if k not in _RESERVED)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return _encode(doc)

    def _time(self, created: float) -> str:
        """RFC 3339 UTC with milliseconds; the date-and-seconds part is formatted once per second."""
        second = int(created)
        if second != self._second:  # a race between threads only formats the same prefix twice
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class AccessLog:
    """Writes one JSON line per request to stdout (or `stream`), in the JsonFormatter's shape, in batches."""

    name = "pod_details.access"
    batch = 64
    interval_seconds = 1.0

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._logger = logging.getLogger(self.name)
        self._clock = JsonFormatter()
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._flusher_pid = 0

    @property
    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def write(self, fields: dict[str, Any]) -> None:
        now = time.time()
        line = _encode(
            {
                "time": self._clock._time(now),
                "level": "INFO",
                "logger": self.name,
                "message": "request",
                "pid": os.getpid(),
                **fields,
            }
        )
        with self._lock:
            self._pending.append(line + "\n")
            if len(self._pending) >= self.batch:
                self._flush_locked()
            elif self._flusher_pid != os.getpid():
                # Threads do not survive fork: each process (gunicorn worker) starts its own flusher, lazily.
                self._flusher_pid = os.getpid()
                threading.Thread(target=self._flush_periodically, name="access-log-flush", daemon=True).start()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            # sys.stdout is looked up at each flush, so a replaced stdout (pytest's capture) is honoured.
            stream = self._stream or sys.stdout
            stream.write("".join(self._pending))
            stream.flush()
            self._pending.clear()

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(self.interval_seconds)
            self.flush()


def config_dict(level: str) -> dict[str, Any]:
    """A logging.config.dictConfig document; gunicorn's `logconfig_dict` takes it as is."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            # The app writes its own line per request (instrumentation.py); gunicorn's would be a duplicate.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }
