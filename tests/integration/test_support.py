"""The test-support layer works with plain restic 0.14: servers, datasets, target repositories, fault injectors.

Each fault test checks the restic symptom that RESTIC.md §5 records for that fault. The faults are spread over the
four target kinds (every kind, and both RepoStore implementations, get several) to keep the file short.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import sqlite3
import subprocess
import time
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from preuve.config.model import SftpTarget, Target
from preuve.errors import FailureClass, PreuveError
from preuve.targets.ssh import explain_sftp_failure
from tests.support.datasets import (
    CANARY_NAME,
    MIN_CHUNK,
    Manifest,
    backup,
    canary_content,
    make_dataset,
    modify_dataset,
    restic_env,
    run_restic,
    scan_manifest,
    sha256_file,
    snapshots,
)
from tests.support.faults import (
    corrupt_pack,
    corrupt_tree_pack,
    delete_index,
    delete_pack,
    delete_snapshot,
    leave_stale_lock,
    make_stale,
    replace_with_random,
    truncate_pack,
)
from tests.support.fixtures_services import TargetRepo
from tests.support.services import (
    Blackhole,
    RestServer,
    SshServer,
    pid_alive,
    process_group_members,
    start_moto,
    start_rest,
    start_sshd,
)

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------------------- helpers


def restored_files(dest: Path, source: Path) -> dict[str, str]:
    """Relative path -> sha256 of the regular files a ``restic restore --target dest`` produced for ``source``."""
    root = dest / source.relative_to("/")
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink()
    }


def rel(target: TargetRepo, paths: list[str]) -> set[str]:
    return {Path(p).relative_to(target.source).as_posix() for p in paths}


def env_from_config(target: TargetRepo, config_dir: Path, spec: dict[str, object]) -> dict[str, str]:
    """A restic environment built only from what write_config put in the config folder."""
    extra: dict[str, str] = {}
    if spec["kind"] == "local":
        repo = str(spec["path"])
    elif spec["kind"] == "sftp":
        repo = f"sftp:{spec['host']}:{spec['path']}"
        extra["RESTIC_SFTP_COMMAND"] = (
            f"ssh -F none -p {spec['port']} -i {config_dir / str(spec['identity_file'])} -o IdentitiesOnly=yes "
            f"-o UserKnownHostsFile={config_dir / str(spec['known_hosts'])} -o StrictHostKeyChecking=yes "
            f"-o BatchMode=yes -l {spec['user']} {spec['host']} -s sftp"
        )
    elif spec["kind"] == "s3":
        repo = f"s3:{spec['endpoint']}/{spec['bucket']}/{spec['prefix']}"
        for line in (config_dir / str(spec["env_file"])).read_text().splitlines():
            key, _, value = line.partition("=")
            extra[key] = value
    else:
        repo = f"rest:{spec['url']}"
    return restic_env(repo, config_dir / str(spec["password_file"]), extra)


def entropy(data: bytes) -> float:
    counts = Counter(data)
    return -sum(c / len(data) * math.log2(c / len(data)) for c in counts.values())


# ------------------------------------------------------------------------------------------------- dataset


def test_dataset_is_deterministic_and_realistic(dataset: Manifest, tmp_path: Path) -> None:
    again = make_dataset(tmp_path / "again")
    assert again.files == dataset.files
    assert again.symlinks == dataset.symlinks
    assert dataset.file_count == 300
    assert dataset.total_bytes == sum(e.size for e in dataset.files.values()) > 14 * 1024 * 1024

    root = dataset.root
    names = set(dataset.files)
    for name in ("Documents/Café_résumé.txt", "Documents/日本語.txt", "Documents/[draft] *v2?.txt",
                 "Documents/Compte rendu réunion.md", "Documents/vide.txt", CANARY_NAME):  # fmt: skip
        assert name in names
    assert dataset.files["Documents/vide.txt"].size == 0
    assert dataset.canary_path == CANARY_NAME
    assert dataset.canary_sha256 == dataset.files[CANARY_NAME].sha256
    assert (root / CANARY_NAME).read_bytes() == canary_content(1)
    assert dataset.canary_abs == str(root / CANARY_NAME)

    large = [e for e in dataset.files.values() if e.size >= MIN_CHUNK]
    assert sorted(e.size for e in large) == [2 * 1024 * 1024, 4 * 1024 * 1024, 8 * 1024 * 1024]

    by_ext = Counter(Path(p).suffix for p in names)
    assert all(by_ext[ext] >= 5 for ext in (".txt", ".csv", ".md", ".pdf", ".jpg", ".png", ".docx"))
    for relpath in names:
        data = (root / relpath).read_bytes()
        if relpath.endswith(".pdf"):
            assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
        elif relpath.endswith(".jpg"):
            assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"
        elif relpath.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        elif relpath.endswith(".docx"):
            with zipfile.ZipFile(root / relpath) as archive:
                assert archive.testzip() is None and "word/document.xml" in archive.namelist()
        elif relpath.endswith((".txt", ".csv", ".md", ".log")) and data:
            data.decode("utf-8")
            assert entropy(data[:65536]) < 6.0
    db = sqlite3.connect(root / "Médical/Patients/cabinet.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM patients").fetchone() == (600,)
    finally:
        db.close()

    link = root / "Documents/dernier-rapport.pdf"
    assert link.is_symlink() and link.resolve() == (root / "Rapports/rapport_2023.pdf").resolve()
    assert dataset.symlinks == {"Documents/dernier-rapport.pdf": "../Rapports/rapport_2023.pdf"}
    now = datetime.now(tz=UTC)
    assert all(e.mtime.tzinfo is not None and e.mtime < now - timedelta(days=365) for e in dataset.files.values())


def test_modify_dataset_changes_a_copy(dataset: Manifest, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset.root, copy, symlinks=True)
    changes = modify_dataset(copy)
    after = scan_manifest(copy)
    assert len(changes.modified) == 12 and len(changes.added) == 6 and len(changes.deleted) == 4
    assert all(after.files[p].sha256 != dataset.files[p].sha256 for p in changes.modified)
    assert all(p not in after.files for p in changes.deleted)
    assert all(p in after.files and p not in dataset.files for p in changes.added)
    assert after.canary_sha256 == dataset.canary_sha256
    assert scan_manifest(dataset.root).files == dataset.files  # the shared dataset is untouched


# ------------------------------------------------------------------------------------------------- targets


EXPECTED_KEYS = {
    "local": {"kind", "path", "password_file", "location", "media", "source"},
    "sftp": {"kind", "host", "port", "user", "identity_file", "known_hosts", "path", "password_file", "location",
             "media", "source"},
    "s3": {"kind", "endpoint", "bucket", "prefix", "env_file", "password_file", "location", "media"},
    "rest": {"kind", "url", "password_file", "location", "media"},
}  # fmt: skip


def test_target_repo_opens(target_repo: TargetRepo, tmp_path: Path) -> None:
    target = target_repo
    snaps = snapshots(target.restic_env())
    assert [s["id"] for s in snaps] == target.snapshot_ids and len(snaps) == 2
    assert all(s["paths"] == [str(target.source)] and s["tags"] == ["preuve-test"] for s in snaps)
    assert snaps[1]["parent"] == snaps[0]["id"]

    # The job-file spec and its secrets are enough to open the repository.
    config = tmp_path / "config"
    spec = target.write_config(config)
    assert set(spec) == EXPECTED_KEYS[target.kind]
    assert spec["kind"] == target.kind
    TypeAdapter(Target).validate_python(spec)
    password_file = config / spec["password_file"]
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text().strip() == target.password and len(target.password) >= 24
    if target.kind == "sftp":
        assert (config / spec["identity_file"]).stat().st_mode & 0o777 == 0o600
        assert spec["port"] == target.server.port and spec["host"] == "127.0.0.1"  # type: ignore[union-attr]
    if target.kind == "s3":
        env_file = (config / spec["env_file"]).read_text()
        assert env_file.startswith("AWS_ACCESS_KEY_ID=AKIA") and "AWS_SECRET_ACCESS_KEY=" in env_file
        assert len(target.extra_env["AWS_SECRET_ACCESS_KEY"]) == 40
    if target.kind == "rest":
        assert spec["url"].endswith(f"/{target.name}/")
    listing = run_restic(["ls", "--json", "latest"], env_from_config(target, config, spec)).stdout.splitlines()

    # The latest snapshot is the live source; its manifest is right.
    nodes = [json.loads(line) for line in listing[1:]]
    prefix = f"{target.source}/"
    files = {n["path"][len(prefix) :]: n["size"] for n in nodes if n["type"] == "file" and n["path"].startswith(prefix)}
    assert files == {p: e.size for p, e in target.manifest.files.items()}
    links = {n["path"][len(prefix) :] for n in nodes if n["type"] == "symlink"}
    assert links == set(target.manifest.symlinks)
    assert target.manifest.file_count == 302  # 300 - 4 deleted + 6 added
    assert set(target.first_manifest.files) - set(target.manifest.files) == set(target.changes.deleted)


# -------------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("target_repo", ["local", "s3"], indirect=True)
def test_corrupt_pack(target_repo: TargetRepo, tmp_path: Path) -> None:
    target = target_repo
    env = target.restic_env()
    if target.kind == "local":
        victim = "Rapports/rapport_2023.pdf"  # a single-blob file, chosen by its content hash
        fault = corrupt_pack(target.store, env, sha256=target.manifest.files[victim].sha256)
        assert set(fault.damaged_by_snapshot) == set(target.snapshot_ids)  # unchanged: in both snapshots
    else:
        victim = target.manifest.largest()[0].path  # a multi-blob file, chosen by path: its largest blob
        fault = corrupt_pack(target.store, env, path=str(target.source / victim))
    assert rel(target, fault.damaged_paths) == {victim}
    assert rel(target, fault.damaged_in(target.latest_snapshot_id[:8])) == {victim}

    assert run_restic(["check"], env, check=False).returncode == 0  # plain check does not read data
    full = run_restic(["check", "--read-data"], env, check=False)
    assert full.returncode == 1
    assert fault.pack_id is not None
    assert f"Pack ID does not match, want {fault.pack_id[:8]}" in full.stderr
    assert "Fatal: repository contains errors" in full.stderr

    restore = run_restic(["restore", "latest", "--target", str(tmp_path / "r")], env, check=False)
    assert restore.returncode == 1
    assert f"ignoring error for {target.source / victim}: ciphertext verification failed" in restore.stderr
    back = restored_files(tmp_path / "r", target.source)
    wrong = {p for p, entry in target.manifest.files.items() if back.get(p) != entry.sha256}
    assert wrong == {victim}  # nothing else is hurt
    if target.manifest.files[victim].single_blob:
        assert victim not in back  # a one-blob file is left out of the restore
    else:
        # A multi-blob file is restored at full size with wrong bytes where the bad blob goes (not in RESTIC.md).
        assert (tmp_path / "r" / target.source.relative_to("/") / victim).stat().st_size == (
            target.manifest.files[victim].size
        )


@pytest.mark.parametrize("target_repo", ["rest"], indirect=True)
def test_delete_pack_then_check(target_repo: TargetRepo) -> None:
    target = target_repo
    largest = str(target.source / target.manifest.largest()[0].path)
    fault = delete_pack(target.store, target.restic_env(), path=largest)
    assert largest in fault.damaged_paths
    assert not target.store.exists(fault.keys[0]) and fault.pack_id is not None
    check = run_restic(["check"], target.restic_env(), check=False)
    assert check.returncode == 1
    assert f"pack {fault.pack_id[:8]}" in check.stderr and "does not exist" in check.stderr
    # snapshots does not notice (RESTIC.md §5).
    assert run_restic(["snapshots", "--json"], target.restic_env(), check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_delete_pack_then_restore_loses_exactly_the_reported_files(target_repo: TargetRepo, tmp_path: Path) -> None:
    target = target_repo
    fault = delete_pack(target.store, target.restic_env())
    started = time.monotonic()
    restore = run_restic(["restore", "latest", "--target", str(tmp_path / "r")], target.restic_env(), 300, check=False)
    elapsed = time.monotonic() - started
    assert restore.returncode == 1
    assert "returned error, retrying after" in restore.stderr
    assert elapsed > 20  # restic's own retries (~44 s per missing pack)
    back = restored_files(tmp_path / "r", target.source)
    wrong = {p for p, entry in target.manifest.files.items() if back.get(p) != entry.sha256}
    expected = rel(target, fault.damaged_in(target.latest_snapshot_id))
    assert wrong == expected, (sorted(wrong - expected), sorted(expected - wrong), restore.stderr[-3000:])
    assert any(target.manifest.files[p].size >= MIN_CHUNK for p in wrong)  # default: the largest blob's pack


@pytest.mark.parametrize("target_repo", ["sftp"], indirect=True)
def test_truncate_pack_and_corrupt_tree(target_repo: TargetRepo) -> None:
    target = target_repo
    env = target.restic_env()
    tree = corrupt_tree_pack(target.store, env)
    assert tree.blob_ids and tree.detail["snapshot"] == target.latest_snapshot_id
    check = run_restic(["check"], env, check=False)
    assert check.returncode == 1
    assert "ciphertext verification failed" in check.stderr

    small = target.manifest.files["Documents/Café_résumé.txt"]
    cut = truncate_pack(target.store, env, sha256=small.sha256)
    assert target.store.size(cut.keys[0]) == cut.detail["truncated_to"]
    check = run_restic(["check"], env, check=False)
    assert check.returncode == 1
    assert f"pack {cut.pack_id}: unexpected file size: got {cut.detail['truncated_to']}" in check.stderr


@pytest.mark.parametrize("target_repo", ["rest"], indirect=True)
def test_delete_snapshot_goes_unnoticed_and_root_tree_corruption(target_repo: TargetRepo) -> None:
    target = target_repo
    env = target.restic_env()
    fault = delete_snapshot(target.store, env)
    assert fault.detail["snapshot_id"] == target.latest_snapshot_id
    assert fault.keys == [f"snapshots/{target.latest_snapshot_id}"]
    snaps = snapshots(env)
    assert [s["id"] for s in snaps] == target.snapshot_ids[:1]  # latest is now the older snapshot
    assert run_restic(["check"], env, check=False).returncode == 0

    tree = corrupt_tree_pack(target.store, env, where="root")
    assert tree.detail["root_tree"] in tree.blob_ids and tree.detail["snapshot"] == target.snapshot_ids[0]
    ls = run_restic(["ls", "--json", "latest"], env, check=False)
    assert ls.returncode == 1
    assert "ciphertext verification failed" in ls.stderr


@pytest.mark.parametrize("target_repo", ["s3"], indirect=True)
def test_delete_index_and_stale_locks(target_repo: TargetRepo) -> None:
    target = target_repo
    env = target.restic_env()

    fault = leave_stale_lock(target.store, env)
    assert fault.keys and all(k.startswith("locks/") for k in fault.keys)
    assert not pid_alive(fault.detail["pid"])
    locked = run_restic(["snapshots", "--json"], env, check=False)
    assert locked.returncode == 1
    assert "unable to create lock in backend: repository is already locked exclusively" in locked.stderr
    assert "Fatal:" not in locked.stderr
    assert run_restic(["snapshots", "--json", "--no-lock"], env, check=False).returncode == 0
    run_restic(["unlock"], env)  # same host, dead PID: stale, removed
    assert target.store.locks() == []

    foreign = leave_stale_lock(target.store, env, hostname="other-nas-client")
    locked = run_restic(["snapshots", "--json"], env, check=False)
    assert locked.returncode == 1 and " on other-nas-client by " in locked.stderr
    run_restic(["unlock"], env)  # a fresh lock of another host is not stale: it stays
    assert target.store.locks() == foreign.keys
    for key in foreign.keys:
        target.store.delete(key)
    assert len(snapshots(env)) == 2

    sizes = {k: target.store.size(k) for k in target.store.indexes()}
    fault = delete_index(target.store)
    assert fault.keys == [max(sizes, key=lambda k: sizes[k])]
    assert target.store.indexes() == sorted(set(sizes) - set(fault.keys))
    check = run_restic(["check"], env, check=False)
    assert check.returncode == 1
    assert "not found in index" in check.stderr or "not found in repository" in check.stderr


@pytest.mark.parametrize("target_repo", ["local"], indirect=True)
def test_ransomware_and_staleness(target_repo: TargetRepo) -> None:
    target = target_repo
    env = target.restic_env()
    victims = ["Documents/Clients/Dupont SARL/contrat.docx", "Rapports/rapport_2023.pdf", "Documents/日本語.txt"]
    before = {p: target.manifest.files[p] for p in victims}
    done = replace_with_random(target.source, victims)
    assert [p.relative_to(target.source).as_posix() for p in done] == victims
    for p in victims:
        data = (target.source / p).read_bytes()
        assert len(data) == before[p].size
        assert sha256_file(target.source / p) != before[p].sha256
        assert not data.startswith((b"PK", b"%PDF"))
    assert entropy((target.source / "Rapports/rapport_2023.pdf").read_bytes()) > 7.9
    encrypted = backup(env, target.source)
    assert len(snapshots(env)) == 3

    stale = make_stale(env, target.source, ages_days=(40, 30))
    snaps = snapshots(env)
    assert len(snaps) == 2 and [s["id"] for s in snaps] == stale.detail["snapshots"]
    assert encrypted not in {str(s["short_id"]) for s in snaps}
    newest = max(datetime.fromisoformat(str(s["time"])[:19]).replace(tzinfo=UTC) for s in snaps)
    assert timedelta(days=29) < datetime.now(tz=UTC) - newest < timedelta(days=31)
    assert run_restic(["check"], env, check=False).returncode == 0  # restic sees nothing wrong


# ------------------------------------------------------------------------------------------ servers, hangs


def test_blackhole_hangs_clients(blackhole: Blackhole, tmp_path: Path) -> None:
    with socket.create_connection(("127.0.0.1", blackhole.port), timeout=2) as conn:
        conn.settimeout(1.0)
        conn.sendall(b"GET /config HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(TimeoutError):
            conn.recv(1)
    (tmp_path / "pw").write_text("x\n")
    env = restic_env(f"rest:{blackhole.url}/repo/", tmp_path / "pw")
    with pytest.raises(subprocess.TimeoutExpired):
        run_restic(["snapshots", "--json"], env, timeout=3)
    assert blackhole.accepted >= 2
    blackhole.stop()
    assert not blackhole.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", blackhole.port), timeout=2).close()


def test_paused_rest_server_hangs_restic(rest_server: RestServer, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    env = restic_env(f"rest:{rest_server.repo_url('nothing-here')}", tmp_path / "pw")
    with rest_server.service.paused(), pytest.raises(subprocess.TimeoutExpired):
        run_restic(["snapshots", "--json"], env, timeout=3)
    missing = run_restic(["snapshots", "--json"], env, timeout=30, check=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "Is there a repository at the following location?" in missing.stderr


def test_sftp_refused_key(sshd_server: SshServer, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    extra = {"RESTIC_SFTP_COMMAND": sshd_server.ssh_command(sshd_server.refused_identity_file)}
    env = restic_env(f"sftp:127.0.0.1:{tmp_path / 'repo'}", tmp_path / "pw", extra)
    refused = run_restic(["snapshots"], env, timeout=30, check=False)
    assert refused.returncode == 1
    # restic 0.14 relays ssh's stderr from a goroutine and may exit before it is written: the "Permission denied"
    # line is there most of the time, not always (Preuve then asks the NAS itself, see explain_sftp_failure)
    assert "unable to start the sftp session" in refused.stderr
    ssh = subprocess.run(
        [*sshd_server.ssh_argv(sshd_server.refused_identity_file), "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert ssh.returncode == 255
    assert "Permission denied (publickey)" in ssh.stderr
    known = sshd_server.known_hosts.read_text()
    assert known.startswith(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 ")


def test_servers_stop_every_process_they_started(tmp_path: Path) -> None:
    sshd = start_sshd(tmp_path / "sshd")
    moto = start_moto(tmp_path / "moto")
    rest = start_rest(tmp_path / "rest")
    session = subprocess.Popen(
        [*sshd.ssh_argv(), "sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not sshd.service.descendants() and time.monotonic() < deadline:
            time.sleep(0.05)
        forked = sshd.service.descendants()  # the per-connection sshd (own session, via setsid) and its shell
        assert forked

        moto.create_bucket("stop-test")
        moto.pause()  # a paused server still stops
        pids = [sshd.pid, moto.pid, rest.pid]
        for server in (sshd, moto, rest):
            server.stop()
            server.stop()  # idempotent
        for pid in pids + [pid for pid, _ in forked]:
            assert not pid_alive(pid)
            assert process_group_members(pid) == []
        assert session.wait(timeout=10) != 0  # the ssh session lost its server
        for port in (sshd.port, moto.port, rest.port):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        for server in (sshd, moto, rest):
            server.stop()
        if session.poll() is None:
            session.kill()
            session.wait(timeout=10)


def test_moto_can_enforce_credentials(tmp_path: Path) -> None:
    s3 = start_moto(tmp_path / "moto", enforce_auth=True)
    try:
        assert s3.access_key_id.startswith("AKIA") and len(s3.secret_access_key) == 40
        s3.create_bucket("auth-test")
        (tmp_path / "pw").write_text("x\n")
        repo = f"s3:{s3.endpoint}/auth-test/restic"
        run_restic(["init"], restic_env(repo, tmp_path / "pw", s3.env()))
        wrong = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": s3.secret_access_key}
        refused = run_restic(["snapshots"], restic_env(repo, tmp_path / "pw", wrong), check=False)
        assert refused.returncode == 1
        assert "The AWS Access Key Id you provided does not exist in our records." in refused.stderr
    finally:
        s3.stop()
    assert not pid_alive(s3.pid)


def _sftp_spec(sshd_server: SshServer, identity: Path) -> SftpTarget:
    return SftpTarget(
        kind="sftp",
        host="127.0.0.1",
        port=sshd_server.port,
        user=sshd_server.user,
        identity_file=str(identity),
        known_hosts=str(sshd_server.known_hosts),
        path="/nowhere",
        password_file="pw",
        location="offsite",
        media="nas",
    )


def test_a_bare_sftp_eof_is_explained_by_asking_the_nas(sshd_server: SshServer, tmp_path: Path) -> None:
    # what restic 0.14 prints when it exits before relaying ssh's "Permission denied"
    bare = PreuveError(
        FailureClass.UNREACHABLE,
        "the storage could not be reached (Fatal: unable to open repository at sftp:x:/r: "
        "unable to start the sftp session, error: EOF)",
    )
    refused_key = tmp_path / "refused.key"
    shutil.copyfile(sshd_server.refused_identity_file, refused_key)
    refused_key.chmod(0o600)
    refused = explain_sftp_failure(_sftp_spec(sshd_server, refused_key), tmp_path, bare, timeout_s=20)
    assert refused.failure_class is FailureClass.AUTH
    assert "refused the SSH key" in refused.message and "restic" in refused.message
    # a key the NAS accepts: the session failed for another reason, restic's account stands
    good = explain_sftp_failure(_sftp_spec(sshd_server, sshd_server.identity_file), tmp_path, bare, timeout_s=20)
    assert good is bare
    # other failures are never second-guessed
    locked = PreuveError(FailureClass.REPO_LOCKED, "locked")
    assert explain_sftp_failure(_sftp_spec(sshd_server, refused_key), tmp_path, locked, timeout_s=20) is locked
