"""Integrity runs: `restic check --read-data-subset=n/t` on a rotation that reads every part within the window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.drill_helpers import make_setup
from tests.support import faults
from tests.support.fixtures_services import TargetRepo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target_repo", ["local", "s3"], indirect=True)
def test_rotation_reads_every_part_in_turn(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    # the standard policy: window 30d, one run a week -> 4 parts
    subsets = []
    for _ in range(5):
        rc, result = setup.drill("--integrity")
        assert rc == 0, result
        assert result["kind"] == "integrity" and result["status"] == "passed"
        subsets.append(result["subset"])
    assert subsets == ["1/4", "2/4", "3/4", "4/4", "1/4"]
    shown = json.loads(setup.preuve("drill", "show", "1", "--log", "--json").stdout)
    argv = " ".join(" ".join(c["argv"]) for c in shown["commands"])
    assert "check --read-data-subset=1/4" in argv
    assert setup.sandboxes() == []


@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_daily_schedule_means_more_parts(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    job = (setup.config / "jobs" / "acme.yaml").read_text()
    (setup.config / "jobs" / "acme.yaml").write_text(job + "schedule:\n  integrity: '0 3 * * *'\n")
    rc, result = setup.drill("--integrity")
    assert rc == 0, result
    assert result["subset"] == "1/30"


@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_corrupt_pack_is_found_by_the_part_that_reads_it(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    fault = faults.corrupt_pack(setup.repo.store, setup.repo.restic_env())
    results = [setup.drill("--integrity")[1] for _ in range(4)]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(failed) == 1, [(r["subset"], r["status"]) for r in results]
    assert failed[0]["failure_class"] == "corrupt-data"
    assert any(fault.pack_id[:8] in f["path"] or fault.pack_id[:8] in f["detail"] for f in failed[0]["findings"])
    assert all(r["status"] == "passed" for r in results if r is not failed[0])


@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_deleted_index_fails_every_part(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    faults.delete_index(setup.repo.store)
    rc, result = setup.drill("--integrity")
    assert rc == 1
    assert result["failure_class"] == "corrupt-data", result


def test_full_and_integrity_are_exclusive(tmp_path: Path) -> None:
    import subprocess

    from tests.integration.drill_helpers import PREUVE

    done = subprocess.run(
        [*PREUVE, "--config", str(tmp_path), "drill", "run", "a/b", "--full", "--integrity"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "choose one" in done.stderr
