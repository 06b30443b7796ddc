"""What only the storage can tell (S3 Object Lock, versioning), a live source read over SFTP, the PostgreSQL store,
and the sweep of sandboxes left by a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.drill_helpers import make_setup
from tests.support.fixtures_services import TargetRepo
from tests.support.postgres import PostgresServer
from tests.support.services import S3Server

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target_repo", ["s3"], indirect=True)
def test_probe_reads_object_lock_from_the_bucket(
    tmp_path: Path, target_repo: TargetRepo, moto_server: S3Server
) -> None:
    setup = make_setup(tmp_path, target_repo)
    done = setup.preuve("targets", "probe", setup.ref, "--json")
    facts = json.loads(done.stdout)["facts"]["s3"]
    assert facts["bucket_exists"] is True
    assert facts["object_lock"] is False
    assert facts["versioning"] in ("Disabled", "Suspended")

    locked = moto_server.create_bucket("preuve-locked-bucket", object_lock=True, versioning=True)
    moto_server.client().put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
        },
    )
    setup.write_job(bucket=locked)
    done = setup.preuve("targets", "probe", setup.ref, "--json")
    probe = json.loads(done.stdout)
    assert probe["ok"] is False and probe["failure_class"] == "repo-missing"  # nothing at that bucket yet
    facts = probe["facts"]["s3"]
    assert facts["object_lock"] is True
    assert facts["versioning"] == "Enabled"
    assert facts["default_retention"] == {"mode": "COMPLIANCE", "days": 30}


@pytest.mark.parametrize("target_repo", ["sftp"], indirect=True)
def test_source_on_the_nas_is_compared_over_sftp(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    setup.write_job(source=f"sftp://127.0.0.1{target_repo.source}")
    rc, result = setup.drill()
    assert rc == 0, result
    assert result["files_changed_since_snapshot"] == 0

    entry = next(e for e in target_repo.manifest.single_blob_files() if e.path.endswith(".csv"))
    live = target_repo.source / entry.path
    stat = live.stat()
    data = bytearray(live.read_bytes())
    data[0] ^= 0x20
    live.write_bytes(bytes(data))
    os.utime(live, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rc, result = setup.drill()
    assert rc == 1
    assert result["failure_class"] == "content-mismatch"
    assert [f["path"] for f in result["findings"]] == [str(live)]


@pytest.mark.postgres
@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_drills_recorded_in_postgresql(
    tmp_path: Path, target_repo: TargetRepo, postgres_server: PostgresServer
) -> None:
    setup = make_setup(tmp_path, target_repo)
    url = postgres_server.create_database()
    (setup.config / "preuve.toml").write_text(f'database = "{url}"\nsandbox = "{setup.sandbox}"\n')
    rc, result = setup.drill()
    assert rc == 0, result
    shown = json.loads(setup.preuve("drill", "show", str(result["drill_id"]), "--log", "--json").stdout)
    assert shown["status"] == "passed"
    assert shown["files_checked"] == result["files_checked"]
    assert any("restore" in " ".join(c["argv"]) for c in shown["commands"])
    listed = json.loads(setup.preuve("drill", "list", "--json").stdout)["drills"]
    assert [d["id"] for d in listed] == [result["drill_id"]]


@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_sandboxes_left_by_a_crash_are_swept(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    stale = setup.sandbox / "preuve-drill-99-deadbeef"
    (stale / "restore" / "srv").mkdir(parents=True)
    (stale / "restore" / "srv" / "patient.pdf").write_bytes(b"%PDF-1.4 restored client data")
    import socket

    (stale / ".preuve-sandbox").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    rc, result = setup.drill()
    assert rc == 0, result
    assert not stale.exists()
    assert setup.sandboxes() == []


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """Interactive runs show a progress bar on the terminal; --json and pipes show none."""
    import pty
    import subprocess

    from preuve.demo import make_dataset
    from tests.integration.drill_helpers import PREUVE
    from tests.support.datasets import init_and_backup, write_password_file

    data = tmp_path / "data"
    make_dataset(data, files=60)
    config = tmp_path / "config"
    (config / "jobs").mkdir(parents=True)
    password = config / "repo.pass"
    write_password_file(password)
    init_and_backup(str(tmp_path / "repo"), password, data)
    (config / "jobs" / "demo.yaml").write_text(
        f"client: Demo\ntargets:\n  usb:\n    kind: local\n    path: {tmp_path / 'repo'}\n"
        f"    password_file: repo.pass\n    location: onsite\n    media: disk\n"
    )
    piped = subprocess.run(
        [*PREUVE, "--config", str(config), "drill", "run", "demo/usb"], capture_output=True, text=True, check=False
    )
    assert piped.returncode == 0, piped.stderr
    assert "verifying" not in piped.stderr and "restoring" not in piped.stderr

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*PREUVE, "--config", str(config), "drill", "run", "demo/usb"],
        stdin=follower, stdout=subprocess.PIPE, stderr=follower, env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )  # fmt: skip
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    text = seen.decode(errors="replace")
    assert "restoring" in text or "verifying" in text or "listing" in text, text[-2000:]
