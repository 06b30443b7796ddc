"""The results store on SQLite and on a real PostgreSQL server (each test runs on both backends)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, make_url, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from preuve.config.loader import Config, load_config
from preuve.drills.result import CommandLog, DrillKind, DrillResult, DrillStatus, Finding
from preuve.errors import FailureClass, PreuveError
from preuve.restic.parse import Snapshot
from preuve.store.db import Store, alembic_config
from preuve.store.models import Client, DrillRun, Probe, Target, metadata
from preuve.store.records import (
    claim_drill,
    create_drill,
    finish_drill,
    get_drill,
    list_drills,
    list_snapshots,
    mark_interrupted,
    record_probe,
    record_snapshots,
    sync_config,
    target_row,
)
from preuve.targets.facts import ProbeResult
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.integration

T = TypeVar("T")
TB = 2**40
PARIS = timezone(timedelta(hours=2))
T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
HEAD = "0008"  # the newest migration

ACME = """\
client: ACME
language: fr
policy: standard
targets:
  usb:
    kind: local
    path: /tmp/x
    password_file: secrets/p
    location: onsite
    media: disk
  nas:
    kind: sftp
    host: nas.acme.lan
    user: backup
    identity_file: keys/acme
    known_hosts: keys/known_hosts
    path: /volume1/restic/acme
    password_file: secrets/p
    location: onsite
    media: nas
  cloud:
    kind: s3
    endpoint: https://s3.example.net
    bucket: acme-backups
    prefix: restic
    env_file: secrets/acme.env
    password_file: secrets/p
    location: offsite
    media: object-storage
"""

BETA = """\
client: Beta SARL
language: en
targets:
  rest:
    kind: rest
    url: https://backup.example.net:8000/beta/
    password_file: secrets/p
    location: offsite
    media: nas
"""


def write_config(folder: Path, jobs: dict[str, str]) -> Config:
    jobs_dir = folder / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    for existing in jobs_dir.glob("*.yaml"):
        existing.unlink()
    for client_id, body in jobs.items():
        (jobs_dir / f"{client_id}.yaml").write_text(body)
    return load_config(folder)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "conf", {"acme": ACME, "beta": BETA})


@pytest.fixture
def synced(store: Store, config: Config) -> Store:
    sync_config(store, config)
    return store


def snap(short: str, hours: int, **extra: Any) -> Snapshot:
    return Snapshot(
        id=short * 8,
        short_id=short,
        time=T0 + timedelta(hours=hours),
        paths=("/srv/data", "/home/été"),
        hostname="srv1",
        username="root",
        tags=("daily",),
        tree="t" * 64,
        **extra,
    )


def passed_result(kind: DrillKind = DrillKind.SAMPLE, **changes: Any) -> DrillResult:
    result = DrillResult(
        status=DrillStatus.PASSED,
        kind=kind,
        message="23 files verified",
        snapshot_id="a" * 64,
        snapshot_time=datetime(2024, 6, 1, 3, 0, tzinfo=PARIS),
        files_in_snapshot=3_000_000_000,  # more than 2^31 files would still fit
        bytes_in_snapshot=5 * TB,
        files_checked=23,
        files_changed_since_snapshot=2,
        bytes_restored=3 * 2**31,
        restore_s=12.5,
        duration_s=20.25,
        estimated_full_restore_s=86_400.0,
        restic_version="0.17.3",
        host="preuve-1",
        preuve_version="0.1.0",
        started_at=datetime(2024, 6, 1, 10, 0, tzinfo=PARIS),
        finished_at=datetime(2024, 6, 1, 10, 0, 20, tzinfo=PARIS),
        canaries_checked=2,
        sample_budget_limited=True,
        manifest_sha256="f" * 64,
    )
    return replace(result, **changes)


def race(count: int, action: Callable[[], T]) -> list[T]:
    """Run ``action`` in ``count`` threads released at the same moment; their results, or re-raise."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            value = action()
            with lock:
                results.append(value)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------------------------------ schema, opening


def test_migration_yields_exactly_the_models_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == HEAD


