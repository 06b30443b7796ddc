"""The facts policies read: snapshot stats recorded by probes, and `gather` over the store (SQLite and PostgreSQL).

Convention under test: a snapshot's ``changed_files`` is None when it has no earlier snapshot to be compared
with (the first of a repository), never 0; and None for every snapshot not measured yet (``stats_at`` unset).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from preuve.config.loader import Config, load_config
from preuve.drills.result import DrillKind, DrillResult, DrillStatus
from preuve.errors import FailureClass
from preuve.policies.facts import SnapshotFact
from preuve.policies.gather import gather
from preuve.restic.parse import Snapshot
from preuve.store.db import Store
from preuve.store.models import DrillFinding, DrillRun, Probe
from preuve.store.records import (
    create_drill,
    finish_drill,
    get_drill,
    list_snapshots,
    record_snapshot_stats,
    record_snapshots,
    snapshots_without_stats,
    sync_config,
    target_row,
)
from tests.support.datasets import backup as restic_backup
from tests.support.datasets import init_and_backup, make_dataset, modify_and_backup, restic_env, write_password_file

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
TB = 2**40
CANARY = "/srv/data/.preuve-canary"
PREUVE = [sys.executable, "-m", "preuve"]

ACME = f"""\
client: ACME Bâtiment
language: fr
targets:
  usb:
    kind: local
    path: /mnt/usb/restic
    password_file: secrets/usb.pass
    location: onsite
    media: disk
    source: /srv/data
    canaries:
      - path: {CANARY}
        sha256: {"ab" * 32}
  cloud:
    kind: rest
    url: https://backup.example.net:8000/acme/
    password_file: /etc/preuve/cloud.pass
    location: offsite
    media: object-storage
    append_only: true
"""

BETA = """\
client: Beta
targets:
  usb:
    kind: local
    path: /mnt/usb/beta
    password_file: secrets/beta.pass
    location: onsite
    media: disk
