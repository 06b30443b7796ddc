"""pytest fixtures that start real servers on 127.0.0.1 and build real restic repositories.

Loaded by tests/conftest.py through ``pytest_plugins``. Session-scoped: ``sshd_server``, ``moto_server``,
``rest_server``, ``dataset`` and one ``target_template_<kind>`` per target kind. Function-scoped: ``blackhole`` and
``target_repo`` (parametrized over local/sftp/s3/rest; a test can narrow it with
``@pytest.mark.parametrize("target_repo", ["s3"], indirect=True)``). Each fixture stops exactly the processes it
started, by PID.

How ``target_repo`` stays cheap (``restic init`` alone spends ~2.3 s calibrating its key derivation):

* **Repository.** The first test of a kind builds a *template* for that kind (:func:`build_target_repo`: init and
  the two backups); every test then gets a private copy of the template repository (:func:`clone_target_repo`:
  copied folder for local/sftp, copied folder under the rclone root for rest, server-side copied objects in a new
  bucket for s3). A test may corrupt, delete or add anything in its copy. Copies share the template's repository ID,
  key and password; Preuve drills use a fresh cache each time and set-up restic commands run with ``--no-cache``.
* **Source.** restic records the absolute path it backed up, and drills compare restored files with the live
  ``source``, so the live source must sit at the path the snapshots name. Each template therefore has ONE live
  source folder (``<template workdir>/source``), and before every test ``target_repo`` rebuilds it from a pristine
  copy (delete and ``copytree``, modes and nanosecond mtimes kept, ~0.1 s). Tests run one at a time (no xdist), so
  the live source is private to the running test for its whole duration: it may edit, encrypt or delete source
  files and back the result up into its repository copy; the next test starts from the pristine tree again.
* ``@pytest.mark.fresh_repo`` opts a test out of all this: it gets a genuinely fresh repository (own repository ID,
  own key) and a source folder under its own working folder, built from scratch (~5 s).
"""

from __future__ import annotations

import copy
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.datasets import (
    Changes,
    Manifest,
    backup,
    init_repo,
    make_dataset,
    modify_dataset,
    restic_env,
    run_restic,
    scan_manifest,
    write_password_file,
)
from tests.support.faults import FolderStore, RepoStore, S3Store
from tests.support.services import (
    Blackhole,
    RestServer,
    S3Server,
    SshServer,
    remove_tree,
    start_blackhole,
    start_moto,
    start_rest,
    start_sshd,
)

TARGET_KINDS = ("local", "sftp", "s3", "rest")
BACKUP_TAGS = ("preuve-test",)

FRESH_REPO_MARKER = "fresh_repo"

