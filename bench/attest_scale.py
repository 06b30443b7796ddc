"""Time to build the monthly attestation's content: one client's month, and every client's.

Builds, in a scratch folder (``--dir``, reused when it already holds a database built with the same ``--clients``),
a configuration folder with ``--clients`` job files (default 200), three targets each (``nas`` over SFTP on site,
``usb`` a local disk on site, ``cloud`` an S3 bucket with Object Lock off site), and a SQLite results store holding
a year of history for each target (2025-11-01 to 2026-11-01): a snapshot a day (a few days skipped), a restore drill
a day (a full restore on the 1st of each month, a failure now and then, resolved the next day, a weekly integrity
run reading a quarter of the packs), and a probe every hour. Rows are inserted in bulk, then recorded in each
client's ledger with :func:`preuve.store.ledger.record_bulk` at their finish times (the same chain as recording
them one by one).

Then it times :func:`preuve.reports.month.build_predicate` for one client's ``--month`` (default 2026-10), and for
every client (``--workers`` processes, default 2), and prints the figures next to the targets of issue 5: one under
3 s, all 200 under 5 minutes on 2 cores.

Not a test (pytest does not collect bench/): ``.venv/bin/python bench/attest_scale.py [--clients 200] [--dir DIR]
[--month 2026-10] [--workers 2]``. A quick run: ``--clients 5``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import func, insert, select  # noqa: E402

from preuve.config.loader import Config, load_config  # noqa: E402
from preuve.store import ledger  # noqa: E402
from preuve.store.db import Store  # noqa: E402
from preuve.store.models import metadata  # noqa: E402
from preuve.store.records import sync_config  # noqa: E402

TARGET_ONE_S = 3.0
TARGET_ALL_S = 300.0
FIRST_DAY = datetime(2025, 11, 1, tzinfo=UTC)
DAYS = 365
MONTH = "2026-10"
READY = ".bench-ready"

_DRILL = metadata.tables["drillrun"]
_FINDING = metadata.tables["drillfinding"]
_PROBE = metadata.tables["probe"]
_SNAPSHOT = metadata.tables["snapshotseen"]
_TARGET = metadata.tables["target"]

JOB = """\
client: Cabinet {n:03d}
language: {language}
policy: {policy}
targets:
  nas:
    kind: sftp
    host: nas.c{n:03d}.example
    user: backup
    identity_file: secrets/id
    known_hosts: secrets/known_hosts
    path: /volume1/restic
    password_file: secrets/p
    location: onsite
    media: nas
  usb:
    kind: local
    path: /mnt/usb/c{n:03d}
    password_file: secrets/p
    location: onsite
    media: disk
  cloud:
    kind: s3
    endpoint: https://s3.example.net
    bucket: c{n:03d}-backups
    env_file: secrets/s3.env
    password_file: secrets/p
    location: offsite
    media: object-storage
