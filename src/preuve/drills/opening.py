"""Open the repository and list the snapshot to restore at the same time.

`restic snapshots` and `restic ls` each pay restic's key derivation (calibrated by restic to about half a second
of one core) before doing anything, and `ls latest` (or `ls PREFIX`) does not need the snapshot list to start: run
together, they cost about one of them. What each proves is unchanged: the snapshot list is read and recorded in
full, the snapshot drilled is the one :func:`preuve.drills.engine.choose_snapshot` picks from it (listed again by
its id when ``ls`` picked another one, e.g. a backup finished in between), and every failure is reported as the
sequential order reported it: the repository that does not open first, then the snapshot that is not there, then
the listing that failed.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from preuve.errors import PreuveError
from preuve.restic import execute
from preuve.restic.parse import LsItem, Snapshot
from preuve.restic.runner import Restic

Chooser = Callable[[list[Snapshot]], Snapshot]
# A fresh consumer of one listing, told the id of the snapshot listed when it is known beforehand (None for the
# first listing, of `latest` or a prefix: its first line names the snapshot). A second listing (of the chosen
# snapshot, when the first one listed another) starts from an empty state.
Consumer = Callable[[str | None], Callable[[LsItem], None]]

_SNAPSHOT_ID = re.compile(r"[0-9a-f]{1,64}")


def is_snapshot_id(text: str) -> bool:
    """Whether ``text`` can be handed to restic as a snapshot id or prefix (never an option, never a path)."""
    return bool(_SNAPSHOT_ID.fullmatch(text.lower()))


@dataclass(frozen=True)
class Opened:
    snapshots: list[Snapshot]  # the whole list, oldest first
    snapshot: Snapshot  # the one listed
    open_s: float  # how long `restic snapshots` took: the fixed cost of opening this repository


def open_and_list(
    restic: Restic,
    wanted: str | None,
    choose: Chooser,
    consumer: Consumer,
    *,
    label: str,
    ls_deadline_s: float,
    snapshots_without_lock: bool = False,
) -> Opened:
    """`snapshots` on a second thread while `ls` streams into ``consumer()`` on this one.

    ``wanted`` is the snapshot id or prefix asked for (None: the newest). A prefix that is not hexadecimal never
    reaches restic's argv; the snapshot list alone answers it. ``snapshots_without_lock``: another restic of this
    drill holds a lock on the repository meanwhile (a full drill's restore, see :mod:`.prestart`). restic 0.14
    retries for about 44 s to load a lock file that was listed and is gone, which two locking restics of one
    drill run at once make likely (one ends during the other's lock check); the restore's lock then stands for
    both, and its lock check still stops the drill on an exclusive lock.
    """
    if wanted is not None and not is_snapshot_id(wanted):
        return _one_after_the_other(restic, choose, consumer, ls_deadline_s=ls_deadline_s)
    scope = execute.CancelScope(f"opening {label}", parent=execute.current_scope())
    opening = _Opening(restic, scope, no_lock=snapshots_without_lock)
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(opening.run,), name=f"snapshots {label}", daemon=True
    )
    listed: list[Snapshot] = []
    on_item = consumer(None)

    def first_snapshot(item: LsItem) -> None:
        if isinstance(item, Snapshot) and not listed:
            listed.append(item)
        on_item(item)

    listing_error: PreuveError | None = None
    thread.start()
    try:
        with execute.cancel_scope(scope):
            restic.ls(wanted.lower() if wanted else "latest", first_snapshot, deadline_s=ls_deadline_s)
    except PreuveError as exc:
        listing_error = exc  # reported after the snapshot list, which may explain it (no such snapshot)
    except execute.Cancelled:
        thread.join()
        if opening.error is None and (opening.raised is None or isinstance(opening.raised, execute.Cancelled)):
            raise  # the drill was stopped, not the listing by a repository that did not open
    except BaseException:
        scope.cancel("the drill stopped")
        thread.join()
        raise
    thread.join()  # `snapshots` has its own deadline
    if opening.raised is not None:
        raise opening.raised
    if opening.error is not None:
        raise opening.error
    snapshots = opening.snapshots
    chosen = choose(snapshots)
    if listing_error is not None:
        raise listing_error
    if not listed or listed[0].id != chosen.id:
        restic.ls(chosen.id, consumer(chosen.id), deadline_s=ls_deadline_s)
    return Opened(snapshots, chosen, opening.duration_s)


def _one_after_the_other(restic: Restic, choose: Chooser, consumer: Consumer, *, ls_deadline_s: float) -> Opened:
    started = time.monotonic()
    snapshots = restic.snapshots()
    open_s = time.monotonic() - started
    chosen = choose(snapshots)
    restic.ls(chosen.id, consumer(chosen.id), deadline_s=ls_deadline_s)
    return Opened(snapshots, chosen, open_s)


class _Opening:
    """`restic snapshots` on its thread; a failure stops the listing running beside it."""

    def __init__(self, restic: Restic, scope: execute.CancelScope, *, no_lock: bool) -> None:
        self.restic = restic
        self.scope = scope
        self.no_lock = no_lock
        self.snapshots: list[Snapshot] = []
        self.error: PreuveError | None = None
        self.raised: BaseException | None = None
        self.duration_s = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            with execute.cancel_scope(self.scope):
                self.snapshots = self.restic.snapshots(no_lock=self.no_lock)
        except PreuveError as exc:
            self.error = exc
            self.scope.cancel("the repository did not open")
        except BaseException as exc:  # Cancelled, or a bug: handed to the drill's thread
            self.raised = exc
            self.scope.cancel("the repository could not be opened")
        finally:
            self.duration_s = time.monotonic() - started
