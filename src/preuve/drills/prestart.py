"""A full drill's `restic restore`, started while the snapshot is listed and held before it writes anything.

`restic restore` spends its first second or so on work that needs nothing from the listing: deriving the key
(calibrated by restic to about half a second of one core), taking its lock (then waiting 200 ms for competing
locks), loading the index and the snapshot. Before 0.16 it then prints ``restoring <Snapshot ID of [...] at ...>
to TARGET`` with a plain blocking write to stdout, and only after that write returns does it create anything in
TARGET (cmd_restore.go: ``Verbosef("restoring ...")`` then ``res.RestoreTo``). Started with a stdout pipe that is
already full (``execute.run(stdout_gate=...)``), it stops at that write. So the drill still checks the room in
the sandbox, and which snapshot it restores, before a single byte lands there:

* the gate opens only after the listing is complete and ``Sandbox.require_space`` passed; any failure before
  (repository, snapshot, space) ends the held restic, which wrote nothing;
* the ``restoring`` line must name the snapshot chosen from the full list (restic was started on ``latest`` or
  the prefix asked for, like ``ls``): if it names another one (a backup finished in between), restic is stopped
  at once, the restore folder emptied, and the chosen snapshot restored the usual way.

From 0.16 restic prints through a status goroutine, the write no longer holds it back, and a full drill starts
its restore after the listing, as a sample drill always does.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable

from preuve.errors import PreuveError
from preuve.restic import execute
from preuve.restic.parse import Snapshot
from preuve.restic.runner import Restic
from preuve.restic.versions import Version, has

_RESTORING = re.compile(r"^restoring <Snapshot ([0-9a-f]{4,64}) of ")


def can_prestart(version: Version) -> bool:
    return not has(version, "restore_async_output")


class _OtherSnapshot(Exception):
    """Raised from restic's stdout callback: execute.run then stops restic at once."""


class PrestartedRestore:
    """`restic restore` on a thread of its own, held at its first stdout line until :meth:`release`."""

    def __init__(self, restic: Restic, args: tuple[str, ...], *, what: str, deadline_s: float, label: str) -> None:
        self.restic = restic
        self.args = args
        self.what = what
        self.deadline = execute.Deadline(deadline_s)
        self.scope = execute.CancelScope(f"restore of {label}", parent=execute.current_scope())
        self.on_stdout: Callable[[str], None] | None = None
        self.completed: execute.Completed | None = None
        self.error: PreuveError | None = None
        self.raised: BaseException | None = None
        self._gate = threading.Event()
        self._expected = ""
        self._decided = threading.Event()
        self._confirmed = False
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,), name=f"restore {label}", daemon=True
        )
        self.started_at = self.released_at = 0.0

    def start(self) -> PrestartedRestore:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with execute.cancel_scope(self.scope):
                self.completed, self.error = self.restic.run(
                    self.args,
                    what=self.what,
                    deadline_s=self.deadline,
                    check=False,
                    on_stdout=self._line,
                    stdout_gate=self._gate,
                )
        except BaseException as exc:  # _OtherSnapshot, Cancelled, or a bug: for the drill's thread
            self.raised = exc
        finally:
            self._decided.set()  # exited before naming a snapshot: its result says why

    def _line(self, line: str) -> None:
        if not self._decided.is_set():
            match = _RESTORING.match(line)
            if match is None:
                return  # an earlier notice; restic is held again at its next line anyway
            self._confirmed = self._expected.startswith(match.group(1))
            self._decided.set()
            if not self._confirmed:
                raise _OtherSnapshot(match.group(1))
        if self.on_stdout is not None:
            self.on_stdout(line)

    def release(self, snapshot: Snapshot, deadline_s: float, on_stdout: Callable[[str], None] | None) -> bool:
        """Let restic write, now that the listing and the space check are done, with ``deadline_s`` from now;
        True when it restores ``snapshot`` (or failed before saying which: :meth:`result` then says why), False
        when it was about to restore another one and was stopped (the restore folder may hold some of its files)."""
        self._expected = snapshot.id
        self.on_stdout = on_stdout
        self.released_at = time.monotonic()
        self.deadline.move(self.released_at - self.started_at + deadline_s)
        self._gate.set()
        self._decided.wait()
        if self._confirmed:
            return True
        self._thread.join()
        return not isinstance(self.raised, _OtherSnapshot)

    def result(self) -> tuple[execute.Completed, PreuveError | None]:
        """restic's run, once it exited (after a confirming :meth:`release`)."""
        self._thread.join()
        if self.raised is not None:
            raise self.raised
        assert self.completed is not None
        return self.completed, self.error

    def stop(self, reason: str) -> None:
        """End restic if it still runs (the drill failed before releasing it, or is interrupted); wait for it."""
        if self._thread.is_alive():
            self.scope.cancel(reason)
        if self._thread.ident is not None:
            self._thread.join()
