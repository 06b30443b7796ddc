"""The Prometheus endpoint, started for real on a free port of 127.0.0.1 and scraped over HTTP.

The store holds hand-made rows (drills recorded with create_drill/finish_drill, snapshot listings, flips), so
every figure has a known expected value. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import errno
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import column, insert, inspect, table

from preuve import __version__
from preuve.config.loader import Config, load_config
from preuve.drills.result import DrillKind, DrillResult, DrillStatus
from preuve.errors import FailureClass
from preuve.metrics import MetricsError, MetricsServer, parse_listen, start_metrics_server
from preuve.restic.parse import Snapshot
from preuve.store.db import Store
from preuve.store.records import create_drill, finish_drill, record_snapshot_stats, record_snapshots, sync_config

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)

ACME = """\
client: ACME
policy_overrides:
  integrity: {window: 10d}
targets:
  usb:
    kind: local
    path: /mnt/usb/restic
    password_file: secrets/acme.pass
    location: onsite
    media: disk
  cloud:
    kind: rest
    url: https://backup.example.net:8000/acme/
    password_file: secrets/acme.pass
    location: offsite
    media: object-storage
"""

BETA = """\
client: Beta
targets:
  nas:
    kind: sftp
    host: nas.beta.lan
    user: backup
    identity_file: secrets/beta.key
    known_hosts: secrets/known_hosts
    path: /volume1/restic
    password_file: secrets/beta.pass
    location: onsite
    media: nas
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_config(folder: Path, port: int, *, enabled: bool = True) -> Config:
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    (folder / "jobs" / "acme.yaml").write_text(ACME)
    (folder / "jobs" / "beta.yaml").write_text(BETA)
    (folder / "preuve.toml").write_text(
        f'[metrics]\nenabled = {"true" if enabled else "false"}\nlisten = "127.0.0.1:{port}"\n'
    )
    return load_config(folder)


def drill(
    store: Store,
    ref: str,
    kind: DrillKind,
    status: DrillStatus,
    finished: datetime,
    *,
    failure_class: FailureClass | None = None,
    estimate_s: float | None = None,
    restore_s: float = 0.0,
    bytes_in_snapshot: int = 0,
    subset: str | None = None,
) -> int:
    drill_id = create_drill(store, ref, kind, requested_by="test")
    finish_drill(
        store,
        drill_id,
        DrillResult(
            status=status,
            kind=kind,
            failure_class=failure_class,
            started_at=finished - timedelta(minutes=5),
            finished_at=finished,
            estimated_full_restore_s=estimate_s,
            restore_s=restore_s,
            bytes_in_snapshot=bytes_in_snapshot,
            subset=subset,
        ),
    )
    return drill_id


def snapshot(snapshot_id: str, when: datetime) -> Snapshot:
    return Snapshot(id=snapshot_id * 8, short_id=snapshot_id, time=when, paths=("/srv/data",))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "config", free_port())


