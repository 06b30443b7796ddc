"""The measured facts policy rules are evaluated over: plain data read from the store and configuration.

Rules never query anything themselves; :func:`gather` (in :mod:`preuve.policies.gather`) builds these from the
store, and tests build them by hand.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SnapshotFact:
    id: str
    time: datetime  # when restic took it
    first_seen_at: datetime  # when a probe or drill first listed it
    last_seen_at: datetime
    gone_at: datetime | None  # first listing that no longer showed it (forgotten, or deleted by an attacker)
    hostname: str = ""
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    size_bytes: int | None = None  # restore size (restic stats), when measured
    file_count: int | None = None
    changed_files: int | None = None  # files changed/added/removed against the previous snapshot (restic diff)


@dataclass(frozen=True)
class DrillFact:
    id: int
    kind: str  # sample | full | integrity
    status: str  # passed | failed | error | interrupted | queued | running
    failure_class: str | None
    requested_at: datetime
    finished_at: datetime | None
    snapshot_id: str | None = None
    snapshot_time: datetime | None = None
    files_checked: int = 0
    bytes_in_snapshot: int = 0
    estimated_full_restore_s: float | None = None
    restore_s: float | None = None
    canaries_checked: int = 0
    failed_canaries: tuple[str, ...] = ()  # canary paths with a finding in this drill
    subset: str | None = None  # integrity runs: "n/t" read by `check --read-data-subset`


@dataclass(frozen=True)
class ProbeFact:
    id: int
    at: datetime
    ok: bool
    failure_class: str | None
    facts: dict[str, Any] = field(default_factory=dict)  # e.g. {"s3": {"object_lock": true, ...}}


@dataclass(frozen=True)
class TargetFacts:
    ref: str  # client/target
    name: str
    kind: str  # local | sftp | s3 | rest
    location: str  # onsite | offsite
    media: str
    source: str | None
    password_file: Path | None
    canaries: tuple[str, ...] = ()
    append_only: bool = False  # REST: declared by the provider, not verifiable
    snapshots: tuple[SnapshotFact, ...] = ()  # every snapshot ever seen, oldest first, gone ones included
    drills: tuple[DrillFact, ...] = ()  # oldest first
    probes: tuple[ProbeFact, ...] = ()  # oldest first


@dataclass(frozen=True)
class ClientFacts:
    client_id: str
    name: str
    targets: tuple[TargetFacts, ...]


class Verdict(enum.StrEnum):
    MET = "met"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


# The frameworks each rule serves, printed in reports and attestations.
ISO27001 = "ISO/IEC 27001:2022 A.8.13"
NIS2 = "NIS2 Implementing Regulation (EU) 2024/2690, annex 4.2"
ANSSI = "ANSSI hygiene guide, measure 37"
HDS = "HDS activity 6 (health data)"


@dataclass(frozen=True)
class RuleResult:
    rule: str  # rpo | rto | drill-frequency | integrity-coverage | retention | copies | immutability | secrets |
    # anomalies | vanished-snapshots | canaries
    target: str | None  # client/target, or None for client-wide rules
    verdict: Verdict
    value: Any  # the measured value (JSON-serialisable: numbers, strings, lists, dicts)
    threshold: Any
    reason: str  # one sentence a technician or a client's manager can read
    evidence: dict[str, list[Any]] = field(
        default_factory=dict
    )  # {"drills": [ids], "snapshots": [ids], "probes": [ids]}
    references: tuple[str, ...] = ()
