"""The folder a drill restores into, and the guarantee that it goes away.

Each drill gets ``<root>/preuve-drill-<id>-<random>/`` with ``restore/`` (restic's target), ``cache/`` (a fresh
restic cache: a shared warm cache hides corrupt tree packs), and ``home/`` and ``tmp/`` (HOME and TMPDIR of the
child, so that restic and ssh write nothing elsewhere). A marker file names the owning process; sandboxes whose
owner is dead are swept at start-up, so a crash never leaves restored client data behind for long.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from preuve.errors import FailureClass, PreuveError

log = logging.getLogger(__name__)

PREFIX = "preuve-drill-"
MARKER = ".preuve-sandbox"
_FORBIDDEN_ROOTS = {Path("/"), Path("/etc"), Path("/usr"), Path("/bin"), Path("/boot"), Path("/home"), Path("/root")}


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


class Sandbox:
    def __init__(self, root: Path, drill_id: int | str, *, sources: tuple[str, ...] = ()) -> None:
        self.root = root.resolve()
        if self.root in _FORBIDDEN_ROOTS:
            raise PreuveError(FailureClass.SANDBOX, f"Refusing {self.root} as sandbox root: use a dedicated folder.")
        for source in sources:
            if source.startswith("/") and (
                _is_within(self.root, Path(source).resolve()) or _is_within(Path(source).resolve(), self.root)
            ):
                raise PreuveError(
                    FailureClass.SANDBOX,
                    f"The sandbox root {self.root} overlaps the live source {source}: a drill must never write "
                    f"into a source. Move `sandbox` in preuve.toml elsewhere.",
                )
        self.path = self.root / f"{PREFIX}{drill_id}-{secrets.token_hex(4)}"
        self.restore_dir = self.path / "restore"
        self.cache_dir = self.path / "cache"
        self.home = self.path / "home"
        self.tmp = self.path / "tmp"
        self.drill_id = drill_id

    def __enter__(self) -> Sandbox:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.path.mkdir(mode=0o700)
            for folder in (self.restore_dir, self.cache_dir, self.home, self.tmp):
                folder.mkdir(mode=0o700)
            marker = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "drill": str(self.drill_id),
                "created": datetime.now(UTC).isoformat(),
            }
            (self.path / MARKER).write_text(json.dumps(marker), encoding="utf-8")
        except OSError as exc:
            self.cleanup()
            raise PreuveError(
                FailureClass.SANDBOX, f"Cannot create the sandbox under {self.root}: {exc.strerror}."
            ) from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def free_bytes(self) -> int:
        usage = shutil.disk_usage(self.path if self.path.exists() else self.root)
        return usage.free

    def require_space(self, needed: int) -> None:
        # restic needs room for the files plus its cache (index and trees); keep a margin for both
        margin = max(16 * 1024 * 1024, needed // 10)
        free = self.free_bytes()
        if free < needed + margin:
            raise PreuveError(
                FailureClass.SANDBOX,
                f"The sandbox {self.root} has {free} bytes free but the restore needs about {needed + margin} "
                f"bytes ({needed} of files plus a margin for restic's cache).",
            )

    def cleanup(self) -> None:
        remove_tree(self.path)


def _make_writable(func: Callable[..., Any], path: str, exc_info: Any) -> None:
    # restic restores folders with their original modes (0500, ...): open them up, then retry
    if isinstance(exc_info[1], FileNotFoundError):
        return
    parent = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.chmod(parent, stat.S_IRWXU)
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
    func(path)


def remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    try:
        shutil.rmtree(path, onerror=_make_writable)  # onexc is 3.12+
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.error("could not remove sandbox %s: %s", path, exc)
            raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: Path, *, unmarked_after_s: float = 3600) -> list[Path]:
    """Remove sandboxes left by dead processes of this host. Returns what was removed.

    A sandbox of another host (a shared sandbox disk) is never touched: its owner cannot be checked from here.
    One without a readable marker is removed only when it is older than ``unmarked_after_s``, so that a sandbox
    being created right now (folder made, marker not yet written) survives.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    host = socket.gethostname()
    now = time.time()
    for entry in root.iterdir():
        if not entry.name.startswith(PREFIX) or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            marker = json.loads((entry / MARKER).read_text(encoding="utf-8"))
            if marker.get("host") != host or _pid_alive(int(marker["pid"])):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            try:
                age = now - entry.stat().st_mtime
            except OSError:
                continue
            if age < unmarked_after_s:
                continue
        remove_tree(entry)
        removed.append(entry)
        log.warning("removed stale sandbox %s", entry)
    return removed
