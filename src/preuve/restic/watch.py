"""What :class:`preuve.restic.runner.Restic` tells an observer while it runs commands: the seam that lets a drill's
restore log be written as it grows (:mod:`preuve.drills.live`) without the restic layer knowing about the store.

``seq`` is the command's position in the restore log, from 1, taken when it starts (commands may run side by side):
the one it keeps in ``Restic.log`` once it ends or is stopped.
Calls come from the drill's thread (``started``, ``stdout_line``, ``finished``, ``abandoned``) and from the thread
reading the process's stderr (``stderr_line``); a watcher must be quick and must never raise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from preuve.drills.result import CommandLog


class CommandWatcher(Protocol):
    def started(self, seq: int, argv: tuple[str, ...], started_at: datetime) -> None:
        """A process is about to start; ``argv`` is already masked."""

    def stdout_line(self, seq: int) -> None:
        """One more stdout line (counted, not kept: ``ls --json`` prints millions)."""

    def stderr_line(self, seq: int, line: str) -> None:
        """One stderr line as restic printed it (not yet masked)."""

    def finished(self, seq: int, command: CommandLog) -> None:
        """The command ended and is now ``Restic.log[seq - 1]``."""

    def abandoned(self, seq: int, reason: str) -> None:
        """The command was stopped (cancelled, interrupted); ``Restic.log[seq - 1]`` says so, with no exit code."""
