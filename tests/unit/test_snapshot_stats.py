"""Choosing the snapshot to diff against, and measuring with restic stubbed out (failures, time budget)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from preuve.errors import FailureClass, PreuveError
from preuve.restic.execute import Completed
from preuve.restic.parse import Snapshot
from preuve.restic.runner import Restic
from preuve.targets.snapshot_stats import measure, previous_snapshot

T0 = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


def snap(name: str, hours: int, host: str = "srv1", paths: tuple[str, ...] = ("/srv",)) -> Snapshot:
    return Snapshot(id=name * 8, short_id=name, time=T0 + timedelta(hours=hours), paths=paths, hostname=host)


def statistics(changed: int, added: int, removed: int) -> str:
    side = {"dirs": 0, "others": 0, "data_blobs": 0, "tree_blobs": 0, "bytes": 0}
    return json.dumps(
        {
            "message_type": "statistics",
            "changed_files": changed,
            "added": {"files": added, **side},
            "removed": {"files": removed, **side},
        }
    )


class FakeRestic:
    """Answers `stats` and `diff` from a table; records what was asked."""

    label = "acme/usb"

    def __init__(self, answers: dict[tuple[str, ...], str | PreuveError | None], clock: list[float] | None = None):
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []
        self.deadlines: list[float] = []
        self.clock = clock

    def run(
        self,
        args: Iterable[str],
        *,
        what: str,
        deadline_s: float,
        on_stdout: Callable[[str], None] | None = None,
        keep_stdout: bool = True,
        check: bool = True,
        note: str = "",
    ) -> tuple[Completed, PreuveError | None]:
        argv = tuple(args)
        self.calls.append(argv)
        self.deadlines.append(deadline_s)
        key = (argv[0], *argv[-2:]) if argv[0] == "diff" else (argv[0], argv[-1])
        answer = self.answers.get(key, PreuveError(FailureClass.INTERNAL, "no answer"))
        timed_out = answer is None
        error = (
            answer
            if isinstance(answer, PreuveError)
            else PreuveError(FailureClass.TIMEOUT, "deadline")
            if timed_out
            else None
        )
        stdout = answer if isinstance(answer, str) else ""
        if on_stdout is not None:
            for line in stdout.splitlines(keepends=True):
                on_stdout(line)
        completed = Completed(
            argv=argv,
            exit_code=None if timed_out else (1 if error else 0),
            stdout=stdout if keep_stdout else "",
            stderr="",
            duration_s=0.5,
            timed_out=timed_out,
            stdout_lines=len(stdout.splitlines()),
            started_at=T0,
        )
        if error is not None and check:
            raise error
        return completed, error


def run_measure(fake: FakeRestic, snapshots: list[Snapshot], wanted: list[str], deadline_s: float = 60) -> Any:
    return measure(cast(Restic, fake), snapshots, wanted, deadline_s=deadline_s)


def size(total: int, count: int) -> str:
    return json.dumps({"total_size": total, "total_file_count": count, "snapshots_count": 1})


# --------------------------------------------------------------------------------------------- previous one


def test_previous_prefers_the_same_host_and_paths() -> None:
    a, b, c = snap("a", 0), snap("b", 1, host="laptop"), snap("c", 2, paths=("/home",))
    d = snap("d", 3, paths=("/srv",))
    listing = [a, b, c, d]
    assert previous_snapshot(listing, d) == a  # b and c are other jobs
    assert previous_snapshot(listing, c) == b  # no earlier /home snapshot: simply the previous one
    assert previous_snapshot(listing, a) is None
    assert previous_snapshot([d, c, b, a], d) == a  # order of the listing does not matter


def test_previous_paths_compare_as_sets_and_ties_break_on_id() -> None:
    a = snap("a", 0, paths=("/x", "/y"))
    b = snap("b", 0, paths=("/y", "/x"))
    assert previous_snapshot([a, b], b) == a
    assert previous_snapshot([a, b], a) is None


# ------------------------------------------------------------------------------------------------- measuring


def test_measures_stats_and_changes_against_the_previous_snapshot() -> None:
    a, b = snap("a", 0), snap("b", 24)
    fake = FakeRestic(
        {
            ("stats", b.id): size(2048, 7),
            ("diff", a.id, b.id): '{"message_type":"change","path":"/srv/x","modifier":"M"}\n' + statistics(1, 2, 3),
            ("stats", a.id): size(1024, 5),
        }
    )
    [second, first] = run_measure(fake, [a, b], [b.id, a.id])
    assert (second.snapshot_id, second.size_bytes, second.file_count, second.changed_files) == (b.id, 2048, 7, 6)
    assert second.compared_with == a.id
    # the first snapshot has nothing to compare with: changed_files is None (no baseline), not 0
    assert (first.snapshot_id, first.size_bytes, first.changed_files, first.compared_with) == (a.id, 1024, None, None)
    assert first.measured_at.tzinfo is not None
    assert fake.calls == [
        ("stats", "--json", "--mode", "restore-size", b.id),
        ("diff", "--json", a.id, b.id),
        ("stats", "--json", "--mode", "restore-size", a.id),
    ]


def test_failures_skip_the_snapshot_and_go_on() -> None:
    a, b, c, d = snap("a", 0), snap("b", 1), snap("c", 2), snap("d", 3)
    fake = FakeRestic(
        {
            ("stats", d.id): PreuveError(FailureClass.REPO_LOCKED, "locked"),  # stats fails: diff not even tried
            ("stats", c.id): size(10, 1),
            ("diff", b.id, c.id): "not json at all\n",  # no statistics: the whole snapshot waits for later
            ("stats", b.id): size(20, 2),
            ("diff", a.id, b.id): statistics(0, 0, 0),
        }
    )
    results = run_measure(fake, [a, b, c, d], [d.id, c.id, b.id, "f" * 64, b.id])
    assert [(r.snapshot_id, r.size_bytes, r.changed_files) for r in results] == [(b.id, 20, 0)]
    assert ("diff", "--json", c.id, d.id) not in fake.calls
    assert sum(1 for call in fake.calls if call[-1] == b.id) == 2  # asked twice, measured once


def test_time_budget_stops_measuring() -> None:
    a, b, c = snap("a", 0), snap("b", 1), snap("c", 2)
    fake = FakeRestic({("stats", c.id): None})  # times out
    assert run_measure(fake, [a, b, c], [c.id, b.id]) == []
    assert len(fake.calls) == 1  # nothing more after a command hit the deadline
    assert fake.deadlines[0] <= 60

    fake = FakeRestic({("stats", b.id): size(1, 1)})
    assert run_measure(fake, [a, b, c], [b.id], deadline_s=1.0) == []  # too little time to start restic at all
    assert fake.calls == []


def test_unexpected_version_failure_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    a = snap("a", 0)

    class Broken(FakeRestic):
        def run(self, *args: Any, **kwargs: Any) -> tuple[Completed, PreuveError | None]:
            raise PreuveError(FailureClass.INTERNAL, "restic cannot be started")

    assert run_measure(Broken({}), [a], [a.id]) == []
    assert "cannot be started" in caplog.text
