"""Broken backups: each fault gives `failed` or `error` with the right class, and the sandbox is always gone.

Faults on the data itself are injected into a local repository (the restic code paths are the same on every
backend; the access faults are exercised per backend in test_drills.py). A few remote variants are kept where the
backend changes what restic prints.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.drill_helpers import Setup, make_setup
from tests.support import faults
from tests.support.datasets import backup, run_restic
from tests.support.fixtures_services import TargetRepo
from tests.support.services import SshServer, pid_alive

pytestmark = pytest.mark.integration

LOCAL = pytest.mark.parametrize("target_repo", ["local"], indirect=True)


@pytest.fixture
def setup(tmp_path: Path, target_repo: TargetRepo) -> Setup:
    return make_setup(tmp_path, target_repo)


def _assert_failed(setup: Setup, result: dict, rc: int, failure_class: str) -> None:
    assert result["failure_class"] == failure_class, result
    assert result["status"] == "failed"
    assert rc == 1
    assert result["message"]
    assert setup.sandboxes() == []


@LOCAL
def test_corrupt_data_pack(setup: Setup) -> None:
    fault = faults.corrupt_pack(setup.repo.store, setup.repo.restic_env())
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "corrupt-data")
    damaged = {f["path"] for f in result["findings"] if f["failure_class"] == "corrupt-data"}
    assert set(fault.damaged_paths) & damaged, (fault.damaged_paths, result["findings"])


@pytest.mark.parametrize("target_repo", ["local", "s3"], indirect=True)
def test_deleted_index(setup: Setup) -> None:
    faults.delete_index(setup.repo.store)
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "corrupt-data")


@LOCAL
def test_corrupt_tree_pack_is_caught_despite_a_warm_cache(setup: Setup, tmp_path: Path) -> None:
    # warm a restic cache the way a provider's own restic runs would, then damage the tree pack
    cache = tmp_path / "warm-cache"
    env = setup.repo.restic_env(cache_dir=cache)
    run_restic(["restore", "latest", "--target", str(tmp_path / "warmup")], env, no_cache=False)
    faults.corrupt_tree_pack(setup.repo.store, setup.repo.restic_env())
    masked = run_restic(["restore", "latest", "--target", str(tmp_path / "masked")], env, no_cache=False, check=False)
    assert masked.returncode == 0, "the warm cache should hide the damage from plain restic (RESTIC.md 7.1)"
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "corrupt-data")


@LOCAL
def test_snapshot_that_does_not_exist(setup: Setup) -> None:
    fault = faults.delete_snapshot(setup.repo.store, setup.repo.restic_env())
    rc, result = setup.drill("--snapshot", str(fault.detail["snapshot_id"])[:12])
    _assert_failed(setup, result, rc, "missing-snapshot")
    assert "not in the repository" in result["message"]


@LOCAL
def test_repository_without_snapshot(setup: Setup, tmp_path: Path) -> None:
    empty = tmp_path / "empty-repo"
    env = {**setup.repo.restic_env(), "RESTIC_REPOSITORY": str(empty)}
    run_restic(["init"], env)
    setup.write_job(path=str(empty))
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "missing-snapshot")
    assert "no snapshot" in result["message"]


@LOCAL
def test_stale_exclusive_lock(setup: Setup) -> None:
    faults.leave_stale_lock(setup.repo.store, setup.repo.restic_env())
    rc, result = setup.drill()
    assert rc == 3
    assert result["failure_class"] == "repo-locked", result
    assert "PID" in result["message"] and "unlock" in result["message"]
    assert setup.sandboxes() == []


@pytest.mark.parametrize("target_repo", ["sftp"], indirect=True)
def test_ssh_key_refused_by_the_nas(setup: Setup, sshd_server: SshServer) -> None:
    key = setup.config / "secrets" / "refused.key"
    shutil.copyfile(sshd_server.refused_identity_file, key)
    key.chmod(0o600)
    setup.write_job(identity_file="secrets/refused.key")
    rc, result = setup.drill()
    assert rc == 3
    assert result["failure_class"] == "auth", result
    assert "SSH key" in result["message"]


@pytest.mark.parametrize("target_repo", ["rest"], indirect=True)
def test_server_that_never_answers_hits_the_deadline(setup: Setup, blackhole) -> None:  # type: ignore[no-untyped-def]
    setup.write_job(url=f"http://127.0.0.1:{blackhole.port}/{setup.repo.name}/", timeout="3s")
    started = time.monotonic()
    rc, result = setup.drill(timeout=120)
    assert rc == 3
    assert result["failure_class"] == "timeout", result
    assert time.monotonic() - started < 60
    assert setup.sandboxes() == []


@LOCAL
def test_source_file_with_same_size_and_mtime_but_other_bytes(setup: Setup) -> None:
    entry = next(e for e in setup.repo.manifest.single_blob_files() if e.path.endswith(".txt") and e.size > 100)
    live = setup.repo.source / entry.path
    stat = live.stat()
    data = bytearray(live.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit: silent corruption on the source disk (or in the backup)
    live.write_bytes(bytes(data))
    os.utime(live, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "content-mismatch")
    assert [f["path"] for f in result["findings"]] == [str(live)]


@LOCAL
def test_files_changed_since_the_snapshot_are_not_failures(setup: Setup) -> None:
    entry = next(e for e in setup.repo.manifest.single_blob_files() if e.path.endswith(".txt"))
    (setup.repo.source / entry.path).write_text("edited after the backup\n")
    rc, result = setup.drill()
    assert rc == 0, result
    assert result["files_changed_since_snapshot"] >= 1


@LOCAL
def test_canary_with_other_bytes(setup: Setup) -> None:
    setup.write_job(canaries=[{"path": setup.repo.manifest.canary_abs, "sha256": "0" * 64}])
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "content-mismatch")
    assert result["findings"][0]["path"] == setup.repo.manifest.canary_abs


@LOCAL
def test_canary_missing_from_the_snapshot(setup: Setup) -> None:
    gone = str(setup.repo.source / "never-backed-up.canary")
    setup.write_job(canaries=[{"path": gone, "sha256": "a" * 64}])
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "content-mismatch")
    assert "not in the snapshot" in result["message"]


@LOCAL
def test_files_replaced_by_random_bytes_look_like_ransomware(setup: Setup) -> None:
    victims = [e.path for e in setup.repo.manifest.files.values() if e.path.endswith((".pdf", ".txt", ".docx"))][:8]
    faults.replace_with_random(setup.repo.source, victims)
    backup(setup.repo.restic_env(), setup.repo.source)
    rc, result = setup.drill()
    _assert_failed(setup, result, rc, "suspicious-content")
    flagged = {f["path"] for f in result["findings"] if f["failure_class"] == "suspicious-content"}
    assert {str(setup.repo.source / v) for v in victims} <= flagged


@LOCAL
def test_sandbox_without_space(setup: Setup, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        setup.sandbox = small
        setup.write_settings()
        rc, result = setup.drill()
        assert rc == 3
        assert result["failure_class"] == "sandbox", result
        assert setup.sandboxes() == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _restic_wrapper(tmp_path: Path, pidfile: Path) -> Path:
    """A restic that pauses before restoring, so a test can kill or interrupt it at that moment."""
    wrapper = tmp_path / "slow-restic"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" restore "*) echo $$ > ' + str(pidfile) + "; sleep 60;; esac\n"
        'exec /usr/bin/restic "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def _wait_for(path: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@LOCAL
def test_killed_restic_is_an_error_and_the_sandbox_goes(setup: Setup, tmp_path: Path) -> None:
    pidfile = tmp_path / "restic.pid"
    setup.write_settings(f'restic = "{_restic_wrapper(tmp_path, pidfile)}"\n')
    proc = subprocess.Popen(
        [*__import__("tests.integration.drill_helpers", fromlist=["PREUVE"]).PREUVE, "--config", str(setup.config),
         "drill", "run", setup.ref, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pid = _wait_for(pidfile)
        assert setup.sandboxes(), "the drill should be restoring into its sandbox now"
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    import json

    result = json.loads(out)
    assert proc.returncode == 3, err
    assert result["status"] == "error"
    assert result["failure_class"] == "internal"
    assert "signal 9" in result["message"]
    assert setup.sandboxes() == []


@LOCAL
def test_interrupted_drill_is_recorded_and_cleaned(setup: Setup, tmp_path: Path) -> None:
    import json

    from tests.integration.drill_helpers import PREUVE

    pidfile = tmp_path / "restic.pid"
    setup.write_settings(f'restic = "{_restic_wrapper(tmp_path, pidfile)}"\n')
    proc = subprocess.Popen(
        [*PREUVE, "--config", str(setup.config), "drill", "run", setup.ref, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        restic_pid = _wait_for(pidfile)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert json.loads(out)["status"] == "interrupted"
    assert setup.sandboxes() == []
    # the paused restic went with its process group (a zombie awaiting its reaper counts as gone)
    deadline = time.monotonic() + 10
    while pid_alive(restic_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(restic_pid)
    listed = json.loads(setup.preuve("drill", "list", "--json").stdout)
    assert listed["drills"][0]["status"] == "interrupted"


@pytest.mark.slow
@LOCAL
def test_deleted_data_pack(setup: Setup) -> None:
    # restic retries a missing pack for ~44 s before giving up on it (RESTIC.md 7.4)
    faults.delete_pack(setup.repo.store, setup.repo.restic_env())
    rc, result = setup.drill(timeout=400)
    _assert_failed(setup, result, rc, "corrupt-data")
