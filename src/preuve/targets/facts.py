"""What a probe learns about a target, without restoring anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from preuve.errors import FailureClass
from preuve.restic.parse import Snapshot
from preuve.targets.snapshot_stats import SnapshotStats


@dataclass
class ProbeResult:
    ok: bool
    started_at: datetime
    finished_at: datetime
    failure_class: FailureClass | None = None
    message: str = ""
    reachable: bool | None = None
    credentials_ok: bool | None = None
    repository_opens: bool | None = None
    repository_id: str | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    restic_version: str = ""
    host: str = ""
    preuve_version: str = ""
    # Kind-specific facts, e.g. {"s3": {"bucket_exists": true, "versioning": "Enabled",
    # "object_lock": true, "default_retention": {"mode": "COMPLIANCE", "days": 30}},
    # "sftp": {"free_bytes": 123, "total_bytes": 456}}
    facts: dict[str, Any] = field(default_factory=dict)
    # Sizes and changes of the few snapshots measured during this probe (those asked for; see probe_target).
    snapshot_stats: list[SnapshotStats] = field(default_factory=list)

    @property
    def newest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None