@pytest.fixture
def filled(store: Store, config: Config) -> Store:
    sync_config(store, config)
    # acme/usb: a failed sample, then a pass (the latest counts); integrity 3 of 4 parts read in the window
    drill(
        store,
        "acme/usb",
        DrillKind.SAMPLE,
        DrillStatus.FAILED,
        NOW - timedelta(days=2),
        failure_class=FailureClass.CONTENT_MISMATCH,
    )
    drill(
        store,
        "acme/usb",
        DrillKind.SAMPLE,
        DrillStatus.PASSED,
        NOW - timedelta(hours=3),
        estimate_s=600.0,
        bytes_in_snapshot=1000,
    )
    drill(store, "acme/usb", DrillKind.INTEGRITY, DrillStatus.PASSED, NOW - timedelta(days=20), subset="4/4")
    for part, days in ((1, 3), (2, 2), (3, 1)):
        drill(
            store, "acme/usb", DrillKind.INTEGRITY, DrillStatus.PASSED, NOW - timedelta(days=days), subset=f"{part}/4"
        )
    drill(store, "acme/usb", DrillKind.INTEGRITY, DrillStatus.PASSED, NOW - timedelta(days=4), subset="1/2")
    # acme/cloud: the latest restore drill is an error; a full restore measured 7200 s earlier
    drill(store, "acme/cloud", DrillKind.FULL, DrillStatus.PASSED, NOW - timedelta(days=9), restore_s=7200.0)
    drill(
        store,
        "acme/cloud",
        DrillKind.SAMPLE,
        DrillStatus.ERROR,
        NOW - timedelta(hours=1),
        failure_class=FailureClass.UNREACHABLE,
    )
    drill(
        store,
        "acme/cloud",
        DrillKind.SAMPLE,
        DrillStatus.FAILED,
        NOW - timedelta(days=40),
        failure_class=FailureClass.CORRUPT_DATA,
    )  # outside the 30-day failure window
    # beta/nas: nothing finished, one drill running and two queued
    create_drill(store, "beta/nas", DrillKind.SAMPLE, requested_by="test")
    create_drill(store, "beta/nas", DrillKind.SAMPLE, requested_by="test", status=DrillStatus.QUEUED)
    create_drill(store, "acme/usb", DrillKind.FULL, requested_by="test", status=DrillStatus.QUEUED)

    record_snapshots(
        store,
        "acme/usb",
        [snapshot("aaaaaaaa", NOW - timedelta(hours=26)), snapshot("bbbbbbbb", NOW - timedelta(hours=2))],
        seen_at=NOW,
    )
    # the newest snapshot is twice the size the drill restored from: the estimate doubles
    record_snapshot_stats(store, "acme/usb", "bbbbbbbb" * 8, size_bytes=2000, file_count=10, changed_files=1, at=NOW)
    record_snapshots(store, "acme/cloud", [snapshot("cccccccc", NOW - timedelta(days=3))], seen_at=NOW)
    # a snapshot seen once and gone since does not count
    record_snapshots(
        store, "beta/nas", [snapshot("dddddddd", NOW - timedelta(hours=1))], seen_at=NOW - timedelta(hours=1)
    )
    record_snapshots(store, "beta/nas", [], seen_at=NOW)
    return store


@pytest.fixture
def server(filled: Store, config: Config) -> Iterator[MetricsServer]:
    started = start_metrics_server(config, filled)
    try:
        yield started
    finally:
        started.stop()


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{metric name: {sorted labels: value}} of every sample."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local http:// URL
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labels(client: str, target: str, kind: str, location: str, media: str, **more: str) -> tuple[tuple[str, str], ...]:
    base = {"client": client, "target": target, "kind": kind, "location": location, "media": media, **more}
    return tuple(sorted(base.items()))


USB = ("acme", "usb", "local", "onsite", "disk")
CLOUD = ("acme", "cloud", "rest", "offsite", "object-storage")
NAS = ("beta", "nas", "sftp", "onsite", "nas")


