"""Fault injectors for restic repositories, working on the repository's backing store.

A :class:`RepoStore` reads and writes the repository's files by their repo-relative keys (``config``,
``data/ab/ab12...``, ``index/ID``, ``snapshots/ID``, ``locks/ID``, ``keys/ID``): :class:`FolderStore` for a local
repository, an SFTP repository (sshd runs on this machine, so its repository is a local folder) and a REST repository
(the sub-folder of rclone's root); :class:`S3Store` for a bucket and prefix on S3 (moto), through boto3.

Locating what to damage needs restic (index and snapshots are encrypted): the injectors take the repository's restic
environment (:func:`tests.support.datasets.restic_env`) and run a few read-only restic commands, each with
``--no-cache`` so that nothing is cached from before the fault. Each injector returns a :class:`Fault` that says
what it touched and, where restic can tell, which files (absolute paths, as backed up) the damage reaches.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import random
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from tests.support.datasets import backup, restic_argv, run_restic, snapshots

__all__ = [
    "BlobLocation",
    "BlobUse",
    "Fault",
    "FolderStore",
    "RepoIndex",
    "RepoStore",
    "S3Store",
    "blob_owners",
    "blob_uses",
    "corrupt_pack",
    "corrupt_tree_pack",
    "delete_index",
    "delete_pack",
    "delete_snapshot",
    "flip_bytes",
    "leave_stale_lock",
    "load_index",
    "make_stale",
    "replace_with_random",
    "truncate_pack",
]


# ---------------------------------------------------------------------------------------------------- stores


class RepoStore(ABC):
    """The files of one restic repository, by repo-relative key."""

    @abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted keys under ``prefix`` (``"data/"``, ``"index/"``, ``"locks/"``...), files only."""

    @abstractmethod
    def read(self, key: str) -> bytes: ...

    @abstractmethod
    def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except (FileNotFoundError, KeyError):
            return False
        return True

    @staticmethod
    def pack_key(pack_id: str) -> str:
        return f"data/{pack_id[:2]}/{pack_id}"

    def packs(self) -> builtins.list[str]:
        return self.list("data/")

    def indexes(self) -> builtins.list[str]:
        return self.list("index/")

    def snapshot_keys(self) -> builtins.list[str]:
        return self.list("snapshots/")

    def locks(self) -> builtins.list[str]:
        return self.list("locks/")


