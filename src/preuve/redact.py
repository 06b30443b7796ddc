"""One place that knows every secret value loaded, and masks them in any text.

Secrets are registered when they are read (password files, env files, SMTP passwords); every log record, stored
command output and error message goes through :func:`mask`. Masking is a backstop: secrets are never put in argv
or messages on purpose.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter strings would mask ordinary words; such passwords are refused elsewhere anyway

_lock = threading.Lock()
_secrets: set[str] = set()


def register(secret: str) -> None:
    value = secret.strip()
    if len(value) < _MIN_SECRET_LEN:
        return
    with _lock:
        _secrets.add(value)


def mask(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def registered_count() -> int:
    with _lock:
        return len(_secrets)


class RedactingFilter(logging.Filter):
    """Masks secrets in the final message of every record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: the handler reports it, masked
            message = ""
        masked = mask(message)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            # Rendered now, so that the traceback is masked before any formatter writes it (formatters reuse
            # exc_text when it is set).
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
