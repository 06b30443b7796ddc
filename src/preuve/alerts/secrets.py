"""The alert channels' own secret: the SMTP password, read from its file and registered for masking."""

from __future__ import annotations

import contextlib

from preuve.config.loader import Config
from preuve.errors import PreuveError
from preuve.targets.access import read_secret_file


def smtp_password(config: Config) -> str | None:
    """The SMTP password from ``smtp.password_file`` (None when not set); PreuveError (``auth``) naming the file."""
    smtp = config.settings.smtp
    if not smtp.password_file:
        return None
    return read_secret_file(config.path(smtp.password_file), "SMTP password file")


def register_secrets(config: Config) -> None:
    """Read the SMTP password only so that it is masked in whatever is recorded or rendered next, even before
    the first connection to the server; a missing or unreadable file is reported when sending."""
    with contextlib.suppress(PreuveError):
        smtp_password(config)
