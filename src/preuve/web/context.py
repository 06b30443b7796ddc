"""What every request of the console needs: the store, the current configuration, the [web] settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from preuve.config.loader import Config, load_config
from preuve.config.model import WebSettings
from preuve.config.units import parse_duration
from preuve.errors import ConfigurationError
from preuve.store.db import Store
from preuve.store.records import sync_config
from preuve.web.status import READING_TTL_S, StatusBoard

log = logging.getLogger("preuve.web")

FILES_EVERY_S = 3.0  # how often `preuve web` alone looks for changed job, policy and settings files


def register_secrets(config: Config) -> None:
    """Read every target's secrets once so that :func:`preuve.redact.mask` knows them in this process too.

    Stored logs are masked when written; this is the backstop for anything else shown (messages, notes), whether
    the console runs inside the daemon (which read them already) or alone.
    """
    from preuve.targets.access import repo_access

    for target in config.targets():
        try:
            repo_access(target.spec, config.directory)
        except Exception as exc:  # a missing secret file is the drills' business, reported there
            log.debug("secrets of %s not read: %s", target.ref, type(exc).__name__)


class ConfigSource:
    """The configuration as of now: reloaded when a file changes; a broken edit keeps the previous one."""

    def __init__(self, directory: Path, store: Store, config: Config | None = None) -> None:
        self.directory = directory
        self._store = store
        self._lock = threading.Lock()
        self._config = config or load_config(directory)
        self._stamp = self._fingerprint()
        self._checked = time.monotonic()

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        files = [self.directory / "preuve.toml"]
        for folder in ("jobs", "policies"):
            if (self.directory / folder).is_dir():
                files += sorted((self.directory / folder).glob("*.y*ml"))
        found = []
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            found.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def __call__(self) -> Config:
        with self._lock:
            if time.monotonic() - self._checked < FILES_EVERY_S:
                return self._config
            self._checked = time.monotonic()
            stamp = self._fingerprint()
            if stamp == self._stamp:
                return self._config
            self._stamp = stamp
            try:
                config = load_config(self.directory)
            except ConfigurationError as exc:
                log.error(
                    "configuration not reloaded (%d problem(s), first: %s); the console keeps the previous one",
                    len(exc.problems),
                    exc.problems[0] if exc.problems else "?",
                    extra={"event": "web.config_invalid"},
                )
                return self._config
            sync_config(self._store, config)
            register_secrets(config)
            self._config = config
            return config


@dataclass
class WebContext:
    store: Store
    config: Callable[[], Config]
    settings: WebSettings
    board: StatusBoard = field(init=False)
    reading_ttl_s: float = READING_TTL_S

    def __post_init__(self) -> None:
        self.board = StatusBoard(self.store, ttl_s=self.reading_ttl_s)

    @property
    def session_lifetime(self) -> timedelta:
        return parse_duration(self.settings.session_lifetime)

    @property
    def lockout(self) -> timedelta:
        return parse_duration(self.settings.lockout)

    def keys_dir(self) -> Path:
        config = self.config()
        return config.path(config.settings.keys)
