"""What a drill produces: plain data, independent of how it is stored or printed."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from preuve.errors import FailureClass
from preuve.restic.parse import Snapshot


class DrillStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"  # a problem with the backup
    ERROR = "error"  # could not verify
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self not in (DrillStatus.QUEUED, DrillStatus.RUNNING)


class DrillKind(enum.StrEnum):
    SAMPLE = "sample"
    FULL = "full"
    INTEGRITY = "integrity"


@dataclass(frozen=True)
class CommandLog:
    """One process run during a drill, as a provider reviews it: secrets already masked."""

    argv: tuple[str, ...]
    started_at: datetime
    duration_s: float
    exit_code: int | None  # None when killed by us at the deadline or on interrupt
    stdout: str
    stderr: str
    timed_out: bool = False
    note: str = ""  # e.g. "stdout: 3196 lines, first 64 KiB kept"
    # Still running when this was written (the live restore log): duration so far, stderr's last lines, no exit code.
    running: bool = False


@dataclass(frozen=True)
class Finding:
    """One file (or object) that did not verify."""

    path: str
    failure_class: FailureClass
    detail: str


@dataclass
class DrillResult:
    status: DrillStatus
    kind: DrillKind
    failure_class: FailureClass | None = None
    message: str = ""
    snapshot_id: str | None = None
    snapshot_time: datetime | None = None
    files_in_snapshot: int = 0
    bytes_in_snapshot: int = 0
    files_checked: int = 0
    files_changed_since_snapshot: int = 0
    bytes_restored: int = 0
    restore_s: float = 0.0
    duration_s: float = 0.0
    estimated_full_restore_s: float | None = None
    restic_version: str = ""
    host: str = ""
    preuve_version: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    findings: list[Finding] = field(default_factory=list)
    log: list[CommandLog] = field(default_factory=list)
    canaries_checked: int = 0
    sample_budget_limited: bool = False
    manifest_sha256: str = ""  # digest of (path, sha256) of every verified file
    snapshots: list[Snapshot] = field(default_factory=list)  # as listed when the drill opened the repository
    subset: str | None = None  # integrity runs: the "n/t" part read by `restic check --read-data-subset`