def test_scrape(server: MetricsServer) -> None:
    assert server.address is not None and server.address[0] == "127.0.0.1"
    assert server.url is not None
    m = scrape(server.url)

    assert m["preuve_up"] == {(): 1.0}
    assert m["preuve_build_info"] == {(("version", __version__),): 1.0}
    assert m["preuve_store_up"] == {(): 1.0}
    assert set(m["preuve_target_info"]) == {labels(*USB), labels(*CLOUD), labels(*NAS)}

    status = m["preuve_last_drill_status"]
    assert set(status.values()) == {1.0}  # only the current status of each (target, drill) has a sample
    assert set(status) == {
        labels(*USB, drill="restore", status="passed"),
        labels(*USB, drill="integrity", status="passed"),
        labels(*CLOUD, drill="restore", status="error"),
        labels(*CLOUD, drill="integrity", status="none"),
        labels(*NAS, drill="restore", status="none"),
        labels(*NAS, drill="integrity", status="none"),
    }
    finished = m["preuve_last_drill_finished_timestamp_seconds"]
    assert finished == {
        labels(*USB, drill="restore"): (NOW - timedelta(hours=3)).timestamp(),
        labels(*USB, drill="integrity"): (NOW - timedelta(days=1)).timestamp(),
        labels(*CLOUD, drill="restore"): (NOW - timedelta(hours=1)).timestamp(),
    }

    ages = m["preuve_newest_snapshot_age_seconds"]
    assert set(ages) == {labels(*USB), labels(*CLOUD)}  # beta/nas: its only snapshot is gone
    elapsed = (datetime.now(UTC) - NOW).total_seconds()
    assert 2 * 3600 <= ages[labels(*USB)] <= 2 * 3600 + elapsed + 1
    assert 3 * 86400 <= ages[labels(*CLOUD)] <= 3 * 86400 + elapsed + 1
    assert m["preuve_newest_snapshot_timestamp_seconds"][labels(*USB)] == (NOW - timedelta(hours=2)).timestamp()

    # usb: 600 s for 1000 bytes, the newest snapshot has 2000; cloud: the full restore's own time
    assert m["preuve_estimated_full_restore_seconds"] == {labels(*USB): 1200.0, labels(*CLOUD): 7200.0}

    # usb: within acme's 10-day window the latest rotation is t=4 (the 1/2 run is older than 1/4..3/4),
    # parts 1, 2, 3 read (4/4 is 20 days old): 0.75
    assert m["preuve_integrity_coverage_ratio"] == {labels(*USB): 0.75, labels(*CLOUD): 0.0, labels(*NAS): 0.0}

    assert m["preuve_queued_drills"] == {(): 2.0}
    assert m["preuve_running_drills"] == {(): 1.0}
    failures = {dict(key)["failure_class"]: value for key, value in m["preuve_drill_failures_30d"].items()}
    assert failures["content-mismatch"] == 1 and failures["unreachable"] == 1
    assert failures["corrupt-data"] == 0  # 40 days old
    assert set(failures) >= {c.value for c in FailureClass}

    assert m["process_resident_memory_bytes"][()] > 0


def test_policy_verdicts_from_the_latest_flips(filled: Store, config: Config) -> None:
    if not inspect(filled.engine).has_table("flip"):
        pytest.skip("no flip table in this schema (migration 0003 not applied)")
    flip = table(
        "flip",
        *(column(name) for name in ("client_id", "target_ref", "subject", "kind", "old_state", "new_state")),
        *(column(name) for name in ("at", "summary", "details", "reminder")),
    )
    rows = [
        ("acme", "acme/usb", "rule:acme:rpo:acme/usb", "rule", None, "met"),
        ("acme", "acme/usb", "rule:acme:rpo:acme/usb", "rule", "met", "violated"),
        ("acme", None, "rule:acme:copies", "rule", None, "unknown"),
        ("acme", "acme/usb", "drill:acme/usb", "drill", None, "failed"),  # not a rule
        ("beta", "beta/gone", "rule:beta:rpo:beta/gone", "rule", None, "violated"),  # not configured any more
    ]
    with filled.connection(write=True) as connection:
        for i, (client, target, subject, kind, old, new) in enumerate(rows):
            connection.execute(
                insert(flip).values(
                    client_id=client,
                    target_ref=target,
                    subject=subject,
                    kind=kind,
                    old_state=old,
                    new_state=new,
                    at=(NOW - timedelta(minutes=10 - i)).replace(tzinfo=None),
                    summary="",
                    details="{}",
                    reminder=False,
                )
            )
    started = start_metrics_server(config, filled)
    try:
        assert started.url is not None
        verdicts = scrape(started.url)["preuve_policy_verdict"]
    finally:
        started.stop()

    def key(client: str, rule: str, target: str, verdict: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({"client": client, "rule": rule, "target": target, "verdict": verdict}.items()))

    assert verdicts == {key("acme", "rpo", "usb", "violated"): 1.0, key("acme", "copies", "", "unknown"): 1.0}


def test_answers_only_where_configured(server: MetricsServer) -> None:
    assert server.address is not None
    host, port = server.address
    assert host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # Another loopback address of this machine: nothing listens there
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()
    # only /metrics (and a pointer at /)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    assert missing.value.code == 404


def test_refuses_an_address_in_use(filled: Store, config: Config) -> None:
    host, port = parse_listen(config.settings.metrics.listen)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((host, port))
        busy.listen()
        with pytest.raises(MetricsError, match=f"127.0.0.1:{port}"):
            start_metrics_server(config, filled)


