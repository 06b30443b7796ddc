"""The one place that starts processes: deadline, process group, concurrent stdout/stderr, masked log.

stdout is read line by line on the calling thread and handed to a callback, so a huge ``ls --json`` never sits in
memory; stderr is read by a second thread (restic writes errors there while stdout is still flowing, and a full
pipe would stall it). At the deadline, or on any exception (KeyboardInterrupt included), the whole process group
gets SIGTERM, then SIGKILL: restic's ssh child must not survive it.

A caller can also end its processes from another thread: :func:`cancel_scope` binds a :class:`CancelScope` to the
calling thread (a context variable), and :meth:`CancelScope.cancel` ends every process started under it, now and
later; :func:`run` then raises :class:`Cancelled`. The daemon uses one scope per drill, so that a shutdown or a lost
repository lock stops exactly the drills concerned and records them as ``interrupted``, not as errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from preuve import redact
from preuve.drills.result import CommandLog

log = logging.getLogger(__name__)

KEEP_BYTES = 64 * 1024  # of each stream, for the restore log; the rest is counted, not kept
TERM_GRACE_S = 5.0
ORPHAN_GRACE_S = 2.0  # how long restic's children may outlive it before they are killed


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    exit_code: int | None  # None when we killed it (deadline or interrupt)
    stdout: str  # the kept head, masked
    stderr: str  # the kept head and tail, masked
    duration_s: float
    timed_out: bool
    stdout_lines: int
    started_at: datetime

    def to_log(self, note: str = "") -> CommandLog:
        return CommandLog(
            argv=self.argv,
            started_at=self.started_at,
            duration_s=round(self.duration_s, 3),
            exit_code=self.exit_code,
            stdout=self.stdout,
            stderr=self.stderr,
            timed_out=self.timed_out,
            note=note,
        )


class _Keeper:
    """Keeps the first KEEP_BYTES of a stream and, for stderr, the last KEEP_BYTES too."""

    def __init__(self, keep_tail: bool) -> None:
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()  # popleft is O(1): stderr may be millions of short lines
        self.tail_size = 0
        self.dropped = 0
        self.keep_tail = keep_tail

    def add(self, line: str) -> None:
        if self.head_size < KEEP_BYTES:
            self.head.append(line)
            self.head_size += len(line)
            return
        if not self.keep_tail:
            self.dropped += 1
            return
        self.tail.append(line)
        self.tail_size += len(line)
        while self.tail_size > KEEP_BYTES and self.tail:
            self.tail_size -= len(self.tail.popleft())
            self.dropped += 1

    def text(self) -> str:
        middle = [f"[... {self.dropped} lines not kept ...]\n"] if self.dropped else []
        return redact.mask("".join([*self.head, *middle, *self.tail]))


# Running process groups, so that a signal handler can end them all (daemon shutdown, Ctrl-C).
_running: dict[int, str] = {}
_running_lock = threading.Lock()
# The processes started under a cancel scope, by process group id (guarded by _running_lock too).
_scoped: dict[int, tuple[subprocess.Popen[bytes], CancelScope]] = {}


def running_groups() -> list[int]:
    with _running_lock:
        return list(_running)


def terminate_all() -> None:
    for pgid in running_groups():
        _kill_group(pgid, signal.SIGTERM)


class Cancelled(BaseException):
    """A process was ended, or not started, because its :class:`CancelScope` was cancelled.

    A BaseException, like KeyboardInterrupt: the code that turns an unexpected ``Exception`` into an ``internal``
    error must not record a deliberate stop (daemon shutdown) as a fault of Preuve or of the backup.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CancelScope:
    """Everything one piece of work (a drill) runs, to be ended from another thread at once."""

    def __init__(self, name: str = "", *, parent: CancelScope | None = None) -> None:
        self.name = name
        self.reason = ""
        self._event = threading.Event()
        # A child scope ends with its parent, and can also be ended alone (one of a drill's parallel calls failed:
        # stop the other, not the drill's lease keeper).
        self._children: weakref.WeakSet[CancelScope] = weakref.WeakSet()
        with _scopes_lock:
            _scopes.add(self)
            if parent is not None:
                parent._children.add(self)
        if parent is not None and parent.cancelled:
            self.cancel(parent.reason)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str) -> None:
        """End the scope's running processes (SIGTERM to their groups, SIGKILL after TERM_GRACE_S) and refuse
        new ones. Returns at once; the thread running the work sees :class:`Cancelled` when its process ends."""
        if self._event.is_set():
            return
        self.reason = reason
        self._event.set()
        with _running_lock:
            processes = [process for process, scope in _scoped.values() if scope is self]
        for process in processes:
            # _end waits for the grace period: not on the caller's thread (a signal handler, the daemon loop)
            threading.Thread(target=_end, args=(process,), name=f"cancel-{process.pid}", daemon=True).start()
        with _scopes_lock:
            children = list(self._children)
        for child in children:
            child.cancel(reason)

    def __repr__(self) -> str:
        state = f"cancelled: {self.reason}" if self.cancelled else "active"
        return f"CancelScope({self.name!r}, {state})"