def test_schema_comparison_sees_a_missing_index(store: Store) -> None:
    """Control for the test above: the comparison does notice a difference."""
    with store.engine.connect() as connection:
        connection.execute(text("DROP INDEX ix_drillrun_status"))
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
        connection.rollback()
    assert [d[0] for d in diff] == ["add_index"]


def test_upgrade_from_0001_keeps_the_data_and_adds_unmeasured_columns(store_url: str) -> None:
    """A database made by the first release, with rows in it, upgrades in place; new columns read NULL."""
    store = Store.open(store_url, migrate=False)
    try:
        store.upgrade("0001")
        with store.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == "0001"
            assert "size_bytes" not in {c["name"] for c in inspect(connection).get_columns("snapshotseen")}
        # Rows as 0001 knew them, written with plain SQL (the models already have the new columns).
        with store.connection(write=True) as connection:
            connection.execute(
                text(
                    "INSERT INTO client (id, name, language, policy, created_at, updated_at) "
                    "VALUES ('acme', 'ACME', 'fr', 'standard', :t, :t)"
                ),
                {"t": T0},
            )
            connection.execute(
                text(
                    "INSERT INTO target (client_id, name, ref, kind, location, media, repository, created_at, "
                    "updated_at) VALUES ('acme', 'usb', 'acme/usb', 'local', 'onsite', 'disk', '/tmp/x', :t, :t)"
                ),
                {"t": T0},
            )
            target_id = connection.execute(text("SELECT id FROM target")).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO snapshotseen (target_id, snapshot_id, short_id, time, hostname, username, paths, "
                    "tags, tree, first_seen_at, last_seen_at) VALUES (:id, :s, 'aaaaaaaa', :t, 'srv1', 'root', "
                    "'[\"/srv\"]', '[]', '', :t, :t)"
                ),
                {"id": target_id, "s": "a" * 64, "t": T0},
            )
            connection.execute(
                text(
                    "INSERT INTO drillrun (target_id, kind, status, requested_by, requested_at, message, "
                    "restic_version, host, preuve_version, options) "
                    "VALUES (:id, 'integrity', 'passed', 'test', :t, '', '', '', '', '{}')"
                ),
                {"id": target_id, "t": T0},
            )
            connection.execute(
                text(
                    "INSERT INTO drillfinding (drill_id, path, failure_class, detail) "
                    "SELECT id, '/srv/x', 'content-mismatch', '' FROM drillrun"
                )
            )
        store.upgrade()
        with store.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == HEAD
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        records = list_snapshots(store, "acme/usb")
        assert [r.snapshot.id for r in records] == ["a" * 64]
        assert (records[0].size_bytes, records[0].file_count, records[0].changed_files, records[0].stats_at) == (
            None,
            None,
            None,
            None,
        )
        [drill] = list_drills(store, target="acme/usb")
        detail = get_drill(store, drill.id)
        assert detail is not None and detail.status is DrillStatus.PASSED and detail.subset is None
        # and back down to 0001, rows kept (SQLite drops the columns in place)
        with store.connection(write=True) as connection:
            command.downgrade(alembic_config(connection), "0001")
        with store.engine.connect() as connection:
            assert "subset" not in {c["name"] for c in inspect(connection).get_columns("drillrun")}
            assert connection.execute(text("SELECT count(*) FROM drillrun")).scalar_one() == 1
            assert connection.execute(text("SELECT count(*) FROM snapshotseen")).scalar_one() == 1
            assert connection.execute(text("SELECT count(*) FROM drillfinding")).scalar_one() == 1
    finally:
        store.close()


def test_downgrade_to_nothing_then_upgrade_again(store: Store) -> None:
    with store.connection(write=True) as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
    store.upgrade()
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version", *metadata.tables}


def test_open_twice_is_a_no_op_and_concurrent_opens_migrate_once(store_url: str) -> None:
    stores = race(4, lambda: Store.open(store_url))
    try:
        with stores[0].engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == HEAD
    finally:
        for opened in stores:
            opened.close()


def test_database_from_a_newer_preuve_is_refused_clearly(store: Store, store_url: str) -> None:
    with store.connection(write=True) as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(PreuveError, match="newer version of Preuve"):
        Store.open(store_url)


