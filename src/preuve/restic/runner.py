"""restic bound to one repository: builds argv, runs it through :mod:`execute`, parses, classifies, logs.

Every call lands in ``self.log`` (masked), which becomes the drill's restore log; a ``watcher``
(:class:`preuve.restic.watch.CommandWatcher`) also sees each command start, print and end, so that the log can be
followed while the drill runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from preuve import redact
from preuve.drills.result import CommandLog
from preuve.errors import FailureClass, PreuveError
from preuve.restic import commands, execute
from preuve.restic.classify import classify, lock_holder
from preuve.restic.environment import child_env
from preuve.restic.parse import LsItem, Snapshot, parse_ls_line, parse_snapshots
from preuve.restic.versions import MINIMUM_SUPPORTED, Version, parse_version
from preuve.restic.watch import CommandWatcher
from preuve.targets.access import RepoAccess

_versions: dict[str, tuple[Version, execute.Completed]] = {}
_versions_lock = threading.Lock()
VERSION_DEADLINE_S = 30.0


def detect_version(binary: str, env: dict[str, str]) -> tuple[Version, execute.Completed]:
    """``restic version`` once per binary and process: it needs no repository and no password."""
    with _versions_lock:
        if binary in _versions:
            return _versions[binary]
    try:
        completed = execute.run((binary, *commands.version()), env=env, deadline_s=VERSION_DEADLINE_S)
    except FileNotFoundError:
        raise PreuveError(
            FailureClass.INTERNAL,
            f"The restic binary {binary!r} cannot be started: install restic (apt-get install restic) or set "
            f"`restic` in preuve.toml to its path.",
        ) from None
    if completed.exit_code != 0:
        raise PreuveError(FailureClass.INTERNAL, f"`{binary} version` failed: {completed.stderr.strip()[:200]}")
    version = parse_version(completed.stdout)
    if version < MINIMUM_SUPPORTED:
        raise PreuveError(
            FailureClass.INTERNAL, f"restic {version} is too old: Preuve needs {MINIMUM_SUPPORTED} or newer."
        )
    with _versions_lock:
        _versions[binary] = (version, completed)
    return version, completed


class Restic:
    def __init__(
        self,
        binary: str,
        access: RepoAccess,
        *,
        label: str,
        home: Path,
        tmpdir: Path,
        cache_dir: Path | None,
        open_timeout_s: float,
        watcher: CommandWatcher | None = None,
    ) -> None:
        self.binary = binary
        self.watcher = watcher
        self.access = access
        self.label = label
        self.cache_dir = cache_dir
        self.open_timeout_s = open_timeout_s
        self.env = child_env(access.env, home=home, tmpdir=tmpdir)
        # One slot per command, taken when it starts: commands may run side by side (the listing beside
        # `snapshots`), and each keeps the position it started at, in the live log and in the final one alike.
        self._slots: list[CommandLog | None] = []
        self._slots_lock = threading.Lock()
        self._version: Version | None = None

    @property
    def log(self) -> list[CommandLog]:
        """The commands run so far, in the order they started (one still running is not in it yet)."""
        with self._slots_lock:
            return [command for command in self._slots if command is not None]

    def _reserve(self) -> int:
        with self._slots_lock:
            self._slots.append(None)
            return len(self._slots)

    @property
    def version(self) -> Version:
        if self._version is None:
            self._version, completed = detect_version(self.binary, self.env)
            self._logged(completed.to_log(note="version detected once per process"))
        return self._version

    def _logged(self, command: CommandLog, seq: int | None = None) -> None:
        if seq is None:
            seq = self._reserve()
        with self._slots_lock:
            self._slots[seq - 1] = command
        if self.watcher is not None:
            self.watcher.finished(seq, command)

    def _argv(self, args: Iterable[str]) -> tuple[str, ...]:
        options = commands.global_options(cache_dir=self.cache_dir, options=self.access.options)
        return (self.binary, *options, *args)

    def run(
        self,
        args: Iterable[str],
        *,
        what: str,
        deadline_s: float | execute.Deadline,
        on_stdout: Callable[[str], None] | None = None,
        keep_stdout: bool = True,
        check: bool = True,
        note: str = "",
        stdout_gate: threading.Event | None = None,
    ) -> tuple[execute.Completed, PreuveError | None]:
        version = self.version
        argv = self._argv(args)
        seq = self._reserve()
        completed = self._execute(
            argv, seq, deadline_s=deadline_s, on_stdout=on_stdout, keep_stdout=keep_stdout, stdout_gate=stdout_gate
        )
        if not keep_stdout:
            note = (note + "; " if note else "") + f"stdout: {completed.stdout_lines} lines, not kept"
        self._logged(completed.to_log(note=note), seq)
        seconds = deadline_s.seconds if isinstance(deadline_s, execute.Deadline) else deadline_s
        error = classify(completed, version, what=f"{what} on {self.label}", deadline_s=seconds)
        if error is not None and error.failure_class is FailureClass.REPO_LOCKED:
            holder = lock_holder(completed.stderr)
            if holder:
                error = PreuveError(
                    FailureClass.REPO_LOCKED,
                    f"The repository of {self.label} is locked by {holder}; restic refuses to read it meanwhile.",
                )
        if error is not None and check:
            raise error
        return completed, error

    def _execute(
        self,
        argv: tuple[str, ...],
        seq: int,
        *,
        deadline_s: float | execute.Deadline,
        on_stdout: Callable[[str], None] | None,
        keep_stdout: bool,
        stdout_gate: threading.Event | None,
    ) -> execute.Completed:
        watcher = self.watcher
        shown = tuple(redact.mask(arg) for arg in argv)
        started_at = datetime.now(UTC)
        started = time.monotonic()
        if watcher is None:
            try:
                return execute.run(
                    argv,
                    env=self.env,
                    deadline_s=deadline_s,
                    on_stdout=on_stdout,
                    keep_stdout=keep_stdout,
                    stdout_gate=stdout_gate,
                )
            except BaseException as exc:
                self._stopped(seq, shown, started_at, started, exc)
                raise
        watcher.started(seq, shown, started_at)

        def counted(line: str) -> None:
            watcher.stdout_line(seq)
            if on_stdout is not None:
                on_stdout(line)

        try:
            return execute.run(
                argv,
                env=self.env,
                deadline_s=deadline_s,
                on_stdout=counted,
                on_stderr=lambda line: watcher.stderr_line(seq, line),
                keep_stdout=keep_stdout,
                stdout_gate=stdout_gate,
            )
        except BaseException as exc:
            note = self._stopped(seq, shown, started_at, started, exc)
            watcher.abandoned(seq, note)
            raise

    def _stopped(
        self, seq: int, shown: tuple[str, ...], started_at: datetime, started: float, exc: BaseException
    ) -> str:
        """Fill a stopped command's slot, so that the log keeps it (and the ones after it keep their positions)."""
        if isinstance(exc, execute.Cancelled):
            note = f"stopped before it finished: {exc.reason}"
        else:
            note = f"stopped before it finished ({type(exc).__name__})"
        stopped = CommandLog(
            argv=shown,
            started_at=started_at,
            duration_s=round(time.monotonic() - started, 3),
            exit_code=None,
            stdout="",
            stderr="",
            note=note,
        )
        with self._slots_lock:
            self._slots[seq - 1] = stopped
        return note

    def snapshots(self, *, no_lock: bool = False) -> list[Snapshot]:
        completed, _ = self.run(
            commands.snapshots(no_lock=no_lock), what="opening the repository", deadline_s=self.open_timeout_s
        )
        try:
            return parse_snapshots(completed.stdout)
        except (ValueError, KeyError) as exc:
            raise PreuveError(
                FailureClass.INTERNAL, f"restic printed a snapshot list Preuve cannot read: {exc}"
            ) from None

    def repository_id(self) -> str:
        from preuve.restic.parse import parse_repo_config

        completed, _ = self.run(
            commands.cat_config(), what="reading the repository configuration", deadline_s=self.open_timeout_s
        )
        return parse_repo_config(completed.stdout).id

    def ls(self, snapshot_id: str, on_item: Callable[[LsItem], None], *, deadline_s: float) -> None:
        """Stream ``ls --json``: each parsed line goes to ``on_item``; memory does not grow with the listing."""
        bad_lines = 0

        def handle(line: str) -> None:
            nonlocal bad_lines
            try:
                item = parse_ls_line(line)
            except (ValueError, KeyError):
                bad_lines += 1  # restic sometimes prints warnings on stdout; the listing goes on
                return
            if item is not None:
                on_item(item)

        self.run(
            commands.ls(snapshot_id),
            what=f"listing snapshot {snapshot_id[:8]}",
            deadline_s=deadline_s,
            on_stdout=handle,
            keep_stdout=False,
        )
