"""A full drill's restore started ahead and held at its first stdout line (restic before 0.16), on a real local
repository: nothing lands in the sandbox before it is released, it restores the snapshot it is released for or is
stopped, and a stopped drill leaves no restic behind."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from preuve.drills.prestart import PrestartedRestore, can_prestart
from preuve.restic import commands, execute
from preuve.restic.parse import Snapshot
from tests.integration.drill_helpers import Setup, make_restic, make_setup
from tests.support import faults
from tests.support.fixtures_services import TargetRepo

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("target_repo", ["local"], indirect=True)]


@pytest.fixture
def prestart_possible(tmp_path: Path, target_repo: TargetRepo) -> None:
    if not can_prestart(make_restic(tmp_path / "probe", target_repo).version):
        pytest.skip("restic 0.16+ prints asynchronously: full drills restore after the listing")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _snapshot(snapshot_id: str) -> Snapshot:
    return Snapshot.from_json({"id": snapshot_id, "time": "2024-01-15T10:00:00Z", "paths": ["/srv"]})


def _held(tmp_path: Path, target_repo: TargetRepo) -> tuple[PrestartedRestore, Path]:
    restic = make_restic(tmp_path, target_repo)
    target = tmp_path / "restore"
    restore = PrestartedRestore(
        restic, commands.restore("latest", target, verify=True), what="restoring", deadline_s=120, label="acme/main"
    ).start()
    time.sleep(3)  # several times what restic needs here to open the repository and reach its first line
    return restore, target


@pytest.mark.usefixtures("prestart_possible")
def test_nothing_is_written_before_the_release_then_the_snapshot_is_restored(
    tmp_path: Path, target_repo: TargetRepo
) -> None:
    restore, target = _held(tmp_path, target_repo)
    assert _files(target) == []
    lines: list[str] = []
    assert restore.release(_snapshot(target_repo.latest_snapshot_id), 120, lines.append)
    completed, error = restore.result()
    assert error is None and completed.exit_code == 0, completed.stderr
    assert len(_files(target)) >= target_repo.manifest.file_count
    assert any(line.startswith("verifying files in") for line in lines)


@pytest.mark.usefixtures("prestart_possible")
def test_a_restore_of_another_snapshot_is_stopped_before_it_goes_on(tmp_path: Path, target_repo: TargetRepo) -> None:
    restore, _ = _held(tmp_path, target_repo)
    assert not restore.release(_snapshot(target_repo.snapshot_ids[0]), 120, None)  # `latest` is the newer one
    restore.stop("done")
    assert execute.running_groups() == []


@pytest.mark.usefixtures("prestart_possible")
def test_a_held_restore_is_stopped_with_the_drill(tmp_path: Path, target_repo: TargetRepo) -> None:
    restore, target = _held(tmp_path, target_repo)
    restore.stop("the repository did not open")
    assert execute.running_groups() == []
    assert _files(target) == []
    with pytest.raises(execute.Cancelled):
        restore.result()


def test_a_full_drill_of_an_older_snapshot(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    older = target_repo.snapshot_ids[0]
    rc, result = setup.drill("--full", "--snapshot", older[:10])
    assert rc == 0, result
    assert result["snapshot_id"] == older
    assert result["files_checked"] == target_repo.first_manifest.file_count
    assert setup.sandboxes() == []


def test_a_full_drill_in_a_sandbox_without_room_is_refused(tmp_path: Path, target_repo: TargetRepo) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        setup: Setup = make_setup(tmp_path, target_repo)
        setup.sandbox = small
        setup.write_settings()
        rc, result = setup.drill("--full")
        assert rc == 3
        assert result["failure_class"] == "sandbox", result
        assert setup.sandboxes() == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_a_full_drill_on_a_locked_repository_is_stopped_by_the_restore_s_lock(
    tmp_path: Path, target_repo: TargetRepo
) -> None:
    # the snapshot list is read without a lock while the restore holds one: the restore's check must still stop
    faults.leave_stale_lock(target_repo.store, target_repo.restic_env())
    setup = make_setup(tmp_path, target_repo)
    rc, result = setup.drill("--full")
    assert rc == 3
    assert result["failure_class"] == "repo-locked", result
    assert "PID" in result["message"] and "unlock" in result["message"]
    assert setup.sandboxes() == []


def test_the_snapshot_list_is_read_without_a_lock_only_beside_a_held_restore(
    tmp_path: Path, target_repo: TargetRepo
) -> None:
    setup = make_setup(tmp_path, target_repo)
    for args, unlocked in ((("--full",), True), ((), False)):
        rc, result = setup.drill(*args)
        assert rc == 0, result
        log = json.loads(setup.preuve("drill", "show", str(result["drill_id"]), "--json", "--log").stdout)
        snapshots = [c["argv"] for c in log["commands"] if "snapshots" in c["argv"]]
        prestarted = can_prestart(make_restic(tmp_path / f"probe{len(args)}", target_repo).version)
        assert snapshots and ("--no-lock" in snapshots[0]) is (unlocked and prestarted)