def test_backend_settings(store: Store) -> None:
    with store.engine.connect() as connection:
        if store.dialect == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        else:
            assert store.engine.pool._pre_ping


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(DrillRun(target_id=999, kind="sample", status="queued", requested_by="t", requested_at=T0))


def test_sqlite_url_is_shown_as_written() -> None:
    with Store.open("sqlite:///:memory:") as store:
        assert store.url == "sqlite:///:memory:"


@pytest.mark.postgres
def test_url_hides_the_password(postgres_server: PostgresServer) -> None:
    database = str(make_url(postgres_server.create_database()).database)
    try:
        # Trust authentication on the test server: the password is accepted and ignored.
        url = f"postgresql://postgres:Sup3rSecret@127.0.0.1:{postgres_server.port}/{database}?sslmode=disable"
        with Store.open(url) as store:
            # As written in preuve.toml (the driver is added only for the engine), minus the password.
            port = postgres_server.port
            assert store.url == f"postgresql://postgres:***@127.0.0.1:{port}/{database}?sslmode=disable"
            assert "Sup3rSecret" not in repr(store)
    finally:
        postgres_server.drop_database(database)


@pytest.mark.postgres
def test_unreachable_postgres_names_the_url_and_never_the_password(postgres_server: PostgresServer) -> None:
    url = f"postgresql://alice:Sup3rSecret@127.0.0.1:{postgres_server.port}/nope"  # wrong user, no such db
    with pytest.raises(PreuveError) as raised:
        Store.open(url)
    message = str(raised.value)
    assert raised.value.failure_class is FailureClass.INTERNAL
    assert "Sup3rSecret" not in message and "Sup3rSecret" not in raised.value.full_message
    assert f"postgresql://alice:***@127.0.0.1:{postgres_server.port}/nope" in message
    assert "Check that PostgreSQL is running" in message


def test_closed_port_is_reported_with_what_to_check() -> None:
    with pytest.raises(PreuveError) as raised:
        Store.open("postgresql+psycopg://preuve:hunter22@127.0.0.1:1/preuve")
    message = str(raised.value)
    assert "hunter22" not in message
    assert "postgresql+psycopg://preuve:***@127.0.0.1:1/preuve" in message
    assert "reachable at 127.0.0.1:1" in message


def test_sqlite_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    database = tmp_path / "missing" / "preuve.db"
    with pytest.raises(PreuveError) as raised:
        Store.open(f"sqlite:///{database}")
    assert str(database.parent) in str(raised.value)
    assert "exists" in str(raised.value)


def test_garbage_url_is_not_echoed() -> None:
    with pytest.raises(PreuveError) as raised:
        Store.open("not a url with p4ssw0rd")
    assert "p4ssw0rd" not in str(raised.value)
    assert "sqlite:///" in str(raised.value)


# ------------------------------------------------------------------------------------------- configuration


def test_sync_config_inserts_clients_and_targets(synced: Store) -> None:
    with synced.session() as session:
        clients = {c.id: c for c in session.exec(select(Client))}
        targets = {t.ref: t for t in session.exec(select(Target))}
    assert set(clients) == {"acme", "beta"}
    assert (clients["acme"].name, clients["acme"].language, clients["acme"].policy) == ("ACME", "fr", "standard")
    assert clients["acme"].created_at.tzinfo is UTC
    assert set(targets) == {"acme/usb", "acme/nas", "acme/cloud", "beta/rest"}
    assert targets["acme/nas"].repository == "sftp:nas.acme.lan:/volume1/restic/acme"
    assert targets["acme/cloud"].repository == "s3:https://s3.example.net/acme-backups/restic"
    assert targets["beta/rest"].repository == "rest:https://backup.example.net:8000/beta/"
    assert targets["acme/usb"].repository == "local:/tmp/x"
    assert (targets["acme/cloud"].kind, targets["acme/cloud"].location, targets["acme/cloud"].media) == (
        "s3",
        "offsite",
        "object-storage",
    )
    assert all(t.removed_at is None for t in targets.values())


