"""Check what a restore brought back: every expected file present, right size, canaries, live source, content.

restic leaves damaged files out of a restore (and exits 0 for an ``--include`` that matched nothing), so each
expected file is looked for. Hashing runs on a small thread pool: hashlib releases the GIL, and a drill should
cost little more than restic's own restore.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from preuve.drills import content
from preuve.drills.content import BLOCK
from preuve.drills.result import Finding
from preuve.drills.sources import SourceMap, SourceReader, sha256_file
from preuve.errors import FailureClass

CHUNK = 1024 * 1024
WINDOW = 64  # files in flight at once: bounded memory for a full restore of millions of files
BATCH = 8  # files per task of the thread pool
MAX_HELD = 100_000  # checked files kept for deletion after restic's own --verify pass, at most
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


@dataclass
class _Read:
    """What one pass over a restored file gives: its SHA-256, the blocks the content checks look at, and whether
    the live file it was compared with (if any) holds the same bytes."""

    digest: str
    head: bytes
    mid: bytes
    same_as_live: bool | None  # None: not compared
    live_error: str = ""


def _read_exact(handle: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    while size > 0 and (part := handle.read(size)):
        parts.append(part)
        size -= len(part)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _read_once(path: Path, size: int, *, middle: bool, live: Path | None) -> _Read:
    """Read a restored file once: hash it, keep its first block (and middle block when ``middle``), and compare
    it byte for byte with ``live`` when given (equal bytes is what equal SHA-256 digests would say, without
    hashing the live file too)."""
    digest = hashlib.sha256()
    head = b""
    mid_parts: list[bytes] = []
    where = content.middle_range(size) if middle else None
    same: bool | None = None
    live_error = ""
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(path.open("rb", buffering=0))
        other: BinaryIO | None = None
        if live is not None:
            try:
                other = stack.enter_context(live.open("rb", buffering=0))
                same = True
            except OSError as exc:
                live_error = exc.strerror or str(exc)
        offset = 0
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if offset == 0:
                head = chunk[:BLOCK]
            if where is not None and offset < where[0] + where[1] and offset + len(chunk) > where[0]:
                mid_parts.append(chunk[max(0, where[0] - offset) : where[0] + where[1] - offset])
            if other is not None and same:
                try:
                    same = _read_exact(other, len(chunk)) == chunk
                except OSError as exc:
                    same, live_error = None, exc.strerror or str(exc)
            offset += len(chunk)
        if other is not None and same:
            try:
                same = not other.read(1)  # the live file must not be longer
            except OSError as exc:
                same, live_error = None, exc.strerror or str(exc)
    return _Read(digest.hexdigest(), head, b"".join(mid_parts), same, live_error)


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
        discard: bool = False,
    ) -> None:
        self.restore_dir = restore_dir
        self.canaries = canaries
        self.source = source
        self.source_map = source_map
        self.entropy_threshold = entropy_threshold
        self.workers = max(1, workers)
        # Delete each restored file once checked: the sandbox goes anyway, and unlinking here, spread over the
        # worker threads, costs less than a removal of the whole tree after the last file. While restic may still
        # read the files (its own --verify pass), deletions wait: see hold_discards.
        self.discard = discard
        self._discard_lock = threading.Lock()
        self._discard_open = threading.Event()
        self._discard_open.set()
        self._held: list[Path] = []

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
        live = self._live_counterpart(expected, outcome)
        local_live = self.source.local_path(live) if live is not None and self.source is not None else None
        read = _read_once(restored, st.st_size, middle=content.needs_middle(restored), live=local_live)
        digest = outcome.digest = read.digest
        declared = self.canaries.get(expected.path)
        if declared is not None and digest != declared:
            outcome.findings.append(
                Finding(
                    expected.path,
                    FailureClass.CONTENT_MISMATCH,
                    f"canary content differs: SHA-256 {digest[:16]}… instead of the declared {declared[:16]}…",
                )
            )
        verdict = content.check_blocks(
            restored, st.st_size, read.head, read.mid, entropy_threshold=self.entropy_threshold
        )
        if verdict is None and read.head.startswith(SQLITE_HEADER):
            verdict = content.check_sqlite(restored)
        if verdict is not None:
            outcome.suspicious = verdict.failure_class is FailureClass.SUSPICIOUS_CONTENT
            outcome.findings.append(Finding(expected.path, verdict.failure_class, verdict.detail))
        if live is not None:
            self._compare_source(expected, live, local_live, read, outcome)
        return outcome

    def _live_counterpart(self, expected: Expected, outcome: Outcome) -> str | None:
        """The live file to compare a restored file with: None when there is no source, when the file is not
        under it, or when it changed since the snapshot (``outcome`` then says so)."""
        if self.source is None or self.source_map is None:
            return None
        live = self.source_map.live_path(expected.path)
        if live is None:
            return None
        try:
            live_stat = self.source.stat(live)
        except OSError as exc:
            outcome.findings.append(
                Finding(expected.path, FailureClass.INTERNAL, f"cannot read the live source {live}: {exc}")
            )
            return None
        if live_stat is None or not live_stat.regular:
            outcome.changed = True  # removed or replaced since the snapshot: not a backup failure
            return None
        if live_stat.size != expected.size or not _same_mtime(
            expected.mtime, live_stat.mtime_ns, live_stat.mtime_resolution_ns
        ):
            outcome.changed = True  # modified after the snapshot
            return None
        return live

    def _compare_source(
        self, expected: Expected, live: str, local_live: Path | None, read: _Read, outcome: Outcome
    ) -> None:
        """Same size and modification time as the live file: the bytes must be the same too."""
        assert self.source is not None
        digest = read.digest
        if read.live_error:
            outcome.findings.append(
                Finding(expected.path, FailureClass.INTERNAL, f"cannot read the live source {live}: {read.live_error}")
            )
            return
        if read.same_as_live:
            return
        try:
            # a local file was compared while it was read; its digest is only needed to say how it differs
            live_digest = sha256_file(local_live) if local_live is not None else self.source.sha256(live)
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

    def verify(
        self,
        expected: Iterable[Expected],
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Report:
        """Check every expected file; ``stop`` ends the walk early (the drill failed meanwhile: the report is
        then incomplete and must not be used)."""
        report = Report()
        manifest = hashlib.sha256()
        if stop is not None:
            expected = itertools.takewhile(lambda _: not stop.is_set(), expected)
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

    def hold_discards(self) -> None:
        """Keep checked files until :meth:`release_discards`: restic is still reading them."""
        self._discard_open.clear()

    def release_discards(self) -> None:
        """Delete the files held so far; later ones go as soon as they are checked."""
        with self._discard_lock:
            self._discard_open.set()
            held, self._held = self._held, []
        # Unlinking is kernel work (freeing the pages and blocks) that runs in parallel across folders.
        threads = [
            threading.Thread(target=_unlink_all, args=(held[i :: self.workers],), name=f"discard-{i}", daemon=True)
            for i in range(1, self.workers)
        ]
        for thread in threads:
            thread.start()
        _unlink_all(held[:: self.workers])
        for thread in threads:
            thread.join()

    def _check(self, expected: Expected) -> Outcome:
        outcome = self.check_one(expected)
        if self.discard and outcome.restored:
            path = self.restored_path(expected.path)
            with self._discard_lock:
                hold = not self._discard_open.is_set()
                if hold and len(self._held) < MAX_HELD:
                    self._held.append(path)
                    return outcome
            if hold:
                self._discard_open.wait()  # memory stays bounded: this worker waits for restic to finish
            _unlink(path)
        return outcome

    def _check_batch(self, batch: list[Expected]) -> list[Outcome]:
        return [self._check(item) for item in batch]

    def _run(self, expected: Iterable[Expected]) -> Iterator[Outcome]:
        if self.workers <= 1:
            yield from map(self._check, expected)
            return
        items = iter(expected)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="verify") as pool:
            # a few files per task: a future per file costs as much as the checks of a small file
            window: deque[Future[list[Outcome]]] = deque()
            while batch := list(itertools.islice(items, BATCH)):
                window.append(pool.submit(self._check_batch, batch))
                if len(window) >= WINDOW // BATCH:
                    yield from window.popleft().result()
            for future in window:
                yield from future.result()


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only folder: Sandbox.cleanup opens it up and removes it
        path.unlink()


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        _unlink(path)


def cpu_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
