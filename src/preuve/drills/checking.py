"""Our verification of a restore, started while restic runs its own.

`restic restore --verify` writes every file, prints ``verifying files in DIR``, then reads every file back to
check it against the repository's blob hashes. From that line on the restored tree is complete and final: restic
prints it after the restore itself returned, and only when that restore had no errors, then only reads. Our own
pass (sizes, SHA-256, live source, content) reads the same files, so it starts at that line instead of after
restic exits, and both read from the page cache at once. Checked files are deleted only once restic has exited
(:meth:`Verifier.hold_discards`). Without the line (restic failed, or printed nothing) our pass starts when
restic exits, as before.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator

from preuve.drills.verify import Expected, Report, Verifier

RESTIC_VERIFYING = "verifying files in "


class Verification:
    """One pass of a :class:`Verifier` over ``expected()``, on a thread once restic says its restore is complete.

    The verifier is made by ``make_verifier`` when the pass starts, not before: it may open the live source
    (an SFTP connection that should not idle through a long restore).
    """

    def __init__(
        self,
        make_verifier: Callable[[], Verifier],
        expected: Callable[[], Iterator[Expected]],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.make_verifier = make_verifier
        self.expected = expected
        self.progress = progress
        self.report: Report | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._restic_done = False
        self._verifier: Verifier | None = None
        self._thread: threading.Thread | None = None

    @property
    def started_early(self) -> bool:
        return self._thread is not None

    def on_restic_line(self, line: str) -> None:
        """restic's stdout during the restore, line by line (on the thread reading it: never raises)."""
        if self._thread is None and line.startswith(RESTIC_VERIFYING):
            self._thread = threading.Thread(
                target=contextvars.copy_context().run, args=(self._run,), name="verify", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            verifier = self.make_verifier()
            with self._lock:
                if not self._restic_done:
                    verifier.hold_discards()  # restic still reads the files
                self._verifier = verifier
            self.report = verifier.verify(self.expected(), progress=self.progress, stop=self._stop)
        except BaseException as exc:  # handed to the drill's thread by result()
            self.error = exc

    def _restic_exited(self) -> None:
        with self._lock:
            self._restic_done = True
            verifier = self._verifier
        if verifier is not None:
            verifier.release_discards()

    def result(self) -> Report:
        """Once restic exited: the report, when every file is checked (now, if the pass has not started)."""
        self._restic_exited()
        if self._thread is None:
            self._run()
        else:
            self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report

    def stop(self) -> None:
        """The drill ends otherwise (restic failed, interrupt): end the pass before the sandbox goes."""
        self._stop.set()
        self._restic_exited()  # restic is gone when this is called: nothing reads the files any more
        if self._thread is not None:
            self._thread.join()