"""


def client_id(n: int) -> str:
    return f"c{n:03d}"


def write_config(folder: Path, clients: int) -> Config:
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    (folder / "secrets").mkdir(exist_ok=True)
    for name in ("p", "id", "known_hosts", "s3.env"):
        secret = folder / "secrets" / name
        secret.write_text("bench\n", encoding="utf-8")
        secret.chmod(0o600)
    (folder / "preuve.toml").write_text('database = "sqlite:///preuve.db"\n', encoding="utf-8")
    for n in range(clients):
        language, policy = ("fr", "health-data") if n % 4 == 0 else ("en", "standard")
        (folder / "jobs" / f"{client_id(n)}.yaml").write_text(
            JOB.format(n=n, language=language, policy=policy), encoding="utf-8"
        )
    return load_config(folder)


# ---------------------------------------------------------------------------------------------- one client's year


class Ids:
    """Row ids handed out here, so that rows can be inserted in bulk without reading their ids back."""

    def __init__(self, store: Store) -> None:
        with store.connection() as connection:
            self.drill = int(connection.execute(select(func.max(_DRILL.c.id))).scalar() or 0)
            self.probe = int(connection.execute(select(func.max(_PROBE.c.id))).scalar() or 0)

    def next_drill(self) -> int:
        self.drill += 1
        return self.drill

    def next_probe(self) -> int:
        self.probe += 1
        return self.probe


def _snapshot_id(ref: str, day: int) -> str:
    return hashlib.sha256(f"{ref}/{day}".encode()).hexdigest()


def _facts(kind: str, rng: random.Random) -> str:
    if kind == "s3":
        s3 = {
            "bucket_exists": True,
            "object_lock": True,
            "versioning": "Enabled",
            "default_retention": {"mode": "COMPLIANCE", "days": 30},
        }
        return json.dumps({"s3": s3}, sort_keys=True)
    if kind == "sftp":
        return json.dumps({"sftp": {"free_bytes": rng.randrange(2**40, 4 * 2**40)}}, sort_keys=True)
    return "{}"


def client_year(
    ids: Ids, targets: dict[str, tuple[int, str]], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Rows for one client's year: snapshots, drills, findings, probes, and ledger items (table, id, at)."""
    rng = random.Random(seed)
    snapshots: list[dict[str, Any]] = []
    drills: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    items: list[tuple[str, int, datetime]] = []
    for offset, (ref, (target_id, kind)) in enumerate(sorted(targets.items())):
        taken: list[tuple[datetime, str]] = []
        size = rng.randrange(50, 500) * 2**30
        for day in range(DAYS):
            midnight = FIRST_DAY + timedelta(days=day)
            if rng.random() < 0.03:
                continue  # no backup that night
            when = midnight + timedelta(hours=1, minutes=offset * 7, seconds=rng.randrange(600))
            snapshot_id = _snapshot_id(ref, day)
            taken.append((when, snapshot_id))
            size += rng.randrange(-(2**28), 2**29)
            snapshots.append(
                {
                    "target_id": target_id,
                    "snapshot_id": snapshot_id,
                    "short_id": snapshot_id[:8],
                    "time": when,
                    "hostname": "srv",
                    "paths": '["/data"]',
                    "tags": "[]",
                    "first_seen_at": when + timedelta(hours=1),
                    "last_seen_at": FIRST_DAY + timedelta(days=DAYS),
                    "size_bytes": size,
                    "file_count": size // 2**20,
                    "changed_files": rng.randrange(10, 2000),
                    "stats_at": when + timedelta(hours=2),
                }
            )
        newest = 0
        for hour in range(DAYS * 24):
            at = FIRST_DAY + timedelta(hours=hour, minutes=5 + offset)
            while newest < len(taken) and taken[newest][0] <= at:
                newest += 1
            ok = rng.random() > 0.005
            known = taken[newest - 1] if ok and newest else None
            probe_id = ids.next_probe()
            probes.append(
                {
                    "id": probe_id,
                    "target_id": target_id,
                    "started_at": at - timedelta(seconds=4),
                    "finished_at": at,
                    "ok": ok,
                    "failure_class": None if ok else "unreachable",
                    "message": "" if ok else "the NAS did not answer",
                    "reachable": ok,
                    "credentials_ok": True if ok else None,
                    "repository_opens": True if ok else None,
                    "repository_id": hashlib.sha256(ref.encode()).hexdigest(),
                    "snapshot_count": newest if ok else 0,
                    "newest_snapshot_id": known[1] if known else None,
                    "newest_snapshot_time": known[0] if known else None,
                    "restic_version": "0.17.3",
                    "host": "preuve-1",
                    "preuve_version": "0.1.0",
                    "facts": _facts(kind, rng) if ok else "{}",
                }
            )
            items.append(("probe", probe_id, at))
        failing = False
        for day in range(DAYS):
            midnight = FIRST_DAY + timedelta(days=day)
            start = midnight + timedelta(hours=3, minutes=offset * 11)
            usable = [t for t in taken if t[0] <= start]
            snapshot = usable[-1] if usable else None
            full = midnight.day == 1
            kind_ = "full" if full else "sample"
            roll = rng.random()
            status = "passed"
            failure = None
            message = "restic found damaged data"
            if failing:
                failing = False  # fixed the next day
            elif roll < 0.02:
                status, failure, failing = "failed", "corrupt-data", True
            elif roll < 0.03:
                status, failure = "error", "unreachable"
                message = "the NAS did not answer"
            duration = 5400.0 if full else rng.uniform(60, 300)
            drills.append(_drill(ids, target_id, kind_, status, failure, start, duration, snapshot, size))
            drills[-1]["message"] = "" if status == "passed" else message
            if status == "failed":
                findings.append(
                    {"drill_id": drills[-1]["id"], "path": "/data/compta.xlsx", "failure_class": failure, "detail": "x"}
                )
            items.append(("drillrun", drills[-1]["id"], drills[-1]["finished_at"]))
            if midnight.weekday() == 6:
                part = (day // 7) % 4 + 1
                begin = midnight + timedelta(hours=5, minutes=offset * 13)
                drills.append(_drill(ids, target_id, "integrity", "passed", None, begin, 1800.0, None, size))
                drills[-1]["subset"] = f"{part}/4"
                items.append(("drillrun", drills[-1]["id"], drills[-1]["finished_at"]))
    items.sort(key=lambda item: (item[2], item[0], item[1]))
    return snapshots, drills, findings, probes, items


def _drill(
    ids: Ids,
    target_id: int,
    kind: str,
    status: str,
    failure: str | None,
    start: datetime,
    duration: float,
    snapshot: tuple[datetime, str] | None,
    size: int,
) -> dict[str, Any]:
    finished = start + timedelta(seconds=round(duration, 3))
    restore = kind != "integrity"
    return {
        "id": ids.next_drill(),
        "target_id": target_id,
        "kind": kind,
        "status": status,
        "requested_by": "scheduler",
        "requested_at": start,
        "started_at": start,
        "finished_at": finished,
        "failure_class": failure,
        "message": "" if status == "passed" else "restic found damaged data",
        "snapshot_id": snapshot[1] if snapshot and restore else None,
        "snapshot_time": snapshot[0] if snapshot and restore else None,
        "files_in_snapshot": size // 2**20 if restore else None,
        "bytes_in_snapshot": size if restore else None,
        "files_checked": (size // 2**20 if kind == "full" else 450) if restore else None,
        "files_changed_since_snapshot": 3 if restore else None,
        "bytes_restored": (size if kind == "full" else 2**30) if restore else None,
        "restore_s": round(duration * 0.9, 3) if restore else None,
        "duration_s": round(duration, 3),
        "estimated_full_restore_s": 5400.0 if restore else None,
        "canaries_checked": 0,
        "sample_budget_limited": False if restore else None,
        "manifest_sha256": hashlib.sha256(str(start).encode()).hexdigest() if restore else None,
        "restic_version": "0.17.3",
        "host": "preuve-1",
        "preuve_version": "0.1.0",
        "options": "{}",
        "subset": None,
    }


def populate(folder: Path, clients: int) -> tuple[Config, Store]:
    config = write_config(folder, clients)
    store = Store.open(config.database_url)
    marker = folder / READY
    if marker.exists() and marker.read_text() == str(clients):
        return config, store
    sync_config(store, config)
    ids = Ids(store)
    with store.connection() as connection:
        rows = connection.execute(select(_TARGET.c.id, _TARGET.c.ref, _TARGET.c.client_id)).all()
    kinds = {t.ref: t.spec.kind for t in config.targets()}
    by_client: dict[str, dict[str, tuple[int, str]]] = {}
    for row in rows:
        by_client.setdefault(row.client_id, {})[row.ref] = (row.id, kinds[row.ref])
    began = time.perf_counter()
    for n in range(clients):
        cid = client_id(n)
        snapshots, drills, findings, probes, items = client_year(ids, by_client[cid], seed=n)
        with store.connection(write=True) as connection:
            connection.execute(insert(_SNAPSHOT), snapshots)
            for chunk in _chunks(drills, 2000):
                connection.execute(insert(_DRILL), chunk)
            if findings:
                connection.execute(insert(_FINDING), findings)
            for chunk in _chunks(probes, 2000):
                connection.execute(insert(_PROBE), chunk)
            ledger.record_bulk(connection, items)
        spent = time.perf_counter() - began
        print(f"  {cid}: {len(items)} ledger entries ({spent:.0f} s so far)", flush=True)
    marker.write_text(str(clients))
    return config, store


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# ------------------------------------------------------------------------------------------------------- timing

_WORKER: tuple[Config, Store] | None = None


def _init_worker(folder: str) -> None:
    global _WORKER
    config = load_config(Path(folder))
    _WORKER = (config, Store.open(config.database_url, migrate=False))


def _build(job: tuple[str, str]) -> tuple[str, float, float, str]:
    """(client, wall seconds, CPU seconds of this process, headline): the machine is shared, so both are shown."""
    from preuve.reports.month import build_predicate

    assert _WORKER is not None
    config, store = _WORKER
    cid, month = job
    began, cpu = time.perf_counter(), time.process_time()
    predicate = build_predicate(config, store, cid, month)
    return cid, time.perf_counter() - began, time.process_time() - cpu, predicate["headline"]["restorable"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clients", type=int, default=200, help="clients (default 200, the issue's size; `make bench` runs 5)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (kept; reused when already built)")
    parser.add_argument("--month", default=MONTH, help=f"the month built (default {MONTH})")
    parser.add_argument("--workers", type=int, default=2, help="processes building every client's month (default 2)")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="preuve-attest-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"scratch folder: {folder}")
    try:
        began = time.perf_counter()
        _, store = populate(folder, args.clients)
        with store.connection() as connection:
            entries = connection.execute(select(func.count()).select_from(metadata.tables["ledgerentry"])).scalar()
        store.close()
        print(f"store ready in {time.perf_counter() - began:.0f} s: {args.clients} clients, {entries} ledger entries")

        _init_worker(str(folder))
        first = client_id(0)
        _build((first, args.month))  # warm the page cache and imports: the figure below is a steady one
        _, one, one_cpu, verdict = _build((first, args.month))
        print(
            f"one client ({first}, {args.month}): {one:.2f} s wall, {one_cpu:.2f} s CPU (restorable: {verdict}); "
            f"target < {TARGET_ONE_S:.0f} s"
        )

        jobs = [(client_id(n), args.month) for n in range(args.clients)]
        began = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(
            args.workers, initializer=_init_worker, initargs=(str(folder),)
        ) as pool:
            results = pool.map(_build, jobs, chunksize=1)
        total = time.perf_counter() - began
        slowest = max(results, key=lambda r: r[1])
        cpu = sum(r[2] for r in results)
        print(
            f"all {args.clients} clients with {args.workers} workers: {total:.1f} s wall "
            f"(slowest {slowest[0]}: {slowest[1]:.2f} s); CPU {cpu:.1f} s in all, {cpu / len(results):.2f} s a client, "
            f"{cpu / args.workers:.1f} s on {args.workers} cores if nothing else ran; "
            f"target < {TARGET_ALL_S:.0f} s for 200"
        )
        with open("/proc/loadavg", encoding="ascii") as load:
            print(f"load average at the end (other processes share the machine): {load.read().split()[:3]}")
        ok = one < TARGET_ONE_S and total < TARGET_ALL_S * args.clients / 200
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
