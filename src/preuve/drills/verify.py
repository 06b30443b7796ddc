"""Check what a restore brought back: every expected file present, right size, canaries, live source, content.

restic leaves damaged files out of a restore (and exits 0 for an ``--include`` that matched nothing), so each
expected file is looked for. Hashing runs on a small thread pool: hashlib releases the GIL, and a drill should
cost little more than restic's own restore.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from preuve.drills import content
from preuve.drills.result import Finding
from preuve.drills.sources import SourceMap, SourceReader
from preuve.errors import FailureClass

CHUNK = 1024 * 1024
WINDOW = 64  # files in flight at once: bounded memory for a full restore of millions of files
SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Expected:
    path: str  # absolute, as in the snapshot
    size: int
    mtime: datetime | None


@dataclass
class Outcome:
    path: str
    findings: list[Finding] = field(default_factory=list)
    restored: bool = False
    changed: bool = False
    bytes: int = 0
    canary: bool = False
    suspicious: bool = False
    digest: str = ""


@dataclass
class Report:
    files_checked: int = 0
    files_missing: int = 0
    files_changed_since_snapshot: int = 0
    bytes_verified: int = 0
    canaries_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    suspicious: int = 0
    # a digest over (path, sha256) of every verified file, in listing order: evidence of exactly what came back
    manifest_sha256: str = ""


def _hash(path: Path) -> tuple[str, bytes]:
    """SHA-256 of the whole file and its first 16 bytes (for format checks without another open)."""
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as handle:
        head = handle.read(CHUNK)
        digest.update(head)
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), head[:16]


def _same_mtime(listed: datetime | None, live_ns: int, resolution_ns: int) -> bool:
    if listed is None:
        return False
    listed_ns = int(listed.timestamp()) * 1_000_000_000 + listed.microsecond * 1000
    return abs(listed_ns - live_ns) < max(resolution_ns, 1000)


class Verifier:
    def __init__(
        self,
        restore_dir: Path,
        *,
        canaries: dict[str, str],
        source: SourceReader | None = None,
        source_map: SourceMap | None = None,
        entropy_threshold: float = 7.8,
        workers: int = 2,
    ) -> None:
        self.restore_dir = restore_dir
        self.canaries = canaries
        self.source = source
        self.source_map = source_map
        self.entropy_threshold = entropy_threshold
        self.workers = workers

    def restored_path(self, snapshot_path: str) -> Path:
        return self.restore_dir / snapshot_path.lstrip("/")

    def check_one(self, expected: Expected) -> Outcome:
        outcome = Outcome(expected.path, canary=expected.path in self.canaries)
        restored = self.restored_path(expected.path)
        try:
            st = restored.lstat()
        except FileNotFoundError:
            outcome.findings.append(
                Finding(expected.path, FailureClass.CORRUPT_DATA, "not restored: restic left the file out")
            )
            return outcome
        if not stat.S_ISREG(st.st_mode):
            outcome.findings.append(
                Finding(expected.path, FailureClass.CORRUPT_DATA, "restored, but not as a regular file")
            )
            return outcome
        outcome.restored = True
        outcome.bytes = st.st_size
        if st.st_size != expected.size:
            outcome.findings.append(
                Finding(
                    expected.path,
                    FailureClass.CORRUPT_DATA,
                    f"restored with {st.st_size} bytes but the snapshot lists {expected.size}",
                )
            )
            return outcome
        digest, head = _hash(restored)
        outcome.digest = digest
        declared = self.canaries.get(expected.path)
        if declared is not None and digest != declared:
            outcome.findings.append(
                Finding(
                    expected.path,
                    FailureClass.CONTENT_MISMATCH,
                    f"canary content differs: SHA-256 {digest[:16]}… instead of the declared {declared[:16]}…",
                )
            )
        verdict = content.check_file(restored, entropy_threshold=self.entropy_threshold)
        if verdict is None and head.startswith(SQLITE_HEADER):
            verdict = content.check_sqlite(restored)
        if verdict is not None:
            outcome.suspicious = verdict.failure_class is FailureClass.SUSPICIOUS_CONTENT
            outcome.findings.append(Finding(expected.path, verdict.failure_class, verdict.detail))
        self._compare_source(expected, digest, outcome)
        return outcome

    def _compare_source(self, expected: Expected, digest: str, outcome: Outcome) -> None:
        if self.source is None or self.source_map is None:
            return
        live = self.source_map.live_path(expected.path)
        if live is None:
            return
        try:
            live_stat = self.source.stat(live)
        except OSError as exc:
            outcome.findings.append(
                Finding(expected.path, FailureClass.INTERNAL, f"cannot read the live source {live}: {exc}")
            )
            return
        if live_stat is None or not live_stat.regular:
            outcome.changed = True  # removed or replaced since the snapshot: not a backup failure
            return
        if live_stat.size != expected.size or not _same_mtime(
            expected.mtime, live_stat.mtime_ns, live_stat.mtime_resolution_ns
        ):
            outcome.changed = True  # modified after the snapshot
            return
        try:
            live_digest = self.source.sha256(live)
        except OSError as exc:
            outcome.findings.append(
                Finding(expected.path, FailureClass.INTERNAL, f"cannot read the live source {live}: {exc}")
            )
            return
        if live_digest != digest:
            outcome.findings.append(
                Finding(
                    expected.path,
                    FailureClass.CONTENT_MISMATCH,
                    "same size and modification time as the live file, but different bytes "
                    f"(restored {digest[:16]}…, live {live_digest[:16]}…)",
                )
            )

    def verify(self, expected: Iterable[Expected], progress: Callable[[int], None] | None = None) -> Report:
        report = Report()
        manifest = hashlib.sha256()
        for outcome in self._run(expected):
            report.files_checked += 1
            report.bytes_verified += outcome.bytes if outcome.restored else 0
            report.files_missing += 0 if outcome.restored else 1
            report.files_changed_since_snapshot += int(outcome.changed)
            report.canaries_checked += int(outcome.canary)
            report.suspicious += int(outcome.suspicious)
            report.findings.extend(outcome.findings)
            manifest.update(f"{outcome.path}\0{outcome.digest or '-'}\n".encode())
            if progress is not None:
                progress(report.files_checked)
        report.manifest_sha256 = manifest.hexdigest()
        return report

    def _run(self, expected: Iterable[Expected]) -> Iterator[Outcome]:
        if self.workers <= 1:
            yield from map(self.check_one, expected)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="verify") as pool:
            window: list[Future[Outcome]] = []
            for item in expected:
                window.append(pool.submit(self.check_one, item))
                if len(window) >= WINDOW:
                    yield window.pop(0).result()
            for future in window:
                yield future.result()


def cpu_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
