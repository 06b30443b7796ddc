"""Parsers for restic's JSON output, tolerant across versions 0.14 to 0.19.

Unknown message types and unknown fields are kept (``extra``), never fatal: a newer restic must not break a drill.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(text: str) -> datetime:
    """restic's RFC 3339 times with nanoseconds and an offset, as an aware datetime in UTC."""
    cleaned = _FRACTION.sub(r"\1", text.strip(), count=1)
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    value = datetime.fromisoformat(cleaned)
    if value.tzinfo is None:  # `key list` prints local times without offset; restic runs in UTC here
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime
    paths: tuple[str, ...]
    hostname: str = ""
    username: str = ""
    tags: tuple[str, ...] = ()
    tree: str = ""
    parent: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Snapshot:
        snapshot_id = str(obj["id"])
        return cls(
            id=snapshot_id,
            short_id=str(obj.get("short_id") or snapshot_id[:8]),
            time=parse_time(str(obj["time"])),
            paths=tuple(str(p) for p in obj.get("paths") or ()),
            hostname=str(obj.get("hostname", "")),
            username=str(obj.get("username", "")),
            tags=tuple(str(t) for t in obj.get("tags") or ()),
            tree=str(obj.get("tree", "")),
            parent=str(obj["parent"]) if obj.get("parent") else None,
        )


def parse_snapshots(text: str) -> list[Snapshot]:
    """``snapshots --json``: one array (0.14 to 0.19), oldest first. Sorted by time to be safe."""
    data = json.loads(text) if text.strip() else []
    if not isinstance(data, list):
        raise ValueError("restic snapshots --json did not print a JSON array")
    snapshots = [Snapshot.from_json(item) for item in data if isinstance(item, dict)]
    return sorted(snapshots, key=lambda s: s.time)


@dataclass(frozen=True)
class Node:
    """One entry of ``ls --json``; symlinks carry no target and files no content hash."""

    path: str
    type: str  # file | dir | symlink | (others on newer versions: dev, fifo, socket ...)
    size: int
    mtime: datetime | None
    mode: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Unknown:
    """A JSON line of a kind this version of Preuve does not know; kept for the log."""

    kind: str
    data: dict[str, Any]


LsItem = Snapshot | Node | Unknown

_NODE_KEYS = {"name", "type", "path", "size", "mtime", "mode", "struct_type", "message_type"}


def parse_ls_line(line: str) -> LsItem | None:
    """One line of ``ls --json``. 0.14 tags lines with ``struct_type``; 0.17+ with ``message_type``."""
    line = line.strip()
    if not line:
        return None
    obj = json.loads(line)
    if not isinstance(obj, dict):
        return Unknown("non-object", {"value": obj})
    kind = obj.get("message_type") or obj.get("struct_type") or ""
    if kind == "snapshot":
        return Snapshot.from_json(obj)
    if kind == "node":
        mtime = obj.get("mtime")
        return Node(
            path=str(obj["path"]),
            type=str(obj.get("type", "")),
            size=int(obj.get("size") or 0),
            mtime=parse_time(mtime) if isinstance(mtime, str) and mtime else None,
            mode=int(obj.get("mode") or 0),
            extra={k: v for k, v in obj.items() if k not in _NODE_KEYS},
        )
    return Unknown(str(kind), obj)


def iter_ls(lines: Iterable[str]) -> Iterator[LsItem]:
    for line in lines:
        item = parse_ls_line(line)
        if item is not None:
            yield item


@dataclass(frozen=True)
class Message:
    """A JSON Lines message from backup, restore (0.16+) or check (0.18+)."""

    type: str
    data: dict[str, Any]


