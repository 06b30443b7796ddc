"""The ledger on SQLite and on a real PostgreSQL: chains built by the real recording functions, then tampered
with in SQL behind Preuve's back, and every tampering caught with the right entry named."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from preuve.alerts import on_policy_report
from preuve.config.loader import Config, load_config
from preuve.drills.result import DrillKind, DrillResult, DrillStatus, Finding
from preuve.errors import FailureClass
from preuve.policies.evaluate import PolicyReport
from preuve.policies.facts import RuleResult, Verdict
from preuve.policies.period import Period
from preuve.reports import chain
from preuve.store import ledger
from preuve.store.db import Store
from preuve.store.models import metadata
from preuve.store.records import create_drill, finish_drill, mark_interrupted, record_probe, sync_config
from preuve.targets.facts import ProbeResult
from tests.integration.drill_helpers import PREUVE

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
JOB = """\
client: {name}
language: fr
policy: standard
targets:
  nas:
    kind: local
    path: /tmp/{id}-nas
    password_file: secrets/p
    location: onsite
    media: nas
"""


def make_config(folder: Path, clients: tuple[str, ...] = ("acme", "beta")) -> Config:
    jobs = folder / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    for client in clients:
        (jobs / f"{client}.yaml").write_text(JOB.format(name=client.upper() + " Été", id=client))
    return load_config(folder)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "conf")


@pytest.fixture
def synced(store: Store, config: Config) -> Store:
    sync_config(store, config)
    return store


def drill_result(status: DrillStatus = DrillStatus.PASSED, **changes: Any) -> DrillResult:
    result = DrillResult(
        status=status,
        kind=DrillKind.SAMPLE,
        message="23 fichiers vérifiés",
        snapshot_id="a" * 64,
        snapshot_time=T0,
        files_in_snapshot=3_000_000_000,
        bytes_in_snapshot=5 * 2**40,
        files_checked=23,
        bytes_restored=3 * 2**31,
        restore_s=12.5,
        duration_s=20.251,
        estimated_full_restore_s=86_400.0,
        restic_version="0.17.3",
        host="preuve-1",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=20),
    )
    return replace(result, **changes)


def run_drill(store: Store, ref: str, result: DrillResult) -> int:
    drill_id = create_drill(store, ref, result.kind, "test")
    finish_drill(store, drill_id, result)
    return drill_id


def probe(ok: bool = True) -> ProbeResult:
    return ProbeResult(
        ok=ok,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        failure_class=None if ok else FailureClass.UNREACHABLE,
        reachable=ok,
        facts={"sftp": {"free_bytes": 7 * 2**40, "ratio": 0.25, "whole": 2.0}},
        restic_version="0.17.3",
        host="preuve-1",
    )


def build_chain(store: Store) -> dict[str, int]:
    """acme: 1 drill passed, 2 probe, 3 integrity failed with findings, 4 drill failed, 5 probe failed."""
    ids = {
        "drill": run_drill(store, "acme/nas", drill_result()),
        "probe": record_probe(store, "acme/nas", probe()),
        "integrity": run_drill(
            store,
            "acme/nas",
            drill_result(
                DrillStatus.FAILED,
                kind=DrillKind.INTEGRITY,
                failure_class=FailureClass.CORRUPT_DATA,
                subset="1/4",
                findings=[Finding("pack 1234", FailureClass.CORRUPT_DATA, "hash mismatch")],
            ),
        ),
        "failed": run_drill(
            store, "acme/nas", drill_result(DrillStatus.FAILED, failure_class=FailureClass.CONTENT_MISMATCH)
        ),
        "probe2": record_probe(store, "acme/nas", probe(ok=False)),
    }
    run_drill(store, "beta/nas", drill_result())
    return ids


def sql(store: Store, statement: str, **params: Any) -> None:
    with store.connection(write=True) as connection:
        connection.execute(text(statement), params)


def forge(store: Store, **values: Any) -> None:
    """An INSERT straight into the table, as someone with database access but not Preuve would write it."""
    with store.connection(write=True) as connection:
        connection.execute(metadata.tables["ledgerentry"].insert().values(**values))


def only_problem(store: Store, client: str = "acme") -> ledger.LedgerProblem:
    problems = ledger.verify(store, client)
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------------------------------------- building


def test_results_are_chained_with_canonical_payloads(synced: Store) -> None:
    ids = build_chain(synced)
    assert ledger.verify(synced) == []
    with synced.connection() as connection:
        table = metadata.tables["ledgerentry"]
        rows = connection.execute(table.select().where(table.c.client_id == "acme").order_by(table.c.seq)).all()
    assert [(r.seq, r.kind, r.ref_table) for r in rows] == [
        (1, "drill", "drillrun"),
        (2, "probe", "probe"),
        (3, "integrity", "drillrun"),
        (4, "drill", "drillrun"),
        (5, "probe", "probe"),
    ]
    assert rows[0].prev_hash == ledger.GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(rows))
    first = json.loads(rows[0].payload)
    assert rows[0].payload == ledger.canonical(first).decode()  # stored canonical: sorted, no white space
    assert first["ref"] == {"table": "drillrun", "id": ids["drill"]}
    assert (first["status"], first["message"], first["duration_ms"], first["estimated_full_restore_ms"]) == (
        "passed",
        "23 fichiers vérifiés",
        20251,
        86_400_000,
    )
    assert first["bytes_in_snapshot"] == 5 * 2**40 and first["finished_at"] == ledger.micros(T0) + 20_000_000
    integrity = json.loads(rows[2].payload)
    assert integrity["findings"]["count"] == 1 and integrity["subset"] == "1/4"
    probe_payload = json.loads(rows[1].payload)
    assert probe_payload["facts"] == {"sftp": {"free_bytes": 7 * 2**40, "ratio": "0.25", "whole": 2}}
    # the hash is what the module documents: SHA-256 of the canonical {client, seq, kind, recorded_at, payload, prev}
    assert rows[0].entry_hash == ledger.entry_hash(
        "acme", 1, "drill", ledger.micros(rows[0].recorded_at), first, ledger.GENESIS
    )
    [beta] = ledger.verify_chains(synced, "beta")
    assert (beta.entries, beta.problem) == (1, None)


def test_floats_and_naive_times_are_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        ledger.canonical({"duration": 1.5})
    with pytest.raises(ValueError, match="naive"):
        ledger.micros(datetime(2024, 1, 1))  # noqa: DTZ001 - the point of the test


def test_interrupted_drills_policy_flips_and_notes_are_recorded(synced: Store, config: Config) -> None:
    stuck = create_drill(synced, "acme/nas", DrillKind.SAMPLE, "test")
    assert mark_interrupted(synced, [stuck]) == 1
    report = PolicyReport(
        client="acme",
        name="ACME",
        policy="standard",
        period=Period(T0, T0 + timedelta(days=1)),
        verdict=Verdict.VIOLATED,
        rules=(
            RuleResult(
                "rpo", "acme/nas", Verdict.VIOLATED, 30.5, 24, "the newest snapshot is 30 h old", references=("A.8.13",)
            ),
        ),
    )
    assert on_policy_report(config, synced, report)
    assert on_policy_report(config, synced, report) == []  # the same verdict again is no flip, no entry
    note = ledger.add_note(synced, "acme", "Disque remplacé, client prévenu", "alice@preuve-1", drill_id=stuck)
    assert note.seq == 3
    with synced.connection() as connection:
        rows = connection.execute(text("SELECT kind, payload FROM ledgerentry ORDER BY seq")).all()
    assert [r.kind for r in rows] == ["drill", "policy", "note"]
    assert json.loads(rows[0].payload)["status"] == "interrupted"
    policy = json.loads(rows[1].payload)
    assert (policy["rule"], policy["target"], policy["old_verdict"], policy["new_verdict"]) == (
        "rpo",
        "acme/nas",
        None,
        "violated",
    )
    assert policy["references"] == ["A.8.13"]
    assert json.loads(rows[2].payload)["by"] == "alice@preuve-1"
    assert ledger.verify(synced) == []
    with pytest.raises(LookupError):
        ledger.add_note(synced, "beta", "not beta's drill", "alice", drill_id=stuck)


# ------------------------------------------------------------------------------------------------ tampering


def test_edited_payload_is_named(synced: Store) -> None:
    build_chain(synced)
    sql(synced, "UPDATE ledgerentry SET payload = replace(payload, '\"failed\"', '\"passed\"') WHERE seq = 3")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (3, "edited")
    assert "entry 3 was edited" in problem.message
    assert ledger.verify(synced, "beta") == []  # other clients' chains are not affected


def test_edited_drill_row_is_caught_by_the_cross_check(synced: Store) -> None:
    ids = build_chain(synced)
    sql(synced, "UPDATE drillrun SET status = 'passed', failure_class = NULL WHERE id = :id", id=ids["failed"])
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (4, "source-changed")
    assert f"drillrun #{ids['failed']}" in problem.message and '"failed" -> "passed"' in problem.message


def test_deleted_finding_and_edited_probe_are_caught(synced: Store) -> None:
    ids = build_chain(synced)
    sql(synced, "UPDATE probe SET snapshot_count = 99 WHERE id = :id", id=ids["probe"])
    assert (only_problem(synced).seq, only_problem(synced).what) == (2, "source-changed")
    sql(synced, "UPDATE probe SET snapshot_count = 0 WHERE id = :id", id=ids["probe"])
    assert ledger.verify(synced) == []
    sql(synced, "DELETE FROM drillfinding WHERE drill_id = :id", id=ids["integrity"])
    assert only_problem(synced).seq == 3


def test_deleted_entry_is_named(synced: Store) -> None:
    build_chain(synced)
    sql(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 2")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (2, "removed")


def test_deleted_newest_entry_is_caught_by_its_unrecorded_result(synced: Store) -> None:
    ids = build_chain(synced)
    sql(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 5")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (5, "removed")
    assert f"probe #{ids['probe2']}" in problem.message


def _now_probe() -> ProbeResult:
    """A probe that ends now, as the daemon's probes do (its time says it was recorded after the chain began)."""
    now = datetime.now(UTC)
    return replace(probe(), started_at=now - timedelta(seconds=3), finished_at=now)


