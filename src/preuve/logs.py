"""Structured logs: one line per event, secrets masked.

Off a terminal (under systemd, journald reads stderr) every record is one JSON object on one line::

    {"timestamp": "2025-01-31T02:00:04.123+00:00", "level": "INFO", "logger": "preuve.scheduler",
     "message": "drill 42 passed", "drill_id": 42, "target": "acme/nas", "client": "acme", "event": "drill.finished"}

``timestamp`` is ISO 8601 in UTC; every ``extra=`` field of the call is a key of its own; an exception's traceback is
the ``exception`` key (so it stays on the same line). On a terminal the same record reads as text, extras as
``key=value``. Every record goes through :class:`preuve.redact.RedactingFilter`, and each formatter masks what it
writes once more (extras, tracebacks, stack traces): a secret registered with :func:`preuve.redact.register` never
reaches the log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from preuve import redact

FORMAT_ENV = "PREUVE_LOG_FORMAT"  # "json" or "text": overrides the terminal test (e.g. in /etc/default/preuve)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Libraries whose DEBUG output is a flood (request dumps, per-job chatter): kept quieter than ours.
_NOISY = {
    "apscheduler": logging.WARNING,
    "botocore": logging.WARNING,
    "boto3": logging.WARNING,
    "s3transfer": logging.WARNING,
    "urllib3": logging.WARNING,
    "paramiko": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "alembic": logging.WARNING,
}


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call passed with ``extra=``, in the order they were given."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD and not key.startswith("_")}


def _plain(value: Any) -> Any:
    """A JSON-ready copy of ``value`` with every string masked (before encoding: escaping could hide a secret)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, str):
        return redact.mask(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return redact.mask(str(value))
    if isinstance(value, Mapping):
        return {redact.mask(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return redact.mask(str(value))


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return redact.mask(record.exc_text or "")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact.mask(record.getMessage()),
        }
        for key, value in extras(record).items():
            if key not in event:  # an extra cannot overwrite the four fixed keys
                event[key] = _plain(value)
        exception = _exception_text(self, record)
        if exception:
            event["exception"] = exception
        if record.stack_info:
            event["stack"] = redact.mask(self.formatStack(record.stack_info))
        return redact.mask(json.dumps(event, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, logger, message, then the extras as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = redact.mask(record.getMessage())
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        fields = extras(record)
        if fields:
            line += "  " + " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        exception = _exception_text(self, record)
        if exception:
            line += "\n" + exception
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact.mask(line)


def _text(value: Any) -> str:
    plain = _plain(value)
    text = plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False, default=str)
    return json.dumps(text, ensure_ascii=False) if (not text or any(c.isspace() for c in text)) else text


class _Handler(logging.StreamHandler[TextIO]):
    """A stream handler whose own failures (a record that cannot be formatted) are reported masked, on one line.

    logging's default prints the whole traceback with the record's arguments, unmasked.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        if not logging.raiseExceptions or self.stream is None:
            return
        _, exc, _ = sys.exc_info()
        try:
            self.stream.write(
                redact.mask(
                    f"--- logging error: {type(exc).__name__}: {exc} (logger {record.name}, "
                    f"{record.pathname}:{record.lineno}, message {record.msg!r})"
                )
                + self.terminator
            )
            self.flush()
        except (OSError, ValueError):  # the stream is closed or broken: nothing better to do
            pass


def wants_json(stream: TextIO, json_format: bool | None = None) -> bool:
    """JSON unless asked otherwise, or unless ``stream`` is a terminal."""
    if json_format is not None:
        return json_format
    chosen = os.environ.get(FORMAT_ENV, "").strip().lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return True


def setup_logging(verbose: bool = False, *, json_format: bool | None = None, level: int | None = None) -> None:
    """Send every log record to stderr, one line per event, secrets masked.

    ``json_format``: True for JSON lines, False for text, None to decide: ``$PREUVE_LOG_FORMAT`` (json or text) if
    set, else JSON when stderr is not a terminal. ``level``: INFO by default (the daemon's), DEBUG with
    ``verbose``; a command that should stay quiet passes ``logging.WARNING``. Calling it again replaces the
    previous set-up (the handlers of the root logger).
    """
    stream = sys.stderr
    handler = _Handler(stream)
    handler.addFilter(redact.RedactingFilter())
    handler.setFormatter(JsonFormatter() if wants_json(stream, json_format) else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        if old is not handler:
            old.close()
    root.addHandler(handler)
    chosen = level if level is not None else (logging.DEBUG if verbose else logging.INFO)
    root.setLevel(chosen)
    for name, quiet in _NOISY.items():
        # Quieter than ours, never louder: `-v` shows our DEBUG lines, not every HTTP header botocore sends.
        logging.getLogger(name).setLevel(max(quiet, chosen))
