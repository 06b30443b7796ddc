"""restic command lines as argument tuples, built by small pure functions.

Nothing here runs anything or sees a secret: the repository, password file and credentials travel in the child's
environment (see :mod:`preuve.restic.environment`), never in argv.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

Args = tuple[str, ...]


def global_options(*, cache_dir: Path | None, options: Iterable[str] = (), no_lock: bool = False) -> Args:
    """Options every call gets: a drill's own cache (a shared warm cache hides corrupt trees) and ``-o`` options."""
    args: list[str] = []
    if cache_dir is None:
        args.append("--no-cache")
    else:
        args += ["--cache-dir", str(cache_dir)]
    for option in options:
        args += ["-o", option]
    if no_lock:
        args.append("--no-lock")
    return tuple(args)


def version() -> Args:
    return ("version",)


def cat_config() -> Args:
    return ("cat", "config")


def snapshots(*, no_lock: bool = False) -> Args:
    return ("snapshots", "--json", "--no-lock") if no_lock else ("snapshots", "--json")


def ls(snapshot_id: str) -> Args:
    return ("ls", "--json", snapshot_id)


def restore(
    snapshot_id: str, target: Path, includes: Iterable[str] = (), *, verify: bool = True, json: bool = False
) -> Args:
    args = ["restore", snapshot_id, "--target", str(target)]
    if verify:
        args.append("--verify")
    if json:
        args.append("--json")
    for pattern in includes:
        args += ["--include", pattern]
    return tuple(args)


def check(*, read_data_subset: str | None = None, json: bool = False) -> Args:
    args = ["check"]
    if read_data_subset:
        args.append(f"--read-data-subset={read_data_subset}")
    if json:
        args.append("--json")
    return tuple(args)


def stats(snapshot_id: str, mode: str = "restore-size") -> Args:
    return ("stats", "--json", "--mode", mode, snapshot_id)


def diff(first: str, second: str) -> Args:
    return ("diff", "--json", first, second)


def init() -> Args:
    return ("init",)


def backup(paths: Iterable[Path], *, tags: Iterable[str] = (), host: str | None = None) -> Args:
    args = ["backup", "--json"]
    for tag in tags:
        args += ["--tag", tag]
    if host:
        args += ["--host", host]
    return (*args, *(str(p) for p in paths))