def test_disabled_listens_nowhere(filled: Store, tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path / "off", port, enabled=False)
    started = start_metrics_server(config, filled)
    assert started.address is None and started.url is None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    started.stop()


def test_reads_are_cached_then_refreshed(filled: Store, config: Config) -> None:
    started = start_metrics_server(config, filled, cache_s=0.3)
    try:
        assert started.url is not None
        assert scrape(started.url)["preuve_queued_drills"] == {(): 2.0}
        create_drill(filled, "beta/nas", DrillKind.SAMPLE, requested_by="test", status=DrillStatus.QUEUED)
        assert scrape(started.url)["preuve_queued_drills"] == {(): 2.0}  # within the cache period
        time.sleep(0.4)
        assert scrape(started.url)["preuve_queued_drills"] == {(): 3.0}
    finally:
        started.stop()


def test_a_database_that_stops_answering(filled: Store, config: Config) -> None:
    started = start_metrics_server(config, filled, cache_s=0)
    try:
        assert started.url is not None
        assert scrape(started.url)["preuve_store_up"] == {(): 1.0}
        if filled.dialect == "sqlite":
            path = Path(str(filled.engine.url.database))
            filled.engine.dispose()
            path.rename(path.with_suffix(".moved"))
            path.mkdir()  # a folder where the database was: cannot be opened
        else:
            pytest.skip("stopping PostgreSQL under a running server is the daemon tests' business")
        m = scrape(started.url)
        assert m["preuve_up"] == {(): 1.0}
        assert m["preuve_store_up"] == {(): 0.0}
        assert "preuve_target_info" not in m
    finally:
        started.stop()


def test_targets_whose_drills_are_old(filled: Store, config: Config) -> None:
    """Drills finished long ago still give the last status and the estimate (one index lookup per target)."""
    long_ago = NOW - timedelta(days=60)
    old = drill(filled, "beta/nas", DrillKind.SAMPLE, DrillStatus.FAILED, long_ago + timedelta(hours=1),
                failure_class=FailureClass.CORRUPT_DATA, estimate_s=50.0)  # fmt: skip
    with filled.connection(write=True) as connection:
        drillrun = table("drillrun", column("id"), column("requested_at"))
        connection.execute(
            drillrun.update().where(drillrun.c.id == old).values(requested_at=long_ago.replace(tzinfo=None))
        )
    started = start_metrics_server(config, filled, cache_s=0)
    try:
        assert started.url is not None
        for _ in range(2):  # the same on every scrape: nothing cached in the reader
            m = scrape(started.url)
            assert m["preuve_last_drill_status"][labels(*NAS, drill="restore", status="failed")] == 1
            finished = m["preuve_last_drill_finished_timestamp_seconds"][labels(*NAS, drill="restore")]
            assert finished == (long_ago + timedelta(hours=1)).timestamp()
            assert m["preuve_estimated_full_restore_seconds"][labels(*NAS)] == 50.0
            # 60 days old: not among the failures of the last 30 days
            assert m["preuve_drill_failures_30d"][(("failure_class", "corrupt-data"),)] == 0
    finally:
        started.stop()


def test_estimate_from_an_older_drill_when_the_newest_measured_nothing(filled: Store, config: Config) -> None:
    """The newest sample of beta/nas failed before measuring; the estimate is the one an older sample measured."""
    drill(filled, "beta/nas", DrillKind.SAMPLE, DrillStatus.PASSED, NOW - timedelta(days=5), estimate_s=300.0)
    drill(filled, "beta/nas", DrillKind.SAMPLE, DrillStatus.PASSED, NOW - timedelta(days=3), estimate_s=450.0)
    drill(filled, "beta/nas", DrillKind.SAMPLE, DrillStatus.ERROR, NOW - timedelta(hours=2),
          failure_class=FailureClass.UNREACHABLE)  # fmt: skip
    started = start_metrics_server(config, filled, cache_s=0)
    try:
        assert started.url is not None
        m = scrape(started.url)
        assert m["preuve_last_drill_status"][labels(*NAS, drill="restore", status="error")] == 1
        assert m["preuve_estimated_full_restore_seconds"][labels(*NAS)] == 450.0
    finally:
        started.stop()
