"""The restore log written while the drill runs, so that the console (and `preuve drill show --log`) can follow it.

:class:`LiveLog` is the drill's :class:`preuve.restic.watch.CommandWatcher`. Each restic command gets its row as
soon as it starts (masked argv, start time), the row of the one running is rewritten with a bounded tail of its
stderr and how much it printed, and it is completed as soon as the command ends. Writes happen on a thread of
its own, never on the drill's: a command starting or ending is written at once, output at most every
:data:`FLUSH_S` (and only when there is some), so a restic printing a million lines costs a write a second, not a
row per line. A database that is away costs nothing but the live view: the drill goes on, the writes are retried,
and :func:`preuve.store.records.finish_drill` stores the complete log from the drill's result in any case.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from preuve.drills.result import CommandLog
from preuve.store.db import Store
from preuve.store.restore_log import write_live

log = logging.getLogger(__name__)

FLUSH_S = 1.0  # output of the running command reaches the store at most this often
TAIL_LINES = 200  # of the running command's stderr, shown while it runs (the result keeps its own head and tail)
TAIL_BYTES = 16 * 1024
CLOSE_WAIT_S = 15.0  # how long the drill's end waits for the last live write before recording its result


@dataclass
class _Running:
    argv: tuple[str, ...]
    started_at: datetime
    started: float  # monotonic
    tail: deque[str] = field(default_factory=deque)
    tail_bytes: int = 0
    stderr_lines: int = 0
    stdout_lines: int = 0
    dirty: bool = True  # changed since written
    written: bool = False  # its row exists

    def add(self, line: str) -> None:
        self.tail.append(line)
        self.tail_bytes += len(line)
        self.stderr_lines += 1
        while self.tail and (len(self.tail) > TAIL_LINES or self.tail_bytes > TAIL_BYTES):
            self.tail_bytes -= len(self.tail.popleft())
        self.dirty = True

    def snapshot(self, *, running: bool, note: str = "") -> CommandLog:
        hidden = self.stderr_lines - len(self.tail)
        head = [f"[... {hidden} earlier lines not shown ...]\n"] if hidden else []
        counts = f"{self.stdout_lines} stdout and {self.stderr_lines} stderr lines so far"
        return CommandLog(
            argv=self.argv,
            started_at=self.started_at,
            duration_s=round(time.monotonic() - self.started, 3),
            exit_code=None,
            stdout="",
            stderr="".join([*head, *self.tail]),
            note=f"{note}; {counts}" if note else f"running: {counts}",
            running=running,
        )


class LiveLog:
    """Use as a context manager around the drill; pass it to the engine as its watcher."""

    def __init__(self, store: Store, drill_id: int, *, flush_s: float = FLUSH_S) -> None:
        self.store = store
        self.drill_id = drill_id
        self.flush_s = flush_s
        self.writes = 0  # transactions that wrote something: how bounded the live log is
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running: dict[int, _Running] = {}
        self._done: dict[int, CommandLog] = {}  # ended, not yet written
        self._stopping = False
        self._open = True  # False once the drill is final in the store: nothing more to write
        self._failing = False
        self._last_write = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"live-log-{drill_id}", daemon=True)

    def __enter__(self) -> LiveLog:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Write what is pending, then stop. Bounded: the drill's result must not wait on a database that hangs."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(CLOSE_WAIT_S)
            if self._thread.is_alive():
                log.warning(
                    "drill %d: the live restore log is still being written; its result completes it", self.drill_id
                )

    # --- CommandWatcher --------------------------------------------------------------------------------------
    def started(self, seq: int, argv: tuple[str, ...], started_at: datetime) -> None:
        with self._lock:
            self._running[seq] = _Running(argv, started_at, time.monotonic())
            self._done.pop(seq, None)
        self._wake.set()

    def stdout_line(self, seq: int) -> None:
        running = self._running.get(seq)  # a dict read is atomic; the count is only written on this thread
        if running is not None:
            running.stdout_lines += 1
            running.dirty = True

    def stderr_line(self, seq: int, line: str) -> None:
        with self._lock:
            running = self._running.get(seq)
            if running is not None:
                running.add(line)

    def finished(self, seq: int, command: CommandLog) -> None:
        with self._lock:
            self._running.pop(seq, None)
            self._done[seq] = command
        self._wake.set()

    def abandoned(self, seq: int, reason: str) -> None:
        with self._lock:
            running = self._running.pop(seq, None)
            if running is not None:
                self._done[seq] = running.snapshot(running=False, note=reason)
        self._wake.set()

    # --- the writer thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            stopping = self._stopping
            if self._open:
                self._flush(final=stopping)
            if stopping:
                return

    def _pending(self, final: bool) -> tuple[list[tuple[int, CommandLog]], list[tuple[int, _Running]]]:
        """What to write now: ended commands, new running ones, and output at most every flush_s."""
        output_due = final or time.monotonic() - self._last_write >= self.flush_s
        with self._lock:
            entries = list(self._done.items())
            running = [(seq, r) for seq, r in self._running.items() if not r.written or (r.dirty and output_due)]
            for _seq, r in running:
                r.dirty = False
            entries += [(seq, r.snapshot(running=True)) for seq, r in running]
        return entries, running

    def _flush(self, final: bool) -> None:
        entries, running = self._pending(final)
        if not entries:
            return
        try:
            self._open = write_live(self.store, self.drill_id, entries)
        except Exception as exc:  # the drill goes on; its result stores the whole log anyway
            with self._lock:
                for _seq, r in running:
                    r.dirty = True
            if not self._failing:
                log.warning(
                    "drill %d: could not write its live restore log (%s); retrying",
                    self.drill_id,
                    type(exc).__name__,
                )
            self._failing = True
            return
        self._failing = False
        self.writes += 1
        self._last_write = time.monotonic()
        written = dict(entries)
        with self._lock:
            for seq, command in written.items():
                if not command.running and self._done.get(seq) is command:
                    del self._done[seq]
            for seq, r in running:
                if self._running.get(seq) is r:
                    r.written = True
