"""Structured logging: one line per event (logfmt or JSON), job id included, no secrets."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(logging.makeLogRecord({}).__dict__)


class _EventFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self._json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            fields["error"] = repr(record.exc_info[1])
        if self._json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items())


def _logfmt(value: Any) -> str:
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    # Quoted, with every control or format character escaped (json.dumps escapes those below
    # U+0020 only): a value can never end the line, colour a terminal or hide text.
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in quoted)


def masked(text: str) -> str:
    """What a log line shows of a value that may be a secret (a user name that is no user's
    may be a password typed in the wrong field): a short hash, the same for the same value."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger once for the process (UTC timestamps)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = _EventFormatter(fmt == "json")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (aiosmtpd logs every command at INFO, pikepdf its import) is not one line
    # per event.
    for noisy in (
        *("mail.log", "httpx", "httpcore", "uvicorn", "uvicorn.error", "aiosqlite"),
        "pikepdf._core",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def one_shot_level(level: str) -> str:
    """A one-shot command prints its result: its routine events (info) stay quiet, while
    warnings, errors and a configured debug level still show (on standard error)."""
    return "warning" if level.lower() == "info" else level


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (pass job=... for anything about a job).

    Field names that LogRecord reserves are suffixed: a log line must never raise."""
    safe = {
        f"{k}_" if k in _RESERVED or k in ("message", "asctime") else k: v
        for k, v in fields.items()
    }
    logger.log(level, event, extra=safe)