def test_sync_config_updates_removes_and_re_adds(synced: Store, tmp_path: Path) -> None:
    with synced.session() as session:
        before = {t.ref: (t.id, t.updated_at) for t in session.exec(select(Target))}

    changed = ACME.replace("client: ACME", "client: ACME SAS").replace("media: nas", "media: disk")
    without_cloud = changed[: changed.index("  cloud:")]
    sync_config(synced, write_config(tmp_path / "conf", {"acme": without_cloud, "beta": BETA}))
    with synced.session() as session:
        after = {t.ref: t for t in session.exec(select(Target))}
        acme = session.get(Client, "acme")
    assert acme is not None and acme.name == "ACME SAS"
    assert acme.updated_at > acme.created_at
    assert after["acme/cloud"].removed_at is not None  # kept, marked removed
    assert after["acme/nas"].media == "disk" and after["acme/nas"].updated_at > before["acme/nas"][1]
    assert after["acme/usb"].updated_at == before["acme/usb"][1]  # unchanged rows are not touched
    assert after["beta/rest"].removed_at is None

    sync_config(synced, write_config(tmp_path / "conf", {"acme": ACME, "beta": BETA}))
    with synced.session() as session:
        again = {t.ref: t for t in session.exec(select(Target))}
    assert again["acme/cloud"].removed_at is None
    assert again["acme/cloud"].id == before["acme/cloud"][0]  # the same row, history attached
    assert len(again) == 4


def test_sync_config_twice_at_once(store: Store, config: Config) -> None:
    race(3, lambda: sync_config(store, config))
    with store.session() as session:
        assert len(session.exec(select(Target)).all()) == 4


def test_target_row_unknown(synced: Store) -> None:
    with synced.session() as session:
        assert target_row(session, "acme/nas").ref == "acme/nas"
        with pytest.raises(LookupError, match="unknown target 'acme/nope'"):
            target_row(session, "acme/nope")
        with pytest.raises(LookupError, match="CLIENT/TARGET"):
            target_row(session, "nas")


# ---------------------------------------------------------------------------------------------------- drills


def test_create_claim_finish_and_read_back(synced: Store) -> None:
    drill_id = create_drill(
        synced, "acme/nas", DrillKind.SAMPLE, "alice@preuve-1", status=DrillStatus.QUEUED, options={"snapshot": "é1"}
    )
    queued = get_drill(synced, drill_id)
    assert queued is not None
    assert (queued.status, queued.started_at, queued.worker) == (DrillStatus.QUEUED, None, None)
    assert queued.options == {"snapshot": "é1"}

    assert claim_drill(synced, drill_id, "123@worker-1")
    assert not claim_drill(synced, drill_id, "456@worker-2")  # already running
    running = get_drill(synced, drill_id)
    assert running is not None and running.status is DrillStatus.RUNNING
    assert running.worker == "123@worker-1" and running.started_at is not None

    result = passed_result(
        status=DrillStatus.FAILED,
        failure_class=FailureClass.CONTENT_MISMATCH,
        message="2 files differ",
        findings=[
            Finding("/srv/data/a.xlsx", FailureClass.CONTENT_MISMATCH, "sha256 differs"),
            Finding("/srv/data/b.docx", FailureClass.SUSPICIOUS_CONTENT, "entropy 7.99 bits/byte"),
        ],
        log=[
            CommandLog(
                argv=("restic", "snapshots", "--json"),
                started_at=datetime(2024, 6, 1, 10, 0, 1, tzinfo=PARIS),
                duration_s=1.5,
                exit_code=0,
                stdout='[{"id": "aaaa"}]',
                stderr="",
            ),
            CommandLog(
                argv=("restic", "restore", "latest", "--target", "/sandbox/1"),
                started_at=datetime(2024, 6, 1, 10, 0, 3, tzinfo=PARIS),
                duration_s=12.5,
                exit_code=None,
                stdout="x" * 100_000,
                stderr="killed at the deadline",
                timed_out=True,
                note="stdout: 3196 lines, first 64 KiB kept",
            ),
        ],
    )
    finish_drill(synced, drill_id, result)

    detail = get_drill(synced, drill_id)
    assert detail is not None
    assert detail.target == "acme/nas" and detail.client == "acme"
    assert detail.repository == "sftp:nas.acme.lan:/volume1/restic/acme" and detail.target_kind == "sftp"
    assert (detail.status, detail.failure_class, detail.kind) == (
        DrillStatus.FAILED,
        FailureClass.CONTENT_MISMATCH,
        DrillKind.SAMPLE,
    )
    assert detail.started_at == running.started_at  # the claim's start time stands
    assert detail.finished_at == datetime(2024, 6, 1, 8, 0, 20, tzinfo=UTC)
    assert detail.finished_at is not None and detail.finished_at.tzinfo is UTC
    assert detail.snapshot_time == datetime(2024, 6, 1, 1, 0, tzinfo=UTC)
    assert detail.bytes_in_snapshot == 5 * TB
    assert detail.bytes_restored == 3 * 2**31
    assert detail.files_in_snapshot == 3_000_000_000
    assert (detail.files_checked, detail.files_changed_since_snapshot, detail.canaries_checked) == (23, 2, 2)
    assert (detail.restore_s, detail.duration_s, detail.estimated_full_restore_s) == (12.5, 20.25, 86_400.0)
    assert (detail.restic_version, detail.host, detail.preuve_version) == ("0.17.3", "preuve-1", "0.1.0")
    assert detail.sample_budget_limited is True and detail.manifest_sha256 == "f" * 64
    assert detail.findings == tuple(result.findings)
    assert [c.argv for c in detail.commands] == [c.argv for c in result.log]
    assert detail.commands == tuple(result.log)  # times come back as the same instants, in UTC
    assert all(c.started_at.tzinfo is UTC for c in detail.commands)

    with pytest.raises(ValueError, match="already failed"):
        finish_drill(synced, drill_id, passed_result())
    after = get_drill(synced, drill_id)
    assert after == detail  # the refused rewrite changed nothing, not even findings or commands


