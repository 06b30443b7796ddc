"""Failure classes and the errors that carry them.

Every failure Preuve reports has a class (what kind of problem) and a sentence a technician can act on.
The class decides the drill status: a problem *with the backup* is ``failed``; a problem that kept Preuve
from verifying is ``error``.
"""

from __future__ import annotations

import enum


class FailureClass(enum.StrEnum):
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    REPO_MISSING = "repo-missing"
    REPO_LOCKED = "repo-locked"
    CORRUPT_DATA = "corrupt-data"
    MISSING_SNAPSHOT = "missing-snapshot"
    CONTENT_MISMATCH = "content-mismatch"
    SUSPICIOUS_CONTENT = "suspicious-content"
    SANDBOX = "sandbox"
    TIMEOUT = "timeout"
    INTERNAL = "internal"

    @property
    def is_backup_problem(self) -> bool:
        """True when the backup itself is wrong (drill ``failed``), False when we could not verify (``error``)."""
        return self in _BACKUP_PROBLEMS

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_BACKUP_PROBLEMS = frozenset(
    {
        FailureClass.REPO_MISSING,
        FailureClass.CORRUPT_DATA,
        FailureClass.MISSING_SNAPSHOT,
        FailureClass.CONTENT_MISMATCH,
        FailureClass.SUSPICIOUS_CONTENT,
    }
)

# What a technician should do next, per class; appended to the specific message.
_ADVICE: dict[FailureClass, str] = {
    FailureClass.UNREACHABLE: "Check that the storage is powered on, reachable from this server (network, VPN, "
    "firewall) and that the address and port in the job file are right.",
    FailureClass.AUTH: "Check the credentials in the job file: the repository password file, the SSH key and "
    "its authorisation on the NAS, or the S3 keys in the env file.",
    FailureClass.REPO_MISSING: "No restic repository is at the configured location: check the path, bucket or "
    "URL in the job file, or whether the repository was moved or deleted.",
    FailureClass.REPO_LOCKED: "Another restic process holds a lock on the repository. If that process is gone, "
    "remove the stale lock with `restic unlock` on the client; the client's own backups are blocked meanwhile.",
    FailureClass.CORRUPT_DATA: "The repository is damaged: run `restic check --read-data` on it, repair or "
    "replace the damaged copy, and take a fresh backup.",
    FailureClass.MISSING_SNAPSHOT: "The expected snapshot is not in the repository: check that the client's "
    "backup job runs and that no snapshot was deleted.",
    FailureClass.CONTENT_MISMATCH: "Restored files differ from what they should be: compare the listed files "
    "with the source and take a fresh backup; investigate disk or memory faults on the source.",
    FailureClass.SUSPICIOUS_CONTENT: "Files in the backup look encrypted or damaged, a sign of ransomware: "
    "inspect the listed files on the source now, and keep the older snapshots.",
    FailureClass.SANDBOX: "The sandbox folder on this server cannot take the restore: free space there or "
    "point `sandbox` in preuve.toml at a larger disk.",
    FailureClass.TIMEOUT: "The storage accepted the connection but did not answer in time: check the server's "
    "health and load, or raise the deadline in preuve.toml if the link is just slow.",
    FailureClass.INTERNAL: "This is a fault in Preuve or restic itself: keep the restore log and report it.",
}


class PreuveError(Exception):
    """An error with a failure class and a message meant for a technician.

    The message must never contain a secret; callers pass text through the redactor before building it.
    """

    def __init__(self, failure_class: FailureClass, message: str) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def full_message(self) -> str:
        return f"{self.message} {self.failure_class.advice}"


class ConfigurationError(Exception):
    """Bad configuration: one or more located problems (file:line: key: what is wrong)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
