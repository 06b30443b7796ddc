"""Read-only access to a target's live source, to compare restored files with it.

A local path is read directly; ``sftp://HOST/path`` is read over SFTP with the NAS target's own key and pinned host
keys (paramiko, never auto-adding an unknown key). Sources are only ever read.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from preuve.config.model import SftpTarget
from preuve.errors import FailureClass, PreuveError
from preuve.targets import ssh

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SourceStat:
    size: int
    mtime_ns: int
    regular: bool
    mtime_resolution_ns: int  # 1 s over SFTP, 1 ns locally


class SourceReader(Protocol):
    def stat(self, path: str) -> SourceStat | None: ...

    def sha256(self, path: str) -> str: ...

    def local_path(self, path: str) -> Path | None:
        """The live file as a path this process can open itself (then compared while the restored copy is read),
        or None when it is only reachable through :meth:`sha256`."""
        ...

    def close(self) -> None: ...


class LocalSource:
    def stat(self, path: str) -> SourceStat | None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return SourceStat(st.st_size, st.st_mtime_ns, stat.S_ISREG(st.st_mode), 1)

    def sha256(self, path: str) -> str:
        return sha256_file(Path(path))

    def local_path(self, path: str) -> Path | None:
        return Path(path)

    def close(self) -> None:
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class SftpSource:
    def __init__(self, spec: SftpTarget, base: Path, *, timeout_s: float) -> None:
        client = ssh.connect(spec, base, timeout_s=timeout_s)
        self.client = client
        self.lock = threading.Lock()  # one SFTP channel: the verifier's threads take turns on it
        self.sftp = client.open_sftp()
        channel = self.sftp.get_channel()
        if channel is not None:
            channel.settimeout(timeout_s)

    def stat(self, path: str) -> SourceStat | None:
        try:
            with self.lock:
                st = self.sftp.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) == 2:
                return None
            raise
        mode = st.st_mode or 0
        return SourceStat(int(st.st_size or 0), int(st.st_mtime or 0) * 1_000_000_000, stat.S_ISREG(mode), 10**9)

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.lock, self.sftp.open(path, "rb") as handle:
            size = handle.stat().st_size or 0
            if size > CHUNK:
                handle.prefetch(size)  # pipelined reads; without a size paramiko may wait on an empty file
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def local_path(self, path: str) -> Path | None:
        return None  # on the NAS: hashed there through SFTP, then digests compared

    def close(self) -> None:
        self.sftp.close()
        self.client.close()


@dataclass(frozen=True)
class SourceMap:
    """Maps a path inside the snapshot to the live file: same path, or rebased when the source moved."""

    source_root: str
    snapshot_roots: tuple[str, ...]

    def live_path(self, snapshot_path: str) -> str | None:
        root = self.source_root.rstrip("/") or "/"
        if snapshot_path == root or snapshot_path.startswith(root.rstrip("/") + "/"):
            return snapshot_path
        if len(self.snapshot_roots) == 1:
            backed_up = self.snapshot_roots[0].rstrip("/")
            if snapshot_path.startswith(backed_up + "/"):
                return str(PurePosixPath(root) / snapshot_path[len(backed_up) + 1 :])
        return None


def open_source(source: str, spec: object, base: Path, *, timeout_s: float) -> tuple[SourceReader, str]:
    """The reader and the root path of a configured source."""
    if source.startswith("sftp://"):
        if not isinstance(spec, SftpTarget):
            raise PreuveError(FailureClass.INTERNAL, "an sftp:// source needs an sftp target")
        path = "/" + source[len("sftp://") :].split("/", 1)[1]
        return SftpSource(spec, base, timeout_s=timeout_s), path
    return LocalSource(), source