def test_create_running_sets_start_and_worker(synced: Store) -> None:
    drill_id = create_drill(synced, "beta/rest", DrillKind.INTEGRITY, "scheduler")
    detail = get_drill(synced, drill_id)
    assert detail is not None
    assert detail.status is DrillStatus.RUNNING and detail.kind is DrillKind.INTEGRITY
    assert detail.started_at is not None and detail.started_at.tzinfo is UTC
    assert detail.worker is not None and "@" in detail.worker
    assert detail.options == {}
    assert detail.files_checked is None  # not measured yet, not zero


def test_finish_refuses_bad_results(synced: Store) -> None:
    drill_id = create_drill(synced, "acme/usb", DrillKind.FULL, "t")
    with pytest.raises(ValueError, match="final status"):
        finish_drill(synced, drill_id, passed_result(DrillKind.FULL, status=DrillStatus.RUNNING))
    with pytest.raises(ValueError, match="is a full drill"):
        finish_drill(synced, drill_id, passed_result(DrillKind.SAMPLE))
    with pytest.raises(LookupError):
        finish_drill(synced, 999_999, passed_result())
    naive = passed_result(DrillKind.FULL, finished_at=datetime(2024, 6, 1, 10, 0))  # noqa: DTZ001
    with pytest.raises(Exception, match="naive datetime"):
        finish_drill(synced, drill_id, naive)
    detail = get_drill(synced, drill_id)
    assert detail is not None and detail.status is DrillStatus.RUNNING  # nothing half-written
    finish_drill(synced, drill_id, passed_result(DrillKind.FULL, started_at=None, finished_at=None))
    detail = get_drill(synced, drill_id)
    assert detail is not None and detail.status is DrillStatus.PASSED and detail.finished_at is not None


def test_create_drill_refuses_unknown_and_removed_targets(synced: Store, tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="unknown target"):
        create_drill(synced, "acme/nope", DrillKind.SAMPLE, "t")
    with pytest.raises(ValueError, match="queued or running"):
        create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t", status=DrillStatus.PASSED)
    sync_config(synced, write_config(tmp_path / "conf", {"beta": BETA}))
    with pytest.raises(LookupError, match="was removed"):
        create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t")


