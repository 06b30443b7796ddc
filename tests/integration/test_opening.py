"""Opening a repository and listing a snapshot at once (`restic snapshots` beside `restic ls`), on a real local
repository: the snapshot drilled is always the one chosen from the full list, and a stopped drill leaves no
restic behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from preuve.drills.engine import choose_snapshot
from preuve.drills.opening import open_and_list
from preuve.errors import FailureClass, PreuveError
from preuve.restic import execute
from preuve.restic.parse import LsItem, Node, Snapshot
from preuve.restic.runner import Restic
from tests.integration.drill_helpers import make_restic
from tests.support.fixtures_services import TargetRepo

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("target_repo", ["local"], indirect=True)]


class Recorder:
    """A consumer that remembers each listing it was asked to start and what each one received."""

    def __init__(self) -> None:
        self.starts: list[str | None] = []
        self.files: list[list[str]] = []
        self.snapshots: list[list[str]] = []

    def __call__(self, snapshot_id: str | None) -> Callable[[LsItem], None]:
        self.starts.append(snapshot_id)
        files: list[str] = []
        seen: list[str] = []
        self.files.append(files)
        self.snapshots.append(seen)

        def on_item(item: LsItem) -> None:
            if isinstance(item, Snapshot):
                seen.append(item.id)
            elif isinstance(item, Node) and item.type == "file":
                files.append(item.path)

        return on_item


def _commands(restic: Restic) -> list[tuple[str, ...]]:
    return [entry.argv for entry in restic.log if "version" not in entry.argv]


def test_newest_snapshot_is_listed_once_beside_the_snapshot_list(tmp_path: Path, target_repo: TargetRepo) -> None:
    restic = make_restic(tmp_path, target_repo)
    record = Recorder()
    opened = open_and_list(
        restic, None, lambda s: choose_snapshot(s, None, "acme/main"), record, label="acme/main", ls_deadline_s=120
    )
    assert opened.snapshot.id == target_repo.latest_snapshot_id
    assert [s.id for s in opened.snapshots] == target_repo.snapshot_ids
    assert record.starts == [None]
    assert record.snapshots == [[target_repo.latest_snapshot_id]]
    assert len(record.files[0]) == target_repo.manifest.file_count
    assert sorted(argv[-1] for argv in _commands(restic)) == ["--json", "latest"]  # snapshots --json, ls latest
    assert opened.open_s > 0


def test_a_listing_of_another_snapshot_than_the_chosen_one_is_done_again(
    tmp_path: Path, target_repo: TargetRepo
) -> None:
    # as if a backup had finished between `ls latest` and `snapshots`: the list's choice wins
    restic = make_restic(tmp_path, target_repo)
    record = Recorder()
    older = target_repo.snapshot_ids[0]
    opened = open_and_list(restic, None, lambda s: s[0], record, label="acme/main", ls_deadline_s=120)
    assert opened.snapshot.id == older
    assert record.starts == [None, older]
    assert record.snapshots[-1] == [older]
    assert len(record.files[-1]) == target_repo.first_manifest.file_count
    assert _commands(restic)[-1][-2:] == ("--json", older)


def test_a_prefix_is_listed_directly_and_a_wrong_one_is_explained_by_the_list(
    tmp_path: Path, target_repo: TargetRepo
) -> None:
    restic = make_restic(tmp_path, target_repo)
    older = target_repo.snapshot_ids[0]
    record = Recorder()
    opened = open_and_list(
        restic, older[:8].upper(), lambda s: choose_snapshot(s, older[:8].upper(), "x"), record, label="x",
        ls_deadline_s=120,
    )  # fmt: skip
    assert opened.snapshot.id == older and record.starts == [None]
    for wanted, reaches_restic in (("deadbeef", True), ("--no-lock", False), ("zz", False)):
        record = Recorder()
        with pytest.raises(PreuveError) as caught:
            open_and_list(
                restic, wanted, lambda s, w=wanted: choose_snapshot(s, w, "x"), record, label="x", ls_deadline_s=120
            )
        assert caught.value.failure_class is FailureClass.MISSING_SNAPSHOT, caught.value
        # only an id-like prefix is handed to `restic ls`; anything else is never an argument
        assert any(wanted in argv for argv in _commands(restic)) is reaches_restic


def test_a_stopped_drill_stops_both_calls(tmp_path: Path, target_repo: TargetRepo) -> None:
    restic = make_restic(tmp_path, target_repo)
    scope = execute.CancelScope("drill #1")
    threading.Timer(0.15, scope.cancel, args=("Preuve was stopped",)).start()
    started = time.monotonic()
    with execute.cancel_scope(scope), pytest.raises(execute.Cancelled, match="Preuve was stopped"):
        open_and_list(restic, None, lambda s: s[-1], Recorder(), label="x", ls_deadline_s=120)
    assert time.monotonic() - started < 10
    assert execute.running_groups() == []