def parse_message(line: str) -> Message | None:
    """A JSON line from any command; non-JSON lines return None so callers can keep them as text."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    return Message(str(obj.get("message_type") or obj.get("struct_type") or ""), obj)


@dataclass(frozen=True)
class RestoreSummary:
    """restore --json summary (0.16+); on 0.14 Preuve counts the restored files itself."""

    files_restored: int
    total_files: int
    bytes_restored: int
    total_bytes: int
    files_skipped: int = 0
    errors: tuple[str, ...] = ()


def restore_summary(messages: Iterable[Message]) -> RestoreSummary | None:
    summary: dict[str, Any] | None = None
    errors: list[str] = []
    for message in messages:
        if message.type == "summary":
            summary = message.data
        elif message.type == "error":
            error = message.data.get("error")
            text = error.get("message") if isinstance(error, dict) else error
            errors.append(f"{message.data.get('item', '')}: {text}")
    if summary is None:
        return None
    return RestoreSummary(
        files_restored=int(summary.get("files_restored", 0)),
        total_files=int(summary.get("total_files", 0)),
        bytes_restored=int(summary.get("bytes_restored", 0)),
        total_bytes=int(summary.get("total_bytes", 0)),
        files_skipped=int(summary.get("files_skipped", 0)),
        errors=tuple(errors),
    )


@dataclass(frozen=True)
class CheckSummary:
    """check --json (0.18+): ``summary`` with counts of errors found."""

    num_errors: int
    broken_packs: tuple[str, ...]
    suggest_repair_index: bool
    suggest_prune: bool


def check_summary(messages: Iterable[Message]) -> CheckSummary | None:
    for message in messages:
        if message.type == "summary":
            data = message.data
            return CheckSummary(
                num_errors=int(data.get("num_errors", 0)),
                broken_packs=tuple(str(p) for p in data.get("broken_packs") or ()),
                suggest_repair_index=bool(data.get("suggest_repair_index", False)),
                suggest_prune=bool(data.get("suggest_prune", False)),
            )
    return None


@dataclass(frozen=True)
class RepoConfig:
    version: int
    id: str


def parse_repo_config(text: str) -> RepoConfig:
    obj = json.loads(text)
    return RepoConfig(version=int(obj.get("version", 0)), id=str(obj["id"]))


@dataclass(frozen=True)
class SnapshotSize:
    """``stats --json --mode restore-size ID``: what restoring the snapshot would write.

    ``file_count`` counts directories and symlinks too (restic 0.14 to 0.19). Newer fields (0.17+: blob counts,
    compression) land in ``extra``.
    """

    total_size: int
    file_count: int
    snapshots_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


_STATS_KEYS = {"total_size", "total_file_count", "snapshots_count"}


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects among ``text``'s lines, last first; other lines (warnings, progress) are skipped."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield obj


def _count(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} is not a count: {value!r}")
    return value


def parse_stats(text: str) -> SnapshotSize:
    """The output of ``stats --json`` (its last JSON object holding ``total_size``); ValueError if none."""
    for obj in _json_objects(text):
        if "total_size" in obj:
            return SnapshotSize(
                total_size=_count(obj["total_size"], "total_size"),
                file_count=_count(obj.get("total_file_count", 0), "total_file_count"),
                snapshots_count=_count(obj.get("snapshots_count", 1), "snapshots_count"),
                extra={k: v for k, v in obj.items() if k not in _STATS_KEYS},
            )
    raise ValueError("restic stats --json printed no statistics")


@dataclass(frozen=True)
class DiffCounts:
    """One side of ``diff --json`` statistics: what was added, or removed."""

    files: int = 0
    dirs: int = 0
    others: int = 0  # symlinks, devices, ...
    data_blobs: int = 0
    tree_blobs: int = 0
    bytes: int = 0

    @classmethod
    def from_json(cls, obj: Any) -> DiffCounts:
        if not isinstance(obj, dict):
            return cls()
        return cls(
            **{
                name: _count(obj.get(name, 0), name)
                for name in ("files", "dirs", "others", "data_blobs", "tree_blobs", "bytes")
            }
        )


@dataclass(frozen=True)
class DiffStatistics:
    """The closing ``statistics`` message of ``diff --json A B`` (A is the source, B the target)."""

    source_snapshot: str
    target_snapshot: str
    changed_files: int  # files present in both whose content differs
    added: DiffCounts
    removed: DiffCounts
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def files_touched(self) -> int:
        """Files changed, added or removed between the two snapshots."""
        return self.changed_files + self.added.files + self.removed.files


_DIFF_KEYS = {"message_type", "struct_type", "source_snapshot", "target_snapshot", "changed_files", "added", "removed"}


def parse_diff_statistics(text: str) -> DiffStatistics | None:
    """The ``statistics`` message in ``diff --json`` output (one line or all of it); None if there is none.

    The ``change`` lines before it are ignored: callers stream them rather than keep them (a diff of two
    snapshots a year apart can list millions of paths).
    """
    for obj in _json_objects(text):
        if (obj.get("message_type") or obj.get("struct_type")) == "statistics":
            return DiffStatistics(
                source_snapshot=str(obj.get("source_snapshot", "")),
                target_snapshot=str(obj.get("target_snapshot", "")),
                changed_files=_count(obj.get("changed_files", 0), "changed_files"),
                added=DiffCounts.from_json(obj.get("added")),
                removed=DiffCounts.from_json(obj.get("removed")),
                extra={k: v for k, v in obj.items() if k not in _DIFF_KEYS},
            )
    return None
