"""The monthly attestation's content, built from real store contents on SQLite and on a real PostgreSQL.

Results are recorded through Preuve's own paths (create_drill/finish_drill, record_probe, add_note), each appended
to the ledger as it is in production. The ledger dates entries with the current time; to build a past month, the
clock those paths read is set (`clock`, tests/integration/month_records.py) before each recording. One
test drills a real restic repository with the real CLI, at the real time, and attests the current month so far.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from preuve.config.loader import Config, load_config
from preuve.drills.result import DrillStatus
from preuve.errors import FailureClass
from preuve.reports import chain
from preuve.reports.month import AttestationError, build_predicate
from preuve.store import ledger, records
from preuve.store.db import Store
from preuve.store.models import metadata
from tests.integration.drill_helpers import make_setup
from tests.integration.month_records import (
    DAY,
    OCT,
    Clock,
    H,
    Month,
    build_month,
    install_clock,
    run_drill,
    run_probe,
)
from tests.support.fixtures_services import TargetRepo

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "predicate-example.json"
NOV = datetime(2026, 11, 1, tzinfo=UTC)
AFTER = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # "now" when attesting October

JOB = """\
client: {name}
language: {language}
policy: {policy}
targets:
  nas:
    kind: local
    path: /srv/{id}/nas
    password_file: secrets/p
    location: onsite
    media: nas
  usb:
    kind: local
    path: /srv/{id}/usb
    password_file: secrets/p
    location: onsite
    media: disk
  offsite:
    kind: s3
    endpoint: https://s3.example.net
    bucket: {id}-backups
    env_file: secrets/s3.env
    password_file: secrets/p
    location: offsite
    media: object-storage
