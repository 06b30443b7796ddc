"""Restore drills against real repositories on every kind of target, healthy and broken.

Each test builds a fresh repository (two backups of a private copy of the dataset), points a configuration folder
at it and runs `preuve drill run --json` as a subprocess, as a technician would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.drill_helpers import Setup, make_setup
from tests.support.fixtures_services import TargetRepo

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path, target_repo: TargetRepo) -> Setup:
    return make_setup(tmp_path, target_repo)


def test_healthy_repository_passes(setup: Setup) -> None:
    rc, result = setup.drill()
    assert rc == 0, result
    assert result["status"] == "passed"
    assert result["failure_class"] is None
    assert result["snapshot_id"] == setup.repo.latest_snapshot_id
    # fewer files than the sample size: every file is drawn, and the canary is among them
    assert result["files_checked"] == setup.repo.manifest.file_count
    assert result["bytes_restored"] == setup.repo.manifest.total_bytes
    assert result["canaries_checked"] == 1
    assert result["estimated_full_restore_s"] is not None and result["estimated_full_restore_s"] > 0
    assert result["findings"] == []
    assert setup.sandboxes() == []


def test_full_drill_passes(setup: Setup) -> None:
    rc, result = setup.drill("--full")
    assert rc == 0, result
    assert result["kind"] == "full"
    assert result["files_checked"] == setup.repo.manifest.file_count
    assert setup.sandboxes() == []


def test_probe_reports_snapshots(setup: Setup) -> None:
    import json

    done = setup.preuve("targets", "probe", setup.ref, "--json")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["ok"] is True
    assert probe["snapshot_count"] == 2
    assert probe["newest_snapshot_id"] == setup.repo.latest_snapshot_id
    assert probe["repository_id"]
    kind_facts = {"local": "local", "sftp": "sftp", "s3": "s3", "rest": None}[setup.repo.kind]
    if kind_facts:
        assert kind_facts in probe["facts"]


def test_wrong_password_is_an_auth_error(setup: Setup) -> None:
    (setup.config / setup.spec["password_file"]).write_text("not-the-password\n")
    rc, result = setup.drill()
    assert rc == 3
    assert result["status"] == "error"
    assert result["failure_class"] == "auth"
    assert "password" in result["message"]
    assert setup.sandboxes() == []


def test_missing_repository(setup: Setup) -> None:
    kind = setup.repo.kind
    if kind in ("local", "sftp"):
        setup.write_job(path=str(setup.repo.workdir / "no-such-repo"))
    elif kind == "s3":
        setup.write_job(bucket="no-such-bucket-preuve")
    else:
        setup.write_job(url=setup.spec["url"].rstrip("/") + "-missing/")
    rc, result = setup.drill()
    assert result["failure_class"] == "repo-missing", result
    assert rc == 1
    assert setup.sandboxes() == []


def test_stopped_server_is_unreachable(setup: Setup) -> None:
    from tests.support.services import free_port

    port = free_port()  # nothing listens there: the same as a stopped server
    kind = setup.repo.kind
    if kind == "local":
        pytest.skip("a local disk has no server; an unmounted path is the missing-repository case")
    if kind == "sftp":
        setup.write_job(port=port)
    elif kind == "s3":
        setup.write_job(endpoint=f"http://127.0.0.1:{port}")
    else:
        setup.write_job(url=f"http://127.0.0.1:{port}/{setup.repo.name}/")
    rc, result = setup.drill()
    assert rc == 3
    assert result["failure_class"] == "unreachable", result