"""


def write_config(folder: Path, jobs: dict[str, str], settings: str = "") -> Config:
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    for client_id, body in jobs.items():
        (folder / "jobs" / f"{client_id}.yaml").write_text(body, encoding="utf-8")
    if settings:
        (folder / "preuve.toml").write_text(settings, encoding="utf-8")
    return load_config(folder)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "conf", {"acme": ACME, "beta": BETA})


@pytest.fixture
def synced(store: Store, config: Config) -> Store:
    sync_config(store, config)
    return store


def snap(name: str, hours: float, **changes: Any) -> Snapshot:
    values: dict[str, Any] = {
        "id": name * 64,
        "short_id": name * 8,
        "time": T0 + timedelta(hours=hours),
        "paths": ("/srv/data",),
        "hostname": "srv1",
        "username": "root",
        "tags": ("daily",),
        "tree": "t" * 64,
    }
    values.update(changes)
    return Snapshot(**values)


@contextmanager
def count_statements(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


# --------------------------------------------------------------------------------------------- recording stats


def test_record_snapshot_stats_and_which_snapshots_lack_them(synced: Store) -> None:
    s1, s2, s3 = snap("a", 0), snap("b", 24), snap("c", 48)
    record_snapshots(synced, "acme/usb", [s1, s2, s3], seen_at=T0 + timedelta(hours=49))
    assert snapshots_without_stats(synced, "acme/usb", 10) == [s3.id, s2.id, s1.id]  # newest first
    assert snapshots_without_stats(synced, "acme/usb", 2) == [s3.id, s2.id]
    assert snapshots_without_stats(synced, "acme/cloud", 10) == []

    at = T0 + timedelta(hours=50)
    assert record_snapshot_stats(synced, "acme/usb", s3.id, size_bytes=5 * TB, file_count=3_000_000_000,
                                 changed_files=12, at=at)  # fmt: skip
    # the first snapshot: measured, nothing to compare with
    assert record_snapshot_stats(synced, "acme/usb", s1.id, size_bytes=0, file_count=0, changed_files=None, at=at)
    assert snapshots_without_stats(synced, "acme/usb", 10) == [s2.id]
    # not a snapshot of this target: nothing written
    assert not record_snapshot_stats(synced, "beta/usb", s3.id, size_bytes=1, file_count=1, changed_files=0, at=at)
    assert not record_snapshot_stats(synced, "acme/usb", "f" * 64, size_bytes=1, file_count=1, changed_files=0, at=at)

    records = {r.snapshot.id: r for r in list_snapshots(synced, "acme/usb")}
    assert (records[s3.id].size_bytes, records[s3.id].file_count, records[s3.id].changed_files) == (
        5 * TB,
        3_000_000_000,
        12,
    )
    assert records[s3.id].stats_at == at
    assert (records[s1.id].size_bytes, records[s1.id].changed_files, records[s1.id].stats_at) == (0, None, at)
    assert records[s2.id].stats_at is None and records[s2.id].size_bytes is None

    # a later measurement replaces the earlier one
    later = at + timedelta(hours=1)
    assert record_snapshot_stats(synced, "acme/usb", s3.id, size_bytes=7, file_count=8, changed_files=9, at=later)
    again = {r.snapshot.id: r for r in list_snapshots(synced, "acme/usb")}[s3.id]
    assert (again.size_bytes, again.file_count, again.changed_files, again.stats_at) == (7, 8, 9, later)

    # snapshots gone from the repository are not worth measuring any more
    record_snapshots(synced, "acme/usb", [s3], seen_at=T0 + timedelta(hours=60))
    assert snapshots_without_stats(synced, "acme/usb", 10) == []

    with pytest.raises(LookupError):
        record_snapshot_stats(synced, "acme/nope", s3.id, size_bytes=1, file_count=1, changed_files=1, at=at)
    with pytest.raises(LookupError):
        snapshots_without_stats(synced, "acme/nope", 1)
    with pytest.raises(ValueError, match="aware"):
        naive = T0.replace(tzinfo=None)
        record_snapshot_stats(synced, "acme/usb", s3.id, size_bytes=1, file_count=1, changed_files=1, at=naive)


def test_finish_drill_records_the_integrity_subset(synced: Store) -> None:
    drill_id = create_drill(synced, "acme/usb", DrillKind.INTEGRITY, "test")
    finish_drill(
        synced, drill_id, DrillResult(status=DrillStatus.PASSED, kind=DrillKind.INTEGRITY, subset="3/30", message="ok")
    )
    detail = get_drill(synced, drill_id)
    assert detail is not None and detail.subset == "3/30"
    sample_id = create_drill(synced, "acme/usb", DrillKind.SAMPLE, "test")
    finish_drill(synced, sample_id, DrillResult(status=DrillStatus.PASSED, kind=DrillKind.SAMPLE))
    sample = get_drill(synced, sample_id)
    assert sample is not None and sample.subset is None


# ------------------------------------------------------------------------------------------------------ gather


def hours(value: float) -> datetime:
    return T0 + timedelta(hours=value)


def make_history(store: Store) -> dict[str, int]:
    """Hand-made rows for acme (both targets) and beta; returns the ids of the drills and probes made."""
    s1, s2, s3 = snap("a", -22), snap("b", -10, tags=(), paths=("/srv/data", "/home")), snap("c", 24)
    record_snapshots(store, "acme/usb", [s1, s2], seen_at=hours(1))
    record_snapshots(store, "acme/usb", [s2, s3], seen_at=hours(25))  # s1 gone at hour 25
    record_snapshot_stats(store, "acme/usb", s1.id, size_bytes=1000, file_count=10, changed_files=None, at=hours(2))
    record_snapshot_stats(store, "acme/usb", s3.id, size_bytes=1500, file_count=12, changed_files=4, at=hours(26))
    record_snapshots(store, "beta/usb", [snap("e", 0)], seen_at=hours(1))
    ids: dict[str, int] = {}
    with store.session(write=True) as session:
        usb = target_row(session, "acme/usb").id
        cloud = target_row(session, "acme/cloud").id
        beta = target_row(session, "beta/usb").id
        assert usb is not None and cloud is not None and beta is not None

        def drill(name: str, target_id: int, **values: Any) -> DrillRun:
            row = DrillRun(target_id=target_id, requested_by="scheduler", **values)
            session.add(row)
            session.flush()
            assert row.id is not None
            ids[name] = row.id
            return row

        d1 = drill("d1", usb, kind="sample", status="failed", failure_class="content-mismatch",
                   requested_at=hours(2), started_at=hours(2), finished_at=hours(2.1), snapshot_id=s1.id,
                   snapshot_time=s1.time, files_checked=40, bytes_in_snapshot=10 * TB, restore_s=12.5,
                   estimated_full_restore_s=3600.0, canaries_checked=1)  # fmt: skip
        drill("d2", usb, kind="integrity", status="passed", requested_at=hours(30), started_at=hours(30),
              finished_at=hours(31), subset="3/30")  # fmt: skip
        drill("d3", usb, kind="full", status="running", requested_at=hours(40), started_at=hours(40))
        drill("d0", usb, kind="sample", status="passed", requested_at=hours(-5), started_at=hours(-5),
              finished_at=hours(-4.9), files_checked=None, bytes_in_snapshot=None, canaries_checked=None)  # fmt: skip
        c1 = drill("c1", cloud, kind="sample", status="failed", requested_at=hours(3), finished_at=hours(3.5))
        b1 = drill("b1", beta, kind="sample", status="failed", requested_at=hours(3), finished_at=hours(3.5))
        for drill_row, path in [(d1, CANARY), (d1, "/srv/data/other.txt"), (c1, CANARY), (b1, CANARY)]:
            assert drill_row.id is not None
            session.add(DrillFinding(drill_id=drill_row.id, path=path, failure_class="content-mismatch", detail="x"))

        def probe(name: str, target_id: int, at: datetime, ok: bool, facts: str, failure: str | None = None) -> None:
            row = Probe(target_id=target_id, started_at=at - timedelta(seconds=3), finished_at=at, ok=ok,
                        failure_class=failure, facts=facts)  # fmt: skip
            session.add(row)
            session.flush()
            assert row.id is not None
            ids[name] = row.id

        probe("p2", usb, hours(25), False, "{}", "unreachable")
        probe("p1", usb, hours(1), True, '{"local": {"free_bytes": 5, "total_bytes": 9}}')
        probe("q1", cloud, hours(1), True, "{}")
        probe("r1", beta, hours(1), True, "{}")
    return ids


def test_gather_reads_configuration_and_history(synced: Store, config: Config) -> None:
    ids = make_history(synced)
    with count_statements(synced) as statements:
        facts = gather(config, synced, "acme")
    assert len(statements) <= 6, statements  # a fixed handful of queries, not one per row

    assert (facts.client_id, facts.name) == ("acme", "ACME Bâtiment")
    cloud, usb = facts.targets
    assert (cloud.ref, cloud.name, cloud.kind, cloud.location, cloud.media) == (
        "acme/cloud",
        "cloud",
        "rest",
        "offsite",
        "object-storage",
    )
    assert cloud.append_only is True and cloud.source is None and cloud.canaries == ()
    assert cloud.password_file == Path("/etc/preuve/cloud.pass")
    assert (usb.ref, usb.kind, usb.source, usb.append_only) == ("acme/usb", "local", "/srv/data", False)
    assert usb.password_file == config.directory / "secrets" / "usb.pass"
    assert usb.canaries == (CANARY,)

    a, b, c = usb.snapshots
    assert [s.id for s in usb.snapshots] == ["a" * 64, "b" * 64, "c" * 64]  # oldest first, the gone one included
    assert a == SnapshotFact(
        id="a" * 64,
        time=hours(-22),
        first_seen_at=hours(1),
        last_seen_at=hours(1),
        gone_at=hours(25),
        hostname="srv1",
        paths=("/srv/data",),
        tags=("daily",),
        size_bytes=1000,
        file_count=10,
        changed_files=None,
    )
    assert (b.paths, b.tags, b.size_bytes, b.file_count, b.changed_files, b.gone_at) == (
        ("/srv/data", "/home"),
        (),
        None,
        None,
        None,
        None,
    )
    assert (c.size_bytes, c.file_count, c.changed_files, c.first_seen_at) == (1500, 12, 4, hours(25))
    assert all(s.time.tzinfo is not None and s.first_seen_at.tzinfo is not None for s in usb.snapshots)

    assert [d.id for d in usb.drills] == [ids["d0"], ids["d1"], ids["d2"], ids["d3"]]  # requested order
    d0, d1, d2, d3 = usb.drills
    assert (d0.files_checked, d0.bytes_in_snapshot, d0.canaries_checked) == (0, 0, 0)  # NULL measurements
    assert (d1.kind, d1.status, d1.failure_class) == ("sample", "failed", "content-mismatch")
    assert d1.failed_canaries == (CANARY,)  # the other finding is not a canary
    assert (d1.snapshot_id, d1.snapshot_time, d1.files_checked, d1.bytes_in_snapshot) == ("a" * 64, hours(-22), 40,
                                                                                          10 * TB)  # fmt: skip
    assert (d1.restore_s, d1.estimated_full_restore_s, d1.canaries_checked) == (12.5, 3600.0, 1)
    assert (d1.requested_at, d1.finished_at) == (hours(2), hours(2.1))
    assert (d2.kind, d2.subset, d2.failed_canaries) == ("integrity", "3/30", ())
    assert (d3.status, d3.finished_at) == ("running", None)
    # a finding on the canary's path in another target's drill is not that target's canary
    assert [d.failed_canaries for d in cloud.drills] == [()]

    assert [p.id for p in usb.probes] == [ids["p1"], ids["p2"]]  # oldest first, not insertion order
    p1, p2 = usb.probes
    assert (p1.at, p1.ok, p1.failure_class, p1.facts) == (
        hours(1),
        True,
        None,
        {"local": {"free_bytes": 5, "total_bytes": 9}},
    )
    assert (p2.ok, p2.failure_class, p2.facts) == (False, "unreachable", {})
    assert [p.id for p in cloud.probes] == [ids["q1"]]

    beta = gather(config, synced, "beta")
    assert [t.ref for t in beta.targets] == ["beta/usb"]
    assert [d.id for d in beta.targets[0].drills] == [ids["b1"]]
    assert beta.targets[0].drills[0].failed_canaries == ()  # beta declares no canary


def test_gather_until_shows_the_facts_as_they_stood(synced: Store, config: Config) -> None:
    ids = make_history(synced)

    usb = gather(config, synced, "acme", until=hours(20)).targets[1]
    # c was first listed at hour 25; a went missing at hour 25, after `until`
    assert [s.id for s in usb.snapshots] == ["a" * 64, "b" * 64]
    assert [s.gone_at for s in usb.snapshots] == [None, None]
    assert usb.snapshots[0].size_bytes == 1000  # measured at hour 2
    assert [d.id for d in usb.drills] == [ids["d0"], ids["d1"]]
    assert [p.id for p in usb.probes] == [ids["p1"]]

    usb = gather(config, synced, "acme", until=hours(30.5)).targets[1]
    assert [s.id for s in usb.snapshots] == ["a" * 64, "b" * 64, "c" * 64]
    assert usb.snapshots[0].gone_at == hours(25)
    assert usb.snapshots[2].size_bytes == 1500
    d2 = usb.drills[-1]
    assert (d2.id, d2.status, d2.finished_at, d2.failure_class) == (ids["d2"], "running", None, None)

    early = gather(config, synced, "acme", until=hours(25.5)).targets[1]
    assert early.snapshots[2].size_bytes is None and early.snapshots[2].changed_files is None  # measured at 26

    with pytest.raises(ValueError, match="aware"):
        gather(config, synced, "acme", until=T0.replace(tzinfo=None))
    with pytest.raises(KeyError):
        gather(config, synced, "nobody")


def test_gather_before_any_sync_gives_empty_histories(store: Store, config: Config) -> None:
    facts = gather(config, store, "acme")
    assert [t.ref for t in facts.targets] == ["acme/cloud", "acme/usb"]
    assert all(t.snapshots == () and t.drills == () and t.probes == () for t in facts.targets)


def test_gather_query_count_does_not_grow_with_history(synced: Store, config: Config) -> None:
    make_history(synced)
    with synced.session(write=True) as session:
        usb = target_row(session, "acme/usb").id
        assert usb is not None
        for index in range(300):
            at = hours(100 + index)
            session.add(Probe(target_id=usb, started_at=at, finished_at=at, ok=True, facts='{"local": {}}'))
            session.add(DrillRun(target_id=usb, kind="sample", status="passed", requested_by="s", requested_at=at,
                                 finished_at=at, failure_class=None))  # fmt: skip
    with count_statements(synced) as statements:
        facts = gather(config, synced, "acme")
    assert len(statements) <= 6
    assert len(facts.targets[1].probes) == 302 and len(facts.targets[1].drills) == 304
    assert facts.targets[1].probes[-1].facts == {"local": {}}


# ---------------------------------------------------------------------------------------------- end to end


def _tree(source: Path) -> tuple[int, int]:
    """What `restic stats --mode restore-size` should report for a backup of ``source``, counted here:
    the bytes of regular files, and every entry (files, directories, symlinks) including ``source`` itself and
    the directories above it, which restic stores too."""
    size, entries = 0, 1
    for folder, dirs, files in os.walk(source):
        entries += len(dirs) + len(files)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                size += path.stat().st_size
    return size, entries + len(source.parents) - 1


def _probe(config_dir: Path, ref: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
    done = subprocess.run(
        [*PREUVE, "--config", str(config_dir), "targets", "probe", ref, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_probe_measures_snapshots_and_gather_shows_them(tmp_path: Path, store_url: str) -> None:
    source = (tmp_path / "data").resolve()
    make_dataset(source, files=30)
    first_size, first_entries = _tree(source)
    config_dir = tmp_path / "conf"
    password_file = config_dir / "secrets" / "usb.pass"
    write_password_file(password_file)
    (config_dir / "secrets").chmod(0o700)
    repo = tmp_path / "repo"
    init_and_backup(str(repo), password_file, source)
    ids, changes = modify_and_backup(str(repo), password_file, source)
    second_size, second_entries = _tree(source)
    job = (
        "client: ACME\ntargets:\n  usb:\n    kind: local\n"
        f"    path: {repo}\n    password_file: secrets/usb.pass\n    location: onsite\n    media: disk\n"
        f"    source: {source}\n"
    )
    settings = f"database = {json.dumps(store_url)}\nsandbox = {json.dumps(str(tmp_path / 'sandbox'))}\n"
    config = write_config(config_dir, {"acme": job}, settings)

    # One probe measures both snapshots (new ones count as unmeasured), newest first.
    data = _probe(config_dir, "acme/usb")
    assert data["ok"] is True and data["snapshot_count"] == 2
    measured = {s["snapshot_id"]: s for s in data["snapshot_stats"]}
    assert [s["snapshot_id"] for s in data["snapshot_stats"]] == [ids[1], ids[0]]
    assert measured[ids[0]]["size_bytes"] == first_size
    assert measured[ids[1]]["compared_with"] == ids[0]
    assert measured[ids[0]]["compared_with"] is None

    with Store.open(store_url) as store:
        snapshots = gather(config, store, "acme").targets[0].snapshots
        assert snapshots_without_stats(store, "acme/usb", 10) == []
    first, second = snapshots
    assert (first.id, first.size_bytes, first.file_count, first.changed_files) == (
        ids[0],
        first_size,
        first_entries,
        None,  # nothing earlier to compare the first snapshot with
    )
    expected_changes = len(changes.modified) + len(changes.added) + len(changes.deleted)
    assert expected_changes > 0
    assert (second.id, second.size_bytes, second.file_count, second.changed_files) == (
        ids[1],
        second_size,
        second_entries,
        expected_changes,
    )

    # A new backup is measured by the next probe, and only it: the others are measured already.
    (source / "Documents" / "ajout.txt").write_text("une ligne\n", encoding="utf-8")
    restic_backup(restic_env(str(repo), password_file), source)
    data = _probe(config_dir, "acme/usb")
    [third] = data["snapshot_stats"]
    assert third["changed_files"] == 1 and third["compared_with"] == ids[1]
    with Store.open(store_url) as store:
        snapshots = gather(config, store, "acme").targets[0].snapshots
    assert [s.changed_files for s in snapshots] == [None, expected_changes, 1]
    assert snapshots[2].size_bytes == second_size + len("une ligne\n")


def test_probe_failure_measures_nothing(tmp_path: Path, store_url: str) -> None:
    config_dir = tmp_path / "conf"
    write_password_file(config_dir / "secrets" / "usb.pass")
    job = (
        "client: ACME\ntargets:\n  usb:\n    kind: local\n"
        f"    path: {tmp_path / 'missing'}\n    password_file: secrets/usb.pass\n    location: onsite\n"
        "    media: disk\n"
    )
    settings = f"database = {json.dumps(store_url)}\nsandbox = {json.dumps(str(tmp_path / 'sandbox'))}\n"
    write_config(config_dir, {"acme": job}, settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
    done = subprocess.run(
        [*PREUVE, "--config", str(config_dir), "targets", "probe", "acme/usb", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    data = json.loads(done.stdout)
    assert data["ok"] is False and data["failure_class"] == FailureClass.REPO_MISSING.value
    assert data["snapshot_stats"] == []