"""


def make_config(folder: Path) -> Config:
    (folder / "jobs").mkdir(parents=True)
    (folder / "secrets").mkdir()
    for name in ("p", "s3.env"):
        (folder / "secrets" / name).write_text("x\n")
        (folder / "secrets" / name).chmod(0o600)
    (folder / "jobs" / "acme.yaml").write_text(
        JOB.format(name="ACME Bâtiment", language="fr", policy="standard", id="acme")
    )
    (folder / "jobs" / "beta.yaml").write_text(
        JOB.format(name="Beta Santé", language="en", policy="health-data", id="beta")
    )
    return load_config(folder)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return install_clock(monkeypatch)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "conf")


@pytest.fixture
def synced(store: Store, config: Config) -> Store:
    records.sync_config(store, config)
    return store


def build_october(store: Store, clock: Clock) -> Month:
    """See :func:`tests.integration.month_records.build_month`: acme's October (nas tested, usb in September only,
    offsite never)."""
    return build_month(store, clock, "acme", OCT)


def keys_of(example: Any, built: Any, where: str = "") -> list[str]:
    """Keys of the example missing from what was built, recursively (lists: their first items)."""
    missing = []
    if isinstance(example, dict) and isinstance(built, dict):
        for key, value in example.items():
            if key not in built:
                missing.append(f"{where}.{key}")
            else:
                missing += keys_of(value, built[key], f"{where}.{key}")
    elif isinstance(example, list) and isinstance(built, list) and example and built:
        missing += keys_of(example[0], built[0], f"{where}[0]")
    return missing


# ------------------------------------------------------------------------------------------------------- tests


def test_a_month_with_passes_failures_an_incident_with_a_note_and_untested_targets(
    synced: Store, config: Config, clock: Clock
) -> None:
    october = build_october(synced, clock)
    clock.at = NOV + 2 * H
    run_drill(synced, clock, "acme/nas", NOV + 3 * H, taken=NOV + H)  # November: not October's

    predicate = build_predicate(config, synced, "acme", "2026-10", now=AFTER)

    json.dumps(predicate, allow_nan=False)  # plain JSON, no NaN
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    del example["signing"]
    assert keys_of(example, predicate) == []
    assert predicate["client"] == {"id": "acme", "name": "ACME Bâtiment", "language": "fr", "policy": "standard"}
    assert predicate["period"] == {"month": "2026-10", "start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
    assert predicate["partial"] is False and predicate["version"] == 1 and "signing" not in predicate
    assert predicate["generated_at"] == "2026-11-27T09:00:00Z"
    assert predicate["headline"]["restorable"] == "partly"  # usb and offsite not tested in October

    nas, offsite, usb = predicate["targets"]
    assert [nas["ref"], offsite["ref"], usb["ref"]] == ["acme/nas", "acme/offsite", "acme/usb"]
    assert (nas["kind"], nas["location"], nas["media"]) == ("local", "onsite", "nas")
    assert nas["tested"] is True
    assert nas["drills"] == {
        "passed": 32,
        "failed": 1,
        "errors": 0,
        "interrupted": 0,
        "by_kind": {"full": 1, "integrity": 1, "sample": 31},
    }
    assert nas["files_verified"] == 30 * 50 + 1000
    assert nas["bytes_verified"] == 30 * 2**20 + 10 * 2**30
    last = nas["last_passed_drill"]
    assert last["drill"] == october.last and last["at"] == "2026-10-31T03:00:00Z" and last["kind"] == "sample"
    assert last["snapshot"].startswith(last["snapshot_id"]) and len(last["snapshot_id"]) == 8
    # RPO 24 h: the Oct 14 01:00 snapshot is stale from Oct 15 01:00 until Oct 16 01:00 (taken then, seen at 02:00)
    rpo = nas["rpo"]
    assert rpo["threshold_s"] == 86400
    assert rpo["compliance_pct"] == round(100 * (31 * 24 - 24) / (31 * 24), 2)
    assert rpo["longest_gap_s"] == 48 * 3600
    assert rpo["newest_age_at_end_s"] == 23 * 3600
    assert rpo["status"] == "violated"
    assert nas["rto"]["estimated_full_restore_s"] == 5400 and nas["rto"]["threshold_s"] == 8 * 3600
    assert nas["rto"]["last_full_restore"] == {"drill": october.full, "at": "2026-10-12T06:00:00Z", "duration_s": 5000}
    assert nas["rto"]["status"] == "met"
    assert nas["integrity"]["coverage_pct"] == 100.0 and nas["integrity"]["status"] == "met"
    assert nas["immutability"]["status"] == "not-applicable" and nas["immutability"]["object_lock"] is None
    points = nas["snapshot_age"]["points"]
    assert len(points) == 31 * 24 + 1 and nas["snapshot_age"]["rpo_s"] == 86400
    assert points[0] == ["2026-10-01T00:00:00Z", 23 * 3600]

    # usb: tested in September only; offsite: never, and no data at all
    assert usb["tested"] is False and usb["drills"]["passed"] == 0
    assert usb["last_passed_drill"]["at"] == "2026-09-20T00:00:00Z"
    assert usb["rto"]["estimated_full_restore_s"] == 5400  # measured in September, still the latest estimate
    assert offsite["tested"] is False and offsite["last_passed_drill"] is None
    assert offsite["files_verified"] == 0 and offsite["drills"]["by_kind"] == {}
    assert offsite["rpo"]["compliance_pct"] is None and offsite["rpo"]["longest_gap_s"] is None
    assert offsite["rpo"]["status"] == "unknown" and offsite["rto"]["estimated_full_restore_s"] is None
    assert offsite["integrity"]["coverage_pct"] is None and offsite["snapshot_age"]["points"] == []
    assert offsite["immutability"]["object_lock"] is None

    (incident,) = predicate["incidents"]
    assert incident["target"] == "acme/nas" and incident["class"] == "corrupt-data"
    assert incident["drill"] == october.failed and incident["detected_at"] == "2026-10-07T03:00:00Z"
    assert incident["resolved_by_drill"] == october.fixed and incident["resolved_at"] == "2026-10-08T03:00:00Z"
    assert incident["notes"] == [
        {
            "text": "Disque du NAS remplacé, sauvegarde complète relancée.",
            "by": "j.martin",
            "at": "2026-10-07T09:00:00Z",
        }
    ]
    assert predicate["notes"][0]["drill"] == october.failed

    rules = {(r["rule"], r["target"]): r for r in predicate["rules"]}
    assert rules[("rpo", "acme/nas")]["verdict"] == "violated"
    assert "ISO/IEC 27001:2022 A.8.13" in rules[("rpo", "acme/nas")]["references"]
    assert any("2024/2690" in ref for ref in rules[("rpo", "acme/nas")]["references"])
    assert rules[("rto", "acme/nas")]["verdict"] == "met" and rules[("rto", "acme/nas")]["threshold"] == "8 h 00 min"
    assert predicate["headline"]["plan"] == "partly"

    codes = {(r["code"], r["target"]) for r in predicate["recommendations"]}
    assert {
        ("rpo-violated", "acme/nas"),
        ("never-tested", "acme/offsite"),
        ("unknown-data", "acme/offsite"),
        ("not-tested-this-month", "acme/usb"),
    } <= codes
    assert not any(code == "unresolved-failure" for code, _ in codes)

    head = ledger.head_at(synced, "acme", NOV)
    export = ledger.export_month(synced, "acme", "2026-10")
    assert predicate["ledger"]["head"] == head.entry_hash and predicate["ledger"]["seq"] == head.seq
    assert predicate["ledger"]["entries_in_month"] == len(export) - 1
    assert predicate["ledger"]["first_seq_in_month"] == json.loads(export[1])["seq"]
    ok, _, export_head = ledger.verify_export(export)
    assert ok and export_head == head


def test_period_boundaries_the_last_second_is_in_midnight_is_out(synced: Store, config: Config, clock: Clock) -> None:
    last_second = NOV - timedelta(seconds=1)
    inside = run_drill(synced, clock, "acme/nas", last_second, taken=OCT + H)
    outside = run_drill(synced, clock, "acme/nas", NOV, DrillStatus.FAILED, failure=FailureClass.CORRUPT_DATA)

    october = build_predicate(config, synced, "acme", "2026-10", now=AFTER)
    nas = october["targets"][0]
    assert nas["drills"]["passed"] == 1 and nas["drills"]["failed"] == 0
    assert nas["last_passed_drill"]["drill"] == inside and nas["last_passed_drill"]["at"] == "2026-10-31T23:59:59Z"
    assert october["incidents"] == [] and october["ledger"]["entries_in_month"] == 1

    november = build_predicate(config, synced, "acme", "2026-11", now=AFTER, partial=True)
    assert november["partial"] is True and november["period"]["end"] == "2026-11-27T09:00:00Z"
    assert november["targets"][0]["drills"]["failed"] == 1 and november["targets"][0]["tested"] is False
    (incident,) = november["incidents"]
    assert incident["drill"] == outside and incident["resolved_at"] is None
    assert ("unresolved-failure", "acme/nas") in {(r["code"], r["target"]) for r in november["recommendations"]}
    assert november["ledger"]["first_seq_in_month"] == 2 and november["ledger"]["seq_before"] == 1


def test_a_month_without_any_drill(synced: Store, config: Config, clock: Clock) -> None:
    """beta (health-data: one immutable copy required) is only probed in October; its bucket has Object Lock."""
    lock = {
        "s3": {
            "bucket_exists": True,
            "object_lock": True,
            "versioning": "Enabled",
            "default_retention": {"mode": "COMPLIANCE", "days": 30},
        }
    }
    for day in range(31):
        run_probe(synced, clock, "beta/offsite", OCT + day * DAY + 2 * H, [OCT + day * DAY + H], lock)

    beta = build_predicate(config, synced, "beta", "2026-10", now=AFTER)
    assert beta["headline"]["restorable"] == "no"
    assert all(t["tested"] is False and t["last_passed_drill"] is None for t in beta["targets"])
    assert beta["incidents"] == []
    offsite = next(t for t in beta["targets"] if t["name"] == "offsite")
    assert offsite["immutability"] == {
        "required": True,
        "object_lock": True,
        "mode": "COMPLIANCE",
        "retention_days": 30,
        "status": "met",
        "versioning": "Enabled",
        "append_only_declared": False,
    }
    assert offsite["rpo"]["threshold_s"] == 4 * 3600 and offsite["rpo"]["status"] == "violated"
    # seen from Oct 1 02:00; each day's 01:00 snapshot is within 4 h until 05:00 (3 h on the first day)
    assert offsite["rpo"]["compliance_pct"] == round(100 * (3 + 4 * 30) / (31 * 24 - 2), 2)
    codes = {(r["code"], r["target"]) for r in beta["recommendations"]}
    assert ("never-tested", "beta/offsite") in codes and ("rpo-violated", "beta/offsite") in codes
    assert ("unknown-data", "beta/nas") in codes

    # acme: nothing at all in October
    acme = build_predicate(config, synced, "acme", "2026-10", now=AFTER)
    assert acme["headline"]["restorable"] == "unknown"
    assert acme["ledger"] == {
        "head": ledger.GENESIS,
        "seq": 0,
        "entries_in_month": 0,
        "first_seq_in_month": None,
        "seq_before": 0,
        "head_before": ledger.GENESIS,
    }


def test_refused_inputs_name_the_problem(synced: Store, config: Config) -> None:
    cases = [
        ("nobody", "2026-10", AFTER, False, "unknown-client", "nobody"),
        ("acme", "2026-13", AFTER, False, "bad-month", "2026-13"),
        ("acme", "2026-1", AFTER, False, "bad-month", "YYYY-MM"),
        ("acme", "octobre", AFTER, False, "bad-month", "octobre"),
        ("acme", "2026-11", AFTER, False, "month-not-ended", "2026-12-01T00:00:00Z"),
        ("acme", "2026-12", AFTER, True, "month-not-ended", "not begun"),
    ]
    for client, month, now, partial, reason, said in cases:
        with pytest.raises(AttestationError) as caught:
            build_predicate(config, synced, client, month, now=now, partial=partial)
        assert caught.value.reason == reason, (client, month)
        assert said in str(caught.value)
        assert caught.value.full_message.startswith(str(caught.value))


def _edit(store: Store, statement: str, **params: Any) -> None:
    with store.connection(write=True) as connection:
        connection.execute(text(statement), params)


def test_a_tampered_ledger_is_refused_naming_the_entry(synced: Store, config: Config, clock: Clock) -> None:
    first = run_drill(synced, clock, "acme/nas", OCT + 3 * H, taken=OCT + H)
    failed = run_drill(
        synced, clock, "acme/nas", OCT + DAY, DrillStatus.FAILED, taken=OCT + H, failure=FailureClass.CORRUPT_DATA
    )
    run_probe(synced, clock, "acme/nas", OCT + 2 * DAY, [OCT + H])
    run_probe(synced, clock, "acme/nas", OCT + 3 * DAY, [OCT + H])
    with synced.connection() as connection:
        rows = connection.execute(
            select(metadata.tables["ledgerentry"]).where(text("client_id = 'acme'")).order_by(text("seq"))
        ).all()
    # the fast check takes the chain as intact without the ledger's walk
    assert chain._links_hold("acme", rows)
    with synced.connection() as connection:
        assert chain._sources_hold(connection, "acme", rows)
    assert build_predicate(config, synced, "acme", "2026-10", now=AFTER)["targets"][0]["drills"]["failed"] == 1

    # a failed drill's source row turned into a pass
    _edit(synced, "UPDATE drillrun SET status = 'passed', failure_class = NULL WHERE id = :id", id=failed)
    with pytest.raises(AttestationError) as caught:
        build_predicate(config, synced, "acme", "2026-10", now=AFTER)
    assert caught.value.reason == "ledger-tampered"
    assert caught.value.problem is not None and caught.value.problem.seq == 2
    assert caught.value.problem.what == "source-changed" and "entry 2" in str(caught.value)
    assert caught.value.problem == ledger.verify(synced, "acme")[0]
    _edit(synced, "UPDATE drillrun SET status = 'failed', failure_class = 'corrupt-data' WHERE id = :id", id=failed)
    assert chain.verify_client(synced, "acme") is None

    # the entry itself edited
    _edit(
        synced,
        "UPDATE ledgerentry SET payload = replace(payload, :old, :new) WHERE client_id = 'acme' AND seq = 1",
        old='"files_checked":50',
        new='"files_checked":5000',
    )
    with pytest.raises(AttestationError) as caught:
        build_predicate(config, synced, "acme", "2026-10", now=AFTER)
    assert caught.value.problem is not None and caught.value.problem.seq == 1
    assert caught.value.problem == ledger.verify(synced, "acme")[0]
    assert first > 0

    # and the newest entries removed
    _edit(synced, "UPDATE ledgerentry SET payload = :p WHERE client_id = 'acme' AND seq = 1", p=rows[0].payload)
    assert chain.verify_client(synced, "acme") is None
    _edit(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 4")
    with pytest.raises(AttestationError) as caught:
        build_predicate(config, synced, "acme", "2026-10", now=AFTER)
    assert caught.value.problem is not None and caught.value.problem.what == "removed"


def test_bulk_recording_builds_the_same_chain(synced: Store, clock: Clock) -> None:
    build_october(synced, clock)
    table = metadata.tables["ledgerentry"]
    with synced.connection() as connection:
        before = connection.execute(select(table).where(table.c.client_id == "acme").order_by(table.c.seq)).all()
    _edit(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme'")
    items = [(r.ref_table, r.ref_id, r.recorded_at) for r in before if r.kind != "note"]
    notes = [r for r in before if r.kind == "note"]
    with synced.connection(write=True) as connection:
        # the note is re-appended in its place, as add_note wrote it
        cut = next(i for i, r in enumerate(before) if r.kind == "note")
        assert ledger.record_bulk(connection, items[:cut]) == cut
        ledger.append(
            connection,
            "acme",
            "note",
            json.loads(notes[0].payload),
            ("drillrun", notes[0].ref_id),
            at=notes[0].recorded_at,
        )
        ledger.record_bulk(connection, items[cut:])
    with synced.connection() as connection:
        after = connection.execute(select(table).where(table.c.client_id == "acme").order_by(table.c.seq)).all()
    assert [(r.seq, r.entry_hash, r.payload) for r in after] == [(r.seq, r.entry_hash, r.payload) for r in before]
    assert chain.verify_client(synced, "acme") is None


LOCAL = pytest.mark.parametrize("target_repo", ["local"], indirect=True)


@LOCAL
def test_a_real_drill_of_a_real_repository_is_attested(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    rc, drill = setup.drill()
    assert rc == 0, drill
    config = load_config(setup.config)
    now = datetime.now(UTC)
    with Store.open(config.database_url) as store:
        predicate = build_predicate(config, store, "acme", f"{now:%Y-%m}", now=now, partial=True)
        head = ledger.verify_chains(store, "acme")[0].head
    (target,) = predicate["targets"]
    assert target["ref"] == "acme/main" and target["tested"] is True
    assert target["drills"]["passed"] == 1
    assert target["files_verified"] == drill["files_checked"] > 0
    assert target["bytes_verified"] == drill["bytes_restored"] > 0
    assert target["last_passed_drill"]["drill"] == drill["drill_id"]
    assert target["last_passed_drill"]["snapshot"] == drill["snapshot_id"]
    assert target["rto"]["estimated_full_restore_s"] == round(drill["estimated_full_restore_s"])
    assert predicate["headline"]["restorable"] == "yes"
    assert predicate["ledger"]["head"] == head.entry_hash and predicate["ledger"]["seq"] == head.seq
    json.dumps(predicate, allow_nan=False)