def test_claim_race_has_one_winner(synced: Store) -> None:
    for _ in range(3):
        drill_id = create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t", status=DrillStatus.QUEUED)

        def claim(drill_id: int = drill_id) -> tuple[bool, str]:
            worker = f"{threading.get_ident()}@w"
            return claim_drill(synced, drill_id, worker), worker

        outcomes = race(8, claim)
        winners = [worker for won, worker in outcomes if won]
        assert len(winners) == 1
        detail = get_drill(synced, drill_id)
        assert detail is not None and detail.worker == winners[0]
    assert not claim_drill(synced, 999_999, "x@w")


def test_mark_interrupted_leaves_final_drills_alone(synced: Store) -> None:
    queued = create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t", status=DrillStatus.QUEUED)
    running = create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t")
    done = create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t")
    finish_drill(synced, done, passed_result())
    assert mark_interrupted(synced, [queued, running, done, 999_999]) == 2
    assert mark_interrupted(synced, []) == 0
    statuses = {d.id: d.status for d in list_drills(synced)}
    assert statuses == {queued: DrillStatus.INTERRUPTED, running: DrillStatus.INTERRUPTED, done: DrillStatus.PASSED}
    detail = get_drill(synced, running)
    assert detail is not None and detail.finished_at is not None and "interrupted" in detail.message
    with pytest.raises(ValueError, match="already interrupted"):
        finish_drill(synced, running, passed_result())


def test_list_drills_order_and_filters(synced: Store) -> None:
    made = [
        create_drill(synced, "acme/nas", DrillKind.SAMPLE, "t"),
        create_drill(synced, "beta/rest", DrillKind.SAMPLE, "t"),
        create_drill(synced, "acme/usb", DrillKind.SAMPLE, "t", status=DrillStatus.QUEUED),
        create_drill(synced, "acme/nas", DrillKind.INTEGRITY, "t"),
    ]
    finish_drill(synced, made[0], passed_result())
    finish_drill(synced, made[1], passed_result(status=DrillStatus.ERROR, failure_class=FailureClass.UNREACHABLE))

    everything = list_drills(synced)
    assert [d.id for d in everything] == made[::-1]  # newest first
    assert [d.id for d in list_drills(synced, limit=2)] == made[:1:-1]
    assert [d.id for d in list_drills(synced, client="acme")] == [made[3], made[2], made[0]]
    assert [d.id for d in list_drills(synced, target="acme/nas")] == [made[3], made[0]]
    assert [d.id for d in list_drills(synced, target="rest")] == [made[1]]
    assert [d.id for d in list_drills(synced, client="beta", target="nas")] == []
    assert [d.id for d in list_drills(synced, status="passed")] == [made[0]]
    assert [d.id for d in list_drills(synced, status=DrillStatus.RUNNING)] == [made[3]]
    assert list_drills(synced, client="nobody") == []
    error = next(d for d in everything if d.id == made[1])
    assert (error.target, error.status, error.failure_class) == (
        "beta/rest",
        DrillStatus.ERROR,
        FailureClass.UNREACHABLE,
    )
    assert error.requested_at.tzinfo is UTC
    assert get_drill(synced, 999_999) is None


# ------------------------------------------------------------------------------------ snapshots and probes