class FolderStore(RepoStore):
    """A repository that is a folder on this machine (local, SFTP to 127.0.0.1, rclone's REST root)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FolderStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} escapes the repository")
        return path

    def list(self, prefix: str = "") -> builtins.list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o400
        if path.exists():
            path.chmod(mode | 0o600)  # restic's local backend writes packs read-only (0400)
        with path.open("wb") as handle:
            handle.write(data)
        path.chmod(mode)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.parent.chmod(path.parent.stat().st_mode | 0o700)
        path.unlink()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size


class S3Store(RepoStore):
    """A repository in an S3 bucket under ``prefix`` (no leading or trailing slash), through a boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def list(self, prefix: str = "") -> builtins.list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        keys: builtins.list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                key = item["Key"]
                keys.append(key[len(self.prefix) + 1 :] if self.prefix else key)
        return sorted(keys)

    def read(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return data

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def size(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise KeyError(key) from exc
            raise
        return int(head["ContentLength"])


# ----------------------------------------------------------------------------------------------- repository map


@dataclass(frozen=True)
class BlobLocation:
    blob_id: str
    type: str  # "data" or "tree"
    pack_id: str
    offset: int
    length: int


@dataclass
class RepoIndex:
    blobs: dict[str, BlobLocation]  # blob id -> where it is stored
    packs: dict[str, list[BlobLocation]]  # pack id -> its blobs, by offset

    def data_blobs(self) -> list[BlobLocation]:
        return [loc for loc in self.blobs.values() if loc.type == "data"]

    def pack_type(self, pack_id: str) -> str:
        types = {loc.type for loc in self.packs[pack_id]}
        return types.pop() if len(types) == 1 else "mixed"

    def blobs_covering(self, pack_id: str, start: int, end: int) -> list[BlobLocation]:
        return [loc for loc in self.packs[pack_id] if loc.offset < end and start < loc.offset + loc.length]


def load_index(env: Mapping[str, str], timeout: float = 120) -> RepoIndex:
    """Decode every index file with ``restic list index`` + ``restic cat index ID``."""
    blobs: dict[str, BlobLocation] = {}
    packs: dict[str, list[BlobLocation]] = {}
    index_ids = run_restic(["list", "index"], env, timeout).stdout.split()

    def cat(index_id: str) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(run_restic(["cat", "index", index_id], env, timeout).stdout)
        return decoded

    with ThreadPoolExecutor(max_workers=4) as pool:  # each call pays ~0.5 s of key derivation
        decoded = list(pool.map(cat, index_ids))
    for data in decoded:
        for pack in data.get("packs", []):
            for blob in pack["blobs"]:
                loc = BlobLocation(blob["id"], blob["type"], pack["id"], int(blob["offset"]), int(blob["length"]))
                blobs.setdefault(loc.blob_id, loc)
                packs.setdefault(loc.pack_id, []).append(loc)
    for locs in packs.values():
        locs.sort(key=lambda loc: loc.offset)
    return RepoIndex(blobs=blobs, packs=packs)


@dataclass(frozen=True)
class BlobUse:
    blob_id: str
    snapshot_id: str
    path: str  # absolute path of the file, as backed up


def blob_uses(env: Mapping[str, str], blob_ids: Iterable[str], timeout: float = 120) -> list[BlobUse]:
    """Every (snapshot, file) that uses one of these blobs, from one ``restic find --json --blob`` call."""
    ids = sorted(set(blob_ids))
    if not ids:
        return []
    proc = run_restic(["find", "--json", "--blob", *ids], env, timeout)
    wanted = set(ids)
    return [
        BlobUse(match["id"], match["snapshot"], match["path"])
        for match in _json_objects(proc.stdout, '{"object_type"')
        if match.get("object_type") == "blob" and match.get("id") in wanted
    ]


def _json_objects(text: str, start_marker: str) -> list[dict[str, Any]]:
    """The JSON objects in ``text`` that begin with ``start_marker``.

    restic 0.14's ``find --json`` prints ``Unable to load tree <id>`` lines to stdout in the middle of its JSON
    array when a tree blob is damaged (and still exits 0), so the array cannot be parsed as a whole.
    """
    decoder = json.JSONDecoder()
    found = []
    position = text.find(start_marker)
    while position != -1:
        obj, end = decoder.raw_decode(text, position)
        found.append(obj)
        position = text.find(start_marker, end)
    return found


def blob_owners(env: Mapping[str, str], blob_ids: Iterable[str], timeout: float = 120) -> dict[str, set[str]]:
    """Blob id -> absolute paths (as backed up) of the files that use it, in any snapshot."""
    ids = set(blob_ids)
    owners: dict[str, set[str]] = {blob: set() for blob in ids}
    for use in blob_uses(env, ids, timeout):
        owners[use.blob_id].add(use.path)
    return owners


# ----------------------------------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """What an injector did."""

    name: str
    keys: list[str]  # repo-relative keys written, deleted or created
    pack_id: str | None = None
    blob_ids: list[str] = field(default_factory=list)  # blobs whose bytes were damaged or removed
    damaged_paths: list[str] = field(default_factory=list)  # absolute paths (as backed up), any snapshot
    damaged_by_snapshot: dict[str, list[str]] = field(default_factory=dict)  # full snapshot id -> paths
    detail: dict[str, Any] = field(default_factory=dict)

    def damaged_in(self, snapshot_id: str) -> list[str]:
        """Paths damaged in one snapshot (full id or a unique prefix, e.g. a short id)."""
        return sorted({p for sid, paths in self.damaged_by_snapshot.items() if sid.startswith(snapshot_id)
                       for p in paths})  # fmt: skip


def _damage(uses: Iterable[BlobUse]) -> tuple[list[str], dict[str, list[str]]]:
    by_snapshot: dict[str, set[str]] = {}
    for use in uses:
        by_snapshot.setdefault(use.snapshot_id, set()).add(use.path)
    union = sorted({p for paths in by_snapshot.values() for p in paths})
    return union, {sid: sorted(paths) for sid, paths in sorted(by_snapshot.items())}


def flip_bytes(store: RepoStore, key: str, offset: int, count: int = 16) -> None:
    """XOR ``count`` bytes at ``offset`` of ``key`` with 0xFF (same size, different content)."""
    data = bytearray(store.read(key))
    if offset < 0 or offset + count > len(data):
        raise ValueError(f"cannot flip {count} bytes at {offset} in {key} ({len(data)} bytes)")
    for position in range(offset, offset + count):
        data[position] ^= 0xFF
    store.write(key, bytes(data))


def _target_data_blob(index: RepoIndex, env: Mapping[str, str], sha256: str | None, path: str | None) -> BlobLocation:
    """The data blob to damage: the file with this content hash (a single-blob file), this file's largest blob,
    or the largest data blob in the repository (a piece of one of the large files; which one depends on where
    the chunker cut, so pass ``path`` to aim at a given file)."""
    if sha256 is not None:
        loc = index.blobs.get(sha256)
        if loc is None or loc.type != "data":
            raise LookupError(
                f"no data blob {sha256[:12]}: only files of 1 byte to 512 KiB are stored as one blob named by "
                "their SHA-256; pass path= for larger files"
            )
        return loc
    if path is not None:
        uses = blob_uses(env, (loc.blob_id for loc in index.data_blobs()))
        mine = {use.blob_id for use in uses if use.path == path}
        if not mine:
            raise LookupError(f"no data blob of {path} in the repository (give the absolute path as backed up)")
        return max((index.blobs[blob] for blob in mine), key=lambda loc: (loc.length, loc.blob_id))
    return max(index.data_blobs(), key=lambda loc: (loc.length, loc.blob_id))


def corrupt_pack(
    store: RepoStore,
    env: Mapping[str, str],
    *,
    sha256: str | None = None,
    path: str | None = None,
    count: int = 16,
) -> Fault:
    """Flip ``count`` bytes in the middle of one data blob, inside its pack (the pack keeps its size).

    Choose the blob by ``sha256`` (content hash of a file under 512 KiB, e.g. from the manifest: exactly that file
    is damaged), by ``path`` (absolute path as backed up: that file's largest blob), or neither (the largest data
    blob in the repository, part of one of the large files). ``check`` misses it; ``check --read-data`` reports
    ``Pack ID does not match``, restore ``ciphertext verification failed`` for the files in ``damaged_paths``.
    restore leaves a damaged one-blob file out, but writes a damaged multi-blob file at full size with wrong bytes
    where the bad blob belongs (restic 0.14; RESTIC.md only saw the first case).
    """
    index = load_index(env)
    loc = _target_data_blob(index, env, sha256, path)
    damaged, by_snapshot = _damage(blob_uses(env, [loc.blob_id]))
    key = store.pack_key(loc.pack_id)
    offset = loc.offset + loc.length // 2 - count // 2
    flip_bytes(store, key, offset, count)
    return Fault(
        name="corrupt-pack",
        keys=[key],
        pack_id=loc.pack_id,
        blob_ids=[loc.blob_id],
        damaged_paths=damaged,
        damaged_by_snapshot=by_snapshot,
        detail={"offset": offset, "count": count},
    )


def _pack_fault(
    name: str, store: RepoStore, env: Mapping[str, str], sha256: str | None, path: str | None
) -> tuple[Fault, int]:
    index = load_index(env)
    loc = _target_data_blob(index, env, sha256, path)
    blobs = [b.blob_id for b in index.packs[loc.pack_id]]
    damaged, by_snapshot = _damage(blob_uses(env, blobs))
    key = store.pack_key(loc.pack_id)
    fault = Fault(name=name, keys=[key], pack_id=loc.pack_id, blob_ids=blobs, damaged_paths=damaged,
                  damaged_by_snapshot=by_snapshot)  # fmt: skip
    return fault, store.size(key)


def delete_pack(
    store: RepoStore, env: Mapping[str, str], *, sha256: str | None = None, path: str | None = None
) -> Fault:
    """Remove the data pack holding the chosen blob (same choice as :func:`corrupt_pack`).

    ``check`` reports ``pack <id>: does not exist``; every read of it costs restic ~44 s of retries.
    """
    fault, _ = _pack_fault("delete-pack", store, env, sha256, path)
    store.delete(fault.keys[0])
    return fault


def truncate_pack(
    store: RepoStore, env: Mapping[str, str], *, sha256: str | None = None, path: str | None = None
) -> Fault:
    """Cut the data pack holding the chosen blob to half its size (``check``: ``unexpected file size``)."""
    fault, size = _pack_fault("truncate-pack", store, env, sha256, path)
    key = fault.keys[0]
    store.write(key, store.read(key)[: size // 2])
    fault.detail = {"size": size, "truncated_to": size // 2}
    return fault


def corrupt_tree_pack(
    store: RepoStore,
    env: Mapping[str, str],
    *,
    snapshot: str = "latest",
    where: Literal["middle", "root"] = "middle",
    count: int = 16,
) -> Fault:
    """Flip ``count`` bytes in the tree pack that holds ``snapshot``'s root tree.

    ``where="middle"``: the tree blob in the middle of the pack, as in RESTIC.md (whichever directory that is);
    ``where="root"``: the middle of the root tree blob itself (nothing of the snapshot can be listed).
    Plain ``check`` reports ``decrypting blob <id> failed``; a restore with a cache warmed before the fault misses it.
    """
    snaps = snapshots(env, snapshot)
    if not snaps:
        raise LookupError(f"no snapshot {snapshot}")
    root_tree = str(snaps[-1]["tree"])
    index = load_index(env)
    root = index.blobs[root_tree]
    key = store.pack_key(root.pack_id)
    if where == "root":
        target = root
    else:
        # The blob that holds the pack's middle byte (or the nearest one, should the middle be in the header).
        middle = store.size(key) // 2

        def distance(blob: BlobLocation) -> int:
            if blob.offset <= middle < blob.offset + blob.length:
                return -1
            return abs(blob.offset + blob.length // 2 - middle)

        target = min(index.packs[root.pack_id], key=distance)
    offset = target.offset + target.length // 2 - count // 2
    hit = index.blobs_covering(root.pack_id, offset, offset + count)
    flip_bytes(store, key, offset, count)
    return Fault(
        name="corrupt-tree",
        keys=[key],
        pack_id=root.pack_id,
        blob_ids=[loc.blob_id for loc in hit],
        detail={"root_tree": root_tree, "offset": offset, "count": count, "snapshot": str(snaps[-1]["id"])},
    )


def delete_index(store: RepoStore) -> Fault:
    """Remove the largest index file (``check``: ``blob ... not found in index``; restore: ``Unknown blob``)."""
    keys = store.indexes()
    if not keys:
        raise LookupError("the repository has no index files")
    key = max(keys, key=lambda k: (store.size(k), k))
    store.delete(key)
    return Fault(name="delete-index", keys=[key])


def delete_snapshot(store: RepoStore, env: Mapping[str, str]) -> Fault:
    """Remove the newest snapshot file. No restic command notices: ``latest`` silently becomes the one before."""
    snaps = snapshots(env)
    if not snaps:
        raise LookupError("the repository has no snapshots")
    newest = max(snaps, key=lambda s: str(s["time"]))
    key = f"snapshots/{newest['id']}"
    store.delete(key)
    remaining = [str(s["id"]) for s in snaps if s["id"] != newest["id"]]
    return Fault(name="delete-snapshot", keys=[key], detail={"snapshot_id": newest["id"], "remaining": remaining})


def leave_stale_lock(
    store: RepoStore,
    env: Mapping[str, str],
    *,
    hostname: str | None = None,
    timeout: float = 30,
) -> Fault:
    """Leave an exclusive lock behind, as a restic killed mid-run does.

    Runs ``restic key passwd`` (it takes an exclusive lock, then blocks reading the new password from a pipe we
    never write to), waits for a new file under ``locks/``, SIGKILLs it. With ``hostname``, restic runs in a new
    UTS namespace under that host name (a lock from another machine, which ``unlock`` does not remove).
    Every other command then fails with ``repository is already locked exclusively by PID ...``.
    """
    before = set(store.locks())
    argv = restic_argv(["key", "passwd"], env)
    if hostname is not None:
        argv = ["unshare", "--uts", "/bin/sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]
    proc = subprocess.Popen(
        argv,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    new: list[str] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            new = sorted(set(store.locks()) - before)
            if new:
                time.sleep(0.3)  # let restic finish writing the lock; it then blocks on the pipe
                break
            time.sleep(0.05)
    finally:
        pid = proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # our child's own group: restic (and unshare/sh if used)
        _, err = proc.communicate(timeout=10)
    if not new:
        raise RuntimeError(f"restic never created a lock (rc={proc.returncode}): {err.decode(errors='replace')}")
    return Fault(name="stale-lock", keys=new, detail={"pid": pid, "hostname": hostname})


def make_stale(
    env: Mapping[str, str],
    source: Path,
    *,
    ages_days: Sequence[float] = (40, 30),
    tags: Iterable[str] = (),
) -> Fault:
    """Make the repository look abandoned: new snapshots dated ``ages_days`` ago, then forget all the others.

    restic 0.14 cannot re-date a snapshot, so this backs ``source`` up again with ``--time`` (fast: nothing changed)
    and forgets the originals. Every restic command still succeeds.
    """
    old = [str(s["id"]) for s in snapshots(env)]
    now = datetime.now(tz=UTC)
    parent = old[-1] if old else None
    for age in sorted(ages_days, reverse=True):
        parent = backup(env, source, tags=tags, time=now - timedelta(days=age), parent=parent)
    if old:
        run_restic(["forget", *old], env)
    remaining = [str(s["id"]) for s in snapshots(env)]
    return Fault(name="stale", keys=[f"snapshots/{sid}" for sid in old], detail={"snapshots": remaining})


def replace_with_random(source: Path, paths: Iterable[str | Path], *, seed: int = 666) -> list[Path]:
    """Overwrite files of the live source with random bytes of the same size, as ransomware would.

    ``paths`` are relative to ``source`` (or absolute). The next backup stores the encrypted-looking versions.
    """
    rng = random.Random(seed)
    done = []
    for item in paths:
        path = Path(item)
        path = path if path.is_absolute() else Path(source) / path
        size = path.stat().st_size
        path.write_bytes(rng.randbytes(size))
        done.append(path)
    return done