__all__ = [
    "BACKUP_TAGS",
    "FRESH_REPO_MARKER",
    "TARGET_KINDS",
    "TargetRepo",
    "TargetTemplate",
    "build_target_repo",
    "clone_target_repo",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{FRESH_REPO_MARKER}: target_repo builds a genuinely fresh repository (own repository ID and key, source "
        "under the test's own folder) instead of copying the session's template (~5 s instead of ~0.2 s)",
    )


@dataclass
class TargetRepo:
    """A restic repository of one kind holding two backups of a copy of the dataset.

    Snapshot 1 is the dataset as made; snapshot 2 follows :func:`tests.support.datasets.modify_dataset`
    (``changes``). ``source`` is the live source, identical to snapshot 2 when the test starts, and ``manifest``
    describes it; ``first_manifest`` describes snapshot 1.

    Everything under ``workdir`` (and the bucket or rclone folder) belongs to this repository alone. For a copy of a
    template (:func:`clone_target_repo`), ``source`` is the template's live source, outside ``workdir``: the
    ``target_repo`` fixture restores it before every test, and :meth:`destroy` leaves it alone.
    """

    kind: str
    name: str
    repository: str  # the restic repository string used for set-up
    password: str
    password_file: Path  # set-up copy, 0600
    source: Path
    manifest: Manifest
    first_manifest: Manifest
    snapshot_ids: list[str]  # full IDs, oldest first
    changes: Changes
    store: RepoStore
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)  # AWS keys, or RESTIC_SFTP_COMMAND (our convention)
    server: SshServer | S3Server | RestServer | None = None
    path: Path | None = None  # local and sftp: the repository folder
    bucket: str | None = None  # s3
    prefix: str | None = None  # s3
    url: str | None = None  # rest

    @property
    def latest_snapshot_id(self) -> str:
        return self.snapshot_ids[-1]

    @property
    def canary(self) -> dict[str, str]:
        """A job file's ``canaries`` entry for the dataset's ``.preuve-canary`` (absolute path as backed up)."""
        return {"path": self.manifest.canary_abs, "sha256": self.manifest.canary_sha256}

    @property
    def spec(self) -> dict[str, Any]:
        """The target as a Preuve job file holds it; relative paths are relative to the config folder."""
        password_file = f"secrets/{self.kind}.pass"
        if self.kind == "local":
            return {"kind": "local", "path": str(self.path), "password_file": password_file,
                    "location": "onsite", "media": "disk", "source": str(self.source)}  # fmt: skip
        if self.kind == "sftp":
            assert isinstance(self.server, SshServer)
            return {
                "kind": "sftp", "host": self.server.host, "port": self.server.port, "user": self.server.user,
                "identity_file": "secrets/nas.key", "known_hosts": "secrets/known_hosts", "path": str(self.path),
                "password_file": password_file, "location": "onsite", "media": "nas", "source": str(self.source),
            }  # fmt: skip
        if self.kind == "s3":
            assert isinstance(self.server, S3Server)
            return {"kind": "s3", "endpoint": self.server.endpoint, "bucket": self.bucket, "prefix": self.prefix,
                    "env_file": "secrets/s3.env", "password_file": password_file,
                    "location": "offsite", "media": "object-storage"}  # fmt: skip
        return {"kind": "rest", "url": self.url, "password_file": password_file,
                "location": "offsite", "media": "other"}  # fmt: skip

    def write_config(self, config_dir: Path) -> dict[str, Any]:
        """Write the secrets this target needs under ``config_dir/secrets/`` (mode 0600) and return :attr:`spec`."""
        spec = self.spec
        secrets_dir = Path(config_dir) / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        secrets_dir.chmod(0o700)
        write_password_file(Path(config_dir) / spec["password_file"], self.password)
        if self.kind == "sftp":
            assert isinstance(self.server, SshServer)
            _copy_secret(self.server.identity_file, Path(config_dir) / spec["identity_file"])
            _copy_secret(self.server.known_hosts, Path(config_dir) / spec["known_hosts"])
        if self.kind == "s3":
            env_file = Path(config_dir) / spec["env_file"]
            env_file.write_text("".join(f"{k}={v}\n" for k, v in self.extra_env.items()))
            env_file.chmod(0o600)
        return spec

    def restic_env(self, cache_dir: Path | None = None) -> dict[str, str]:
        """The environment for set-up restic commands (``run_restic`` adds ``--no-cache`` unless ``cache_dir``)."""
        return restic_env(self.repository, self.password_file, self.extra_env, cache_dir=cache_dir)

    def restic(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_restic(list(args), self.restic_env(), timeout, check=check)

    def destroy(self) -> None:
        """Remove the repository and ``workdir`` (servers stay up; they belong to session fixtures).

        The source goes with ``workdir`` when it lies under it (a built repository), not for a template's copy.
        """
        if self.kind == "s3" and isinstance(self.server, S3Server) and self.bucket:
            if self.server.service.running:
                self.server.resume()
                self.server.delete_bucket(self.bucket)
        elif self.kind == "rest" and isinstance(self.server, RestServer):
            remove_tree(self.server.repo_dir(self.name))
        remove_tree(self.workdir)


def _copy_secret(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(0o600)


def build_target_repo(
    kind: str,
    workdir: Path,
    dataset: Manifest,
    *,
    sshd: SshServer | None = None,
    s3: S3Server | None = None,
    rest: RestServer | None = None,
    tags: tuple[str, ...] = BACKUP_TAGS,
) -> TargetRepo:
    """Copy the dataset to ``workdir/source``, create a ``kind`` repository and back the copy up twice."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{secrets.token_hex(4)}"
    source = workdir / "source"
    shutil.copytree(dataset.root, source, symlinks=True)
    first_manifest = dataset.rebased(source)
    password_file = workdir / "password"
    password = write_password_file(password_file)
    extra_env: dict[str, str] = {}
    path: Path | None = None
    bucket = prefix = url = None
    server: SshServer | S3Server | RestServer | None = None
    store: RepoStore
    if kind == "local":
        path = workdir / "repo"
        repository = str(path)
        store = FolderStore(path)
    elif kind == "sftp":
        if sshd is None:
            raise ValueError("an sftp target needs the sshd server")
        server = sshd
        path = workdir / "repo"
        repository = f"sftp:{sshd.host}:{path}"
        extra_env["RESTIC_SFTP_COMMAND"] = sshd.ssh_command()
        store = FolderStore(path)
    elif kind == "s3":
        if s3 is None:
            raise ValueError("an s3 target needs the moto server")
        server = s3
        bucket = s3.create_bucket(f"preuve-{secrets.token_hex(5)}")
        prefix = "restic"
        repository = f"s3:{s3.endpoint}/{bucket}/{prefix}"
        extra_env.update(s3.env())
        store = S3Store(s3.client(), bucket, prefix)
    elif kind == "rest":
        if rest is None:
            raise ValueError("a rest target needs the REST server")
        server = rest
        url = rest.repo_url(name)
        repository = f"rest:{url}"
        store = FolderStore(rest.repo_dir(name))
    else:
        raise ValueError(f"unknown target kind {kind!r}")

    try:
        env = restic_env(repository, password_file, extra_env)
        init_repo(env)
        # Snapshot files are named by their full ID: listing the store saves a restic call (~0.6 s) each time.
        backup(env, source, tags=tags)
        first = store.snapshot_keys()
        changes = modify_dataset(source)
        backup(env, source, tags=tags)
        second = sorted(set(store.snapshot_keys()) - set(first))
        snapshot_ids = [key.split("/")[-1] for key in [*first, *second]]
        if len(first) != 1 or len(second) != 1:
            raise RuntimeError(f"expected one snapshot per backup, found {first} then {second}")
    except BaseException:
        if bucket and s3 is not None:
            s3.delete_bucket(bucket)
        if kind == "rest" and rest is not None:
            remove_tree(rest.repo_dir(name))
        remove_tree(workdir)
        raise
    return TargetRepo(
        kind=kind,
        name=name,
        repository=repository,
        password=password,
        password_file=password_file,
        source=source,
        manifest=scan_manifest(source),
        first_manifest=first_manifest,
        snapshot_ids=snapshot_ids,
        changes=changes,
        store=store,
        workdir=workdir,
        extra_env=extra_env,
        server=server,
        path=path,
        bucket=bucket,
        prefix=prefix,
        url=url,
    )


@dataclass
class TargetTemplate:
    """A built repository that tests never touch, plus a pristine copy of its live source (as snapshot 2 saw it)."""

    repo: TargetRepo
    pristine: Path

    @classmethod
    def freeze(cls, repo: TargetRepo) -> TargetTemplate:
        pristine = repo.workdir / "pristine-source"
        _copy_tree(repo.source, pristine)
        return cls(repo=repo, pristine=pristine)

    def restore_source(self) -> None:
        """Put the live source back exactly as the snapshots left it (whatever the previous test did to it)."""
        remove_tree(self.repo.source)
        _copy_tree(self.pristine, self.repo.source)


def _copy_tree(src: Path, dst: Path) -> None:
    """``copytree`` keeping symlinks, mode bits (restic's 0400 packs) and nanosecond mtimes (files and folders)."""
    shutil.copytree(src, dst, symlinks=True)


def _copy_bucket(s3: S3Server, src: str, dst: str) -> None:
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=src):
        for item in page.get("Contents", []):
            client.copy_object(Bucket=dst, Key=item["Key"], CopySource={"Bucket": src, "Key": item["Key"]})


def clone_target_repo(template: TargetRepo, workdir: Path) -> TargetRepo:
    """A private copy of ``template``'s repository (same ID, key, password and snapshots) with its own password
    file and working folder ``workdir``. ``source`` stays the template's: the snapshots name that path."""
    kind = template.kind
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{secrets.token_hex(4)}"
    password_file = workdir / "password"
    write_password_file(password_file, template.password)
    path: Path | None = None
    bucket = url = None
    repository = template.repository
    store: RepoStore
    try:
        if kind in ("local", "sftp"):
            assert template.path is not None
            path = workdir / "repo"
            _copy_tree(template.path, path)
            if kind == "local":
                repository = str(path)
            else:
                assert isinstance(template.server, SshServer)
                repository = f"sftp:{template.server.host}:{path}"
            store = FolderStore(path)
        elif kind == "s3":
            assert isinstance(template.server, S3Server) and template.bucket
            bucket = template.server.create_bucket(f"preuve-{secrets.token_hex(5)}")
            _copy_bucket(template.server, template.bucket, bucket)
            repository = f"s3:{template.server.endpoint}/{bucket}/{template.prefix}"
            store = S3Store(template.server.client(), bucket, template.prefix or "")
        elif kind == "rest":
            assert isinstance(template.server, RestServer)
            _copy_tree(template.server.repo_dir(template.name), template.server.repo_dir(name))
            url = template.server.repo_url(name)
            repository = f"rest:{url}"
            store = FolderStore(template.server.repo_dir(name))
        else:
            raise ValueError(f"unknown target kind {kind!r}")
    except BaseException:
        if bucket and isinstance(template.server, S3Server):
            template.server.delete_bucket(bucket)
        if kind == "rest" and isinstance(template.server, RestServer):
            remove_tree(template.server.repo_dir(name))
        remove_tree(workdir)
        raise
    return TargetRepo(
        kind=kind,
        name=name,
        repository=repository,
        password=template.password,
        password_file=password_file,
        source=template.source,
        manifest=copy.deepcopy(template.manifest),
        first_manifest=copy.deepcopy(template.first_manifest),
        snapshot_ids=list(template.snapshot_ids),
        changes=copy.deepcopy(template.changes),
        store=store,
        workdir=workdir,
        extra_env=dict(template.extra_env),
        server=template.server,
        path=path,
        bucket=bucket,
        prefix=template.prefix,
        url=url,
    )


# ----------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestServer]:
    server = start_rest(tmp_path_factory.mktemp("rest"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = start_blackhole()
    try:
        yield hole
    finally:
        hole.stop()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The default dataset (300 files, seed 1), made once. Read-only by convention: copy it before changing it."""
    return make_dataset(tmp_path_factory.mktemp("dataset") / "src")


def _server_kwargs(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "sftp":
        return {"sshd": request.getfixturevalue("sshd_server")}
    if kind == "s3":
        return {"s3": request.getfixturevalue("moto_server")}
    if kind == "rest":
        return {"rest": request.getfixturevalue("rest_server")}
    return {}


def _template_fixture(kind: str) -> Any:
    """A session fixture building the ``kind`` template on first use (it depends on that kind's server only, so the
    template is destroyed before its server stops)."""

    @pytest.fixture(scope="session", name=f"target_template_{kind}")
    def fixture(
        request: pytest.FixtureRequest, dataset: Manifest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[TargetTemplate]:
        repo = build_target_repo(
            kind, tmp_path_factory.mktemp(f"template-{kind}"), dataset, **_server_kwargs(kind, request)
        )
        try:
            yield TargetTemplate.freeze(repo)
        finally:
            if repo.server is not None:
                repo.server.resume()
            repo.destroy()

    return fixture


target_template_local = _template_fixture("local")
target_template_sftp = _template_fixture("sftp")
target_template_s3 = _template_fixture("s3")
target_template_rest = _template_fixture("rest")


@pytest.fixture(params=TARGET_KINDS, ids=list(TARGET_KINDS))
def target_repo(
    request: pytest.FixtureRequest, dataset: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TargetRepo]:
    """A private, mutable repository of the ``request.param`` kind: a copy of the session's template (the live
    source restored to snapshot 2 first), or, under ``@pytest.mark.fresh_repo``, one built from scratch."""
    kind: str = request.param
    workdir = tmp_path_factory.mktemp(f"target-{kind}")
    if request.node.get_closest_marker(FRESH_REPO_MARKER) is not None:
        repo = build_target_repo(kind, workdir, dataset, **_server_kwargs(kind, request))
    else:
        template: TargetTemplate = request.getfixturevalue(f"target_template_{kind}")
        template.restore_source()
        repo = clone_target_repo(template.repo, workdir)
    try:
        yield repo
    finally:
        if repo.server is not None:
            repo.server.resume()  # a test that paused the shared server and then failed must not hang the next
        repo.destroy()