def test_record_snapshots_gone_and_back(synced: Store) -> None:
    a, b, c = snap("aaaaaaaa", 0), snap("bbbbbbbb", 1, parent="a" * 64), snap("cccccccc", 2)
    t1, t2, t3, t4 = (T0 + timedelta(days=d) for d in (1, 2, 3, 4))

    record_snapshots(synced, "acme/nas", [a, b], seen_at=t1)
    record_snapshots(synced, "acme/nas", [b, c], seen_at=t2)
    seen = {r.snapshot.short_id: r for r in list_snapshots(synced, "acme/nas")}
    assert seen["aaaaaaaa"].gone_at == t2
    assert (seen["bbbbbbbb"].first_seen_at, seen["bbbbbbbb"].last_seen_at, seen["bbbbbbbb"].gone_at) == (t1, t2, None)
    assert seen["cccccccc"].first_seen_at == t2
    assert seen["bbbbbbbb"].snapshot == b  # paths, tags, parent, time survive the JSON columns
    assert [r.snapshot.short_id for r in list_snapshots(synced, "acme/nas", include_gone=False)] == [
        "bbbbbbbb",
        "cccccccc",
    ]

    record_snapshots(synced, "acme/nas", [a, b, c], seen_at=t3)  # a is back (repository restored from a copy)
    assert all(r.gone_at is None for r in list_snapshots(synced, "acme/nas"))

    record_snapshots(synced, "acme/nas", [c], seen_at=t4, complete=False)  # a filtered listing: nothing gone
    seen = {r.snapshot.short_id: r for r in list_snapshots(synced, "acme/nas")}
    assert all(r.gone_at is None for r in seen.values())
    assert seen["cccccccc"].last_seen_at == t4 and seen["aaaaaaaa"].last_seen_at == t3

    record_snapshots(synced, "acme/nas", [a], seen_at=t1 + timedelta(hours=1))  # late, out of order
    seen = {r.snapshot.short_id: r for r in list_snapshots(synced, "acme/nas")}
    assert all(r.gone_at is None for r in seen.values())  # older than what b and c were last seen at
    assert seen["aaaaaaaa"].last_seen_at == t3

    assert list_snapshots(synced, "beta/rest") == []  # per target
    with pytest.raises(ValueError, match="aware"):
        record_snapshots(synced, "acme/nas", [a], seen_at=datetime(2024, 1, 1))  # noqa: DTZ001


def test_record_probe_round_trip_and_snapshots(synced: Store) -> None:
    a, b = snap("aaaaaaaa", 0), snap("bbbbbbbb", 1)
    record_snapshots(synced, "acme/cloud", [a], seen_at=T0)
    probe = ProbeResult(
        ok=True,
        started_at=datetime(2024, 6, 2, 10, 0, tzinfo=PARIS),
        finished_at=datetime(2024, 6, 2, 10, 0, 3, tzinfo=PARIS),
        reachable=True,
        credentials_ok=True,
        repository_opens=True,
        repository_id="r" * 64,
        snapshots=[b],
        restic_version="0.17.3",
        host="preuve-1",
        preuve_version="0.1.0",
        facts={"s3": {"versioning": "Enabled", "object_lock": True, "free_bytes": 7 * TB, "note": "dépôt"}},
    )
    probe_id = record_probe(synced, "acme/cloud", probe)
    with synced.session() as session:
        row = session.get(Probe, probe_id)
    assert row is not None
    assert row.started_at == datetime(2024, 6, 2, 8, 0, tzinfo=UTC) and row.started_at.tzinfo is UTC
    assert (row.ok, row.reachable, row.credentials_ok, row.repository_opens) == (True, True, True, True)
    assert (row.snapshot_count, row.newest_snapshot_id, row.newest_snapshot_time) == (1, b.id, b.time)
    assert json.loads(row.facts) == probe.facts
    seen = {r.snapshot.short_id: r.gone_at for r in list_snapshots(synced, "acme/cloud")}
    assert seen == {"aaaaaaaa": probe.finished_at, "bbbbbbbb": None}

    failed = ProbeResult(
        ok=False,
        started_at=T0 + timedelta(days=5),
        finished_at=T0 + timedelta(days=5, seconds=30),
        failure_class=FailureClass.UNREACHABLE,
        message="connection refused",
        reachable=False,
    )
    failed_id = record_probe(synced, "acme/cloud", failed)
    with synced.session() as session:
        failed_row = session.get(Probe, failed_id)
    assert failed_row is not None
    assert (failed_row.ok, failed_row.failure_class, failed_row.reachable, failed_row.credentials_ok) == (
        False,
        "unreachable",
        False,
        None,
    )
    assert failed_row.newest_snapshot_id is None and json.loads(failed_row.facts) == {}
    # An unreachable repository says nothing about its snapshots.
    assert {r.snapshot.short_id: r.gone_at for r in list_snapshots(synced, "acme/cloud")}["bbbbbbbb"] is None


def test_postgres_store_url_is_a_fresh_database(store_url: str) -> None:
    """Each test gets an empty database (no tables before the store opens it)."""
    store = Store.open(store_url, migrate=False)
    try:
        assert inspect(store.engine).get_table_names() == []
        assert make_url(store_url).get_backend_name() in {"sqlite", "postgresql"}
    finally:
        store.close()