_current_scope: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar("preuve_cancel", default=None)
_scopes: weakref.WeakSet[CancelScope] = weakref.WeakSet()
_scopes_lock = threading.Lock()


@contextlib.contextmanager
def cancel_scope(scope: CancelScope | None = None) -> Iterator[CancelScope]:
    """Bind ``scope`` (a new one if None) to the calling thread: every :func:`run` in the block belongs to it."""
    scope = scope if scope is not None else CancelScope()
    token = _current_scope.set(scope)
    try:
        yield scope
    finally:
        _current_scope.reset(token)


def current_scope() -> CancelScope | None:
    return _current_scope.get()


def cancel_all(reason: str) -> None:
    """Cancel every live scope and end the processes started outside any (probes): the daemon's shutdown."""
    with _scopes_lock:
        scopes = list(_scopes)
    for scope in scopes:
        scope.cancel(reason)
    with _running_lock:
        unscoped = [pgid for pgid in _running if pgid not in _scoped]
    for pgid in unscoped:
        _kill_group(pgid, signal.SIGTERM)


@contextlib.contextmanager
def _interrupt_held(held: list[int]) -> Iterator[None]:
    """Hold a Ctrl-C that arrives while a child is being started (appended to ``held``, raised by the caller).

    A KeyboardInterrupt raised inside ``subprocess.Popen`` after the fork leaves a running child whose pid we never
    learn, so nothing could stop it. Only the main thread receives signals; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield  # someone else handles SIGINT (the daemon): leave it alone
        return
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _end(process: subprocess.Popen[bytes]) -> None:
    _kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
        process.wait()
    else:
        # children (ssh) may linger after restic exits on SIGTERM
        _kill_group(process.pid, signal.SIGKILL)


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None
    return stream


def _close_pipes(process: subprocess.Popen[bytes], stderr_thread: threading.Thread) -> None:
    # close our ends now rather than leaking two descriptors per call until garbage collection
    with contextlib.suppress(OSError):
        if process.stdout is not None:
            process.stdout.close()
    if process.stderr is not None and not stderr_thread.is_alive():  # never close under a reading thread
        with contextlib.suppress(OSError):
            process.stderr.close()


class Deadline:
    """How long a :func:`run` may take, from its start; its owner may move it while it runs (a child started
    ahead and held at a gate, whose work is sized only later)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._start = 0.0
        self._on_expiry: Callable[[], None] | None = None
        self._timer: threading.Timer | None = None

    def arm(self, start: float, on_expiry: Callable[[], None]) -> None:
        with self._lock:
            self._start, self._on_expiry = start, on_expiry
            self._schedule()

    def move(self, seconds: float) -> None:
        """``seconds`` from the run's start, instead of the deadline given."""
        with self._lock:
            self.seconds = seconds
            if self._timer is not None:
                self._timer.cancel()
                self._schedule()

    def disarm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._on_expiry = self._timer = None

    def _schedule(self) -> None:
        if self._on_expiry is None:
            return
        self._timer = threading.Timer(max(0.0, self._start + self.seconds - time.monotonic()), self._on_expiry)
        self._timer.daemon = True
        self._timer.start()