def _policy_report(verdict: Verdict) -> PolicyReport:
    now = datetime.now(UTC)
    result = RuleResult("rpo", "acme/nas", verdict, 30.5, 24, "the newest snapshot is 30 h old", references=("x",))
    return PolicyReport(client="acme", name="ACME", policy="standard", period=Period(now - timedelta(days=1), now),
                        verdict=verdict, rules=(result,))  # fmt: skip


def test_deleting_a_chains_only_probe_or_flip_entry_is_caught(synced: Store, config: Config) -> None:
    """No other entry of that kind is left to compare with: the row's own time says it is newer than the chain."""
    run_drill(synced, "acme/nas", drill_result(finished_at=datetime.now(UTC)))
    probe_id = record_probe(synced, "acme/nas", _now_probe())
    assert ledger.verify(synced) == []
    sql(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 2")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (2, "removed") and f"probe #{probe_id}" in problem.message
    assert chain.verify_client(synced, "acme") == problem  # the attestation's fast check agrees

    sql(synced, "DELETE FROM probe WHERE id = :id", id=probe_id)  # (its row gone too: a chain of one drill again)
    assert ledger.verify(synced) == []
    assert on_policy_report(config, synced, _policy_report(Verdict.VIOLATED))
    assert ledger.verify(synced) == []
    sql(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 2")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (2, "removed") and "flip #" in problem.message
    assert chain.verify_client(synced, "acme") == problem


def test_deleting_a_drill_that_finished_after_a_newer_one_is_caught(synced: Store) -> None:
    """Drills get their ids when requested: the newest entry can be the drill with the smaller id."""
    now = datetime.now(UTC)
    slow = create_drill(synced, "acme/nas", DrillKind.FULL, "test")
    run_drill(synced, "acme/nas", drill_result(finished_at=now))
    finish_drill(synced, slow, drill_result(kind=DrillKind.FULL, finished_at=now + timedelta(seconds=1)))
    assert ledger.verify(synced) == []
    sql(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 2")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (2, "removed") and f"drillrun #{slow}" in problem.message


def test_results_recorded_before_the_ledger_began_need_no_entry(synced: Store) -> None:
    """An installation upgraded to the ledger: its older probes and drills predate the chain's first entry."""
    old = datetime.now(UTC) - timedelta(hours=2)
    record_probe(synced, "acme/nas", replace(probe(), started_at=old, finished_at=old + timedelta(seconds=3)))
    run_drill(synced, "acme/nas", drill_result(finished_at=old + timedelta(minutes=5)))
    sql(synced, "DELETE FROM ledgerentry")  # as before the upgrade: results, no chain
    assert ledger.verify(synced) == []
    record_probe(synced, "acme/nas", _now_probe())  # the first entry of the new chain
    assert ledger.verify(synced) == [] and chain.verify_client(synced, "acme") is None


def test_swapped_entries_are_named(synced: Store) -> None:
    build_chain(synced)
    sql(synced, "UPDATE ledgerentry SET seq = -1 WHERE client_id = 'acme' AND seq = 2")
    sql(synced, "UPDATE ledgerentry SET seq = 2 WHERE client_id = 'acme' AND seq = 3")
    sql(synced, "UPDATE ledgerentry SET seq = 3 WHERE client_id = 'acme' AND seq = -1")
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (2, "reordered")
    assert "recorded as seq 3" in problem.message


def test_forged_entries_are_named(synced: Store) -> None:
    ids = build_chain(synced)
    with synced.connection() as connection:
        head = connection.execute(text("SELECT entry_hash FROM ledgerentry WHERE client_id = 'acme' AND seq = 5")).one()
    # A forger who knows the algorithm appends a well-hashed entry claiming the failed drill passed.
    with synced.connection() as connection:
        real = json.loads(
            connection.execute(
                text("SELECT payload FROM ledgerentry WHERE client_id = 'acme' AND seq = 4")
            ).scalar_one()
        )
    forged = {**real, "status": "passed", "failure_class": None}
    at = ledger.micros(datetime.now(UTC) + timedelta(days=1))
    digest = ledger.entry_hash("acme", 6, "drill", at, forged, head.entry_hash)
    forge(
        synced,
        client_id="acme",
        seq=6,
        kind="drill",
        ref_table="drillrun",
        ref_id=ids["failed"],
        recorded_at=ledger.from_micros(at),
        payload=ledger.canonical(forged).decode(),
        prev_hash=head.entry_hash,
        entry_hash=digest,
    )
    problem = only_problem(synced)
    assert (problem.seq, problem.what) == (6, "forged")  # drillrun already recorded by entry 4
    # A forged entry slipped into the middle (its hash made up) is named too.
    sql(synced, "DELETE FROM ledgerentry WHERE client_id = 'acme' AND seq = 6")
    forge(
        synced,
        client_id="acme",
        seq=6,
        kind="note",
        recorded_at=ledger.from_micros(at),
        payload='{"ref":null,"text":"x"}',
        prev_hash="1" * 64,
        entry_hash="2" * 64,
    )
    assert (only_problem(synced).seq, only_problem(synced).what) == (6, "edited")


# ---------------------------------------------------------------------------------------------- concurrency


def test_concurrent_appends_from_two_stores_never_fork(synced: Store, store_url: str) -> None:
    count = 15
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(label: str) -> None:
        other = Store.open(store_url)
        try:
            barrier.wait(timeout=30)
            for index in range(count):
                if index % 3 == 0:
                    record_probe(other, "acme/nas", probe())
                elif index % 3 == 1:
                    run_drill(other, "acme/nas", drill_result())
                else:
                    ledger.append(other, "acme", "note", {"text": f"{label}-{index}", "by": label})
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=work, args=(label,)) for label in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    [status] = ledger.verify_chains(synced, "acme")
    assert (status.entries, status.problem) == (2 * count, None)
    with synced.connection() as connection:
        seqs = [
            s for (s,) in connection.execute(text("SELECT seq FROM ledgerentry WHERE client_id = 'acme' ORDER BY seq"))
        ]
    assert seqs == list(range(1, 2 * count + 1))


# ------------------------------------------------------------------------------------------------ export


def test_export_round_trip_and_one_changed_byte(synced: Store) -> None:
    build_chain(synced)
    month = datetime.now(UTC).strftime("%Y-%m")
    lines = ledger.export_month(synced, "acme", month)
    header = json.loads(lines[0])
    assert header == {"type": "head-before", "client": "acme", "month": month, "seq": 0, "entry_hash": ledger.GENESIS}
    ok, problems, head = ledger.verify_export(lines)
    assert (ok, problems) == (True, [])
    [status] = ledger.verify_chains(synced, "acme")
    assert head == status.head == ledger.LedgerHead("acme", 5, status.head.entry_hash)
    # a month later: only the header, naming the head the month ended at
    later = ledger.export_month(synced, "acme", "2999-01")
    assert len(later) == 1 and ledger.verify_export(later)[2] == status.head
    # every single byte changed anywhere in the export is caught
    data = "\n".join(lines).encode()
    for position in range(0, len(data), 7):
        if data[position : position + 1] == b"\n":
            continue
        changed = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]
        ok, problems, _ = ledger.verify_export(changed.split(b"\n"))
        assert not ok, f"byte {position} changed unnoticed"
        assert len(problems) == 1
    # a line removed or two swapped
    assert ledger.verify_export([lines[0], *lines[2:]])[1][0].seq == 1
    swapped = ledger.verify_export([lines[0], lines[1], lines[3], lines[2], *lines[4:]])
    assert (swapped[0], swapped[1][0].seq) == (False, 2)


# --------------------------------------------------------------------------------------------------- the CLI


def _preuve(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREUVE, "--config", str(folder), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_verify_export_and_note(tmp_path: Path, store_url: str) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "preuve.toml").write_text(f'database = "{store_url}"\n')
    config = make_config(folder)
    with Store.open(store_url) as store:
        sync_config(store, config)
        ids = build_chain(store)

    done = _preuve(
        folder, "ledger", "note", "acme", "Échec vu, disque changé", "--drill", str(ids["failed"]), "--by", "bob"
    )
    assert done.returncode == 0, done.stderr
    assert "entry 6" in done.stdout
    assert _preuve(folder, "ledger", "note", "acme", "x", "--drill", "999").returncode == 2

    done = _preuve(folder, "ledger", "verify")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("acme: intact: 6 entries, head ") and lines[1].startswith("beta: intact: 1 entries")

    month = datetime.now(UTC).strftime("%Y-%m")
    out = tmp_path / "acme.jsonl"
    done = _preuve(folder, "ledger", "export", "acme", "--month", month, "--out", str(out))
    assert done.returncode == 0, done.stderr
    ok, _, head = ledger.verify_export(out.read_text(encoding="utf-8").splitlines())
    assert ok and head is not None and head.seq == 6 and head.entry_hash in lines[0]
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[-1])["payload"]["text"] == "Échec vu, disque changé"
    assert _preuve(folder, "ledger", "export", "acme", "--month", "June").returncode == 2

    with Store.open(store_url) as store:
        sql(store, "UPDATE drillrun SET status = 'passed' WHERE id = :id", id=ids["failed"])
    done = _preuve(folder, "ledger", "verify", "acme")
    assert done.returncode == 1
    assert "acme: NOT INTACT" in done.stdout and "entry 4" in done.stdout