def _full_pipe() -> tuple[int, int, int]:
    """A pipe whose buffer is already full: (read end, write end, filler bytes to read before the child's)."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # the smallest buffer: one page
        size = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        os.write(write_end, b"\n" * size)  # fits at once in the empty pipe; the next write blocks
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    return read_end, write_end, size


def _wait_for_gate(gate: threading.Event, process: subprocess.Popen[bytes]) -> None:
    while not gate.wait(0.05):
        if process.poll() is not None:  # exited (an error, the deadline, a cancel): read what it printed
            return


def _read_exactly(stream: IO[bytes], size: int) -> None:
    while size > 0 and (chunk := stream.read(size)):
        size -= len(chunk)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    deadline_s: float | Deadline,
    cwd: str | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    keep_stdout: bool = True,
    stdout_gate: threading.Event | None = None,
) -> Completed:
    """Run argv with a deadline. ``on_stdout`` gets every stdout line (decoded, newline kept).

    ``stdout_gate``: the child gets a stdout pipe that is already full, so its first write to stdout blocks
    until the event is set (then the filler is read and dropped, and its lines flow as usual). A program that
    prints before doing anything else can so be started ahead and held at that point (restic restore before 0.16:
    see :mod:`preuve.drills.prestart`). stderr flows meanwhile; the deadline runs from the start.
    """
    argv = tuple(argv)
    shown = tuple(redact.mask(a) for a in argv)
    scope = _current_scope.get()
    if scope is not None and scope.cancelled:
        raise Cancelled(scope.reason)
    started_at = datetime.now(UTC)
    start = time.monotonic()
    deadline = deadline_s if isinstance(deadline_s, Deadline) else Deadline(deadline_s)
    log.debug("run %s (deadline %.0fs)", " ".join(shown), deadline.seconds)
    gated = _full_pipe() if stdout_gate is not None else None
    held: list[int] = []
    try:
        with _interrupt_held(held):
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=gated[1] if gated is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,  # its own process group, so the deadline ends restic *and* ssh
            )
    except OSError as exc:
        if gated is not None:
            os.close(gated[0])
        raise FileNotFoundError(f"cannot start {argv[0]}: {exc.strerror}") from exc
    finally:
        if gated is not None:
            os.close(gated[1])  # the child has its copy
    # From here on restic runs: an interruption (Ctrl-C arrives whenever it likes, e.g. while a thread starts)
    # must end it, so everything up to the reading loop is guarded too.
    try:
        stdout: IO[bytes] = os.fdopen(gated[0], "rb") if gated is not None else _pipe(process.stdout)
        if held:
            raise KeyboardInterrupt  # the Ctrl-C that came while restic was starting
        with _running_lock:
            _running[process.pid] = shown[0]
            if scope is not None:
                _scoped[process.pid] = (process, scope)
        if scope is not None and scope.cancelled:
            # cancelled between the check above and the registration: cancel() did not see this process
            threading.Thread(target=_end, args=(process,), name=f"cancel-{process.pid}", daemon=True).start()

        out = _Keeper(keep_tail=False)
        err = _Keeper(keep_tail=True)
        timed_out = threading.Event()
        callback_error: list[BaseException] = []

        def read_stderr() -> None:
            assert process.stderr is not None
            for raw in process.stderr:
                line = raw.decode("utf-8", errors="replace")
                err.add(line)
                if on_stderr is not None:
                    try:
                        on_stderr(line)
                    except Exception as exc:  # report on the main thread
                        callback_error.append(exc)

        def watchdog() -> None:
            timed_out.set()
            _end(process)

        stdout_done = threading.Event()

        def reaper() -> None:
            # If restic dies (OOM killer, kill -9) its children may keep our pipes open and stdout would never end:
            # once restic itself is gone, whatever is left of its process group follows it.
            process.wait()
            if not stdout_done.wait(ORPHAN_GRACE_S):
                _kill_group(process.pid, signal.SIGKILL)

        stderr_thread = threading.Thread(target=read_stderr, name=f"stderr-{process.pid}", daemon=True)
        stderr_thread.start()
        deadline.arm(start, watchdog)
        threading.Thread(target=reaper, name=f"reaper-{process.pid}", daemon=True).start()
    except BaseException:
        deadline.disarm()
        with _running_lock:
            _running.pop(process.pid, None)
            _scoped.pop(process.pid, None)
        _end(process)
        _kill_group(process.pid, signal.SIGKILL)
        raise
    lines = 0
    try:
        if gated is not None and stdout_gate is not None:
            _wait_for_gate(stdout_gate, process)
            _read_exactly(stdout, gated[2])
        for raw in stdout:
            lines += 1
            line = raw.decode("utf-8", errors="replace")
            if keep_stdout:
                out.add(line)
            if on_stdout is not None:
                on_stdout(line)
        process.wait()
    except BaseException:
        # the callback failed or we were interrupted: restic must not outlive us
        _end(process)
        raise
    finally:
        stdout_done.set()
        deadline.disarm()
        stderr_thread.join(TERM_GRACE_S)
        with _running_lock:
            _running.pop(process.pid, None)
            _scoped.pop(process.pid, None)
        _kill_group(process.pid, signal.SIGKILL)  # stray children, if any
        _close_pipes(process, stderr_thread)
        if gated is not None:
            with contextlib.suppress(OSError):
                stdout.close()
    if scope is not None and scope.cancelled:
        log.debug("%s ended: %s", shown[0], scope.reason)
        raise Cancelled(scope.reason)
    if callback_error:
        raise callback_error[0]
    duration = time.monotonic() - start
    killed = timed_out.is_set()
    completed = Completed(
        argv=shown,
        exit_code=None if killed else process.returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration_s=duration,
        timed_out=killed,
        stdout_lines=lines,
        started_at=started_at,
    )
    log.debug("exit %s after %.2fs: %s", completed.exit_code, duration, shown[1:2])
    return completed
