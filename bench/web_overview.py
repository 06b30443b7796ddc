"""The console's overview page with 500 clients and a year of history: median latency from a second process.

Builds, in a scratch folder, a configuration of 500 clients with 2 local targets each (1,000 targets; the
repositories need not exist: nothing is restored) and a SQLite results store holding a year of history per target:
a sample drill every day (about one in fifty failed), an integrity run every week, a snapshot every day (those older
than 90 days forgotten, ``gone_at`` set), and the latest verdicts of three policy rules per client. Then it starts
the console in a subprocess (``--serve``: uvicorn on 127.0.0.1, the overview's short reading cache switched off so
that every request reads the store) and sends a bounded number of ``GET /`` requests from this process, one at a
time, authenticated with an API token.

Target (issue 6): median under 300 ms. Reported, not asserted.

Not a test (pytest does not collect bench/): ``.venv/bin/python bench/web_overview.py [--clients 500]
[--requests 40] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TARGET_MEDIAN_MS = 300.0
DAYS = 365
KEEP_SNAPSHOTS_DAYS = 90
CHUNK = 20_000
PAUSE_S = 0.25  # between two requests
READING_TTL = 5.0  # preuve.web.status.READING_TTL_S


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build(folder: Path, clients: int) -> Path:
    from tests.support.web import write_client

    config = folder / "config"
    config.mkdir(parents=True)
    (config / "preuve.toml").write_text('database = "sqlite:///preuve.db"\nsandbox = "sandbox"\n[web]\n')
    for n in range(clients):
        write_client(
            config,
            f"client-{n:04d}",
            f"Client {n:04d} SARL",
            {"nas": {"path": f"/srv/c{n}/nas"}, "usb": {"path": f"/srv/c{n}/usb"}},
        )
    return config


def populate(config_dir: Path) -> tuple[int, int]:
    """A year of drills, snapshots and verdicts; returns (drills, snapshots) inserted."""
    from sqlalchemy import insert, select

    from preuve.config.loader import load_config
    from preuve.store.db import Store
    from preuve.store.models import metadata
    from preuve.store.records import sync_config

    rng = random.Random(6)
    config = load_config(config_dir)
    store = Store.open(config.database_url)
    sync_config(store, config)
    drill, snapshot, flip = (metadata.tables[n] for n in ("drillrun", "snapshotseen", "flip"))
    target = metadata.tables["target"]
    now = datetime.now(UTC)
    with store.connection() as connection:
        targets = connection.execute(select(target.c.id, target.c.ref, target.c.client_id)).all()
    drills: list[dict[str, object]] = []
    snapshots: list[dict[str, object]] = []
    counts = [0, 0]

    def flush(force: bool = False) -> None:
        for rows, table, index in ((drills, drill, 0), (snapshots, snapshot, 1)):
            if rows and (force or len(rows) >= CHUNK):
                with store.connection(write=True) as connection:
                    connection.execute(insert(table), rows)
                counts[index] += len(rows)
                rows.clear()

    for target_id, _ref, _client in targets:
        for day in range(DAYS, 0, -1):
            base = now - timedelta(days=day)
            requested = base + timedelta(hours=2, minutes=rng.randrange(60))
            status = "failed" if rng.random() < 0.02 else "passed"
            drills.append(_drill(target_id, "sample", status, requested, subset=None))
            if day % 7 == 0:
                drills.append(_drill(target_id, "integrity", "passed", requested, subset=f"{(day // 7) % 4 + 1}/4"))
            taken = base + timedelta(hours=1)
            sid = f"{target_id:08x}{day:04x}".ljust(64, "0")
            snapshots.append(
                {
                    "target_id": target_id,
                    "snapshot_id": sid,
                    "short_id": sid[:8],
                    "time": taken,
                    "hostname": "srv",
                    "username": "root",
                    "paths": '["/data"]',
                    "tags": "[]",
                    "tree": "0" * 64,
                    "parent": None,
                    "first_seen_at": taken,
                    "last_seen_at": now if day <= KEEP_SNAPSHOTS_DAYS else taken + timedelta(days=KEEP_SNAPSHOTS_DAYS),
                    "gone_at": None if day <= KEEP_SNAPSHOTS_DAYS else taken + timedelta(days=KEEP_SNAPSHOTS_DAYS),
                    "size_bytes": 10**9,
                    "file_count": 10_000,
                    "changed_files": 50,
                    "stats_at": taken,
                }
            )
        flush()
    flush(force=True)
    flips = []
    for client in sorted({c for _t, _r, c in targets}):
        for rule in ("rpo", "drill-frequency", "copies"):
            state = "violated" if rng.random() < 0.05 else "met"
            flips.append(
                {
                    "client_id": client,
                    "target_ref": None,
                    "subject": f"rule:{client}:{rule}",
                    "kind": "rule",
                    "old_state": None,
                    "new_state": state,
                    "at": now - timedelta(hours=1),
                    "summary": f"{rule} {state}",
                    "details": "{}",
                    "reminder": False,
                }
            )
    with store.connection(write=True) as connection:
        connection.execute(insert(flip), flips)
        connection.exec_driver_sql("ANALYZE")
    store.close()
    return counts[0], counts[1]


def _drill(target_id: int, kind: str, status: str, requested: datetime, subset: str | None) -> dict[str, object]:
    finished = requested + timedelta(minutes=3)
    return {
        "target_id": target_id,
        "kind": kind,
        "status": status,
        "requested_by": "scheduler",
        "requested_at": requested,
        "started_at": requested + timedelta(seconds=5),
        "finished_at": finished,
        "failure_class": "content-mismatch" if status == "failed" else None,
        "message": "",
        "files_checked": 120,
        "bytes_restored": 10**8,
        "restore_s": 40.0,
        "duration_s": 175.0,
        "estimated_full_restore_s": 400.0 if kind == "sample" else None,
        "bytes_in_snapshot": 10**9,
        "subset": subset,
        "restic_version": "0.14.0",
        "host": "bench",
        "preuve_version": "bench",
        "options": "{}",
    }


def serve(config_dir: Path, port: int, ttl_s: float) -> None:
    """The console alone; with ``ttl_s`` 0 the overview's reading cache is off (every view reads the store)."""
    import uvicorn

    from preuve.config.loader import load_config
    from preuve.config.model import WebSettings
    from preuve.store.db import Store
    from preuve.web.app import create_app
    from preuve.web.context import WebContext

    config = load_config(config_dir)
    store = Store.open(config.database_url)
    context = WebContext(store=store, config=lambda: config, settings=WebSettings(), reading_ttl_s=ttl_s)
    uvicorn.run(create_app(context), host="127.0.0.1", port=port, log_level="warning")


def _port_holder(ports: list[int]) -> int:
    ports.append(_port())
    return ports[-1]


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def measure(label: str, base: str, token: str, requests: int, server: subprocess.Popen[bytes]) -> bool:
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/login").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print("the console did not start", file=sys.stderr)
                return False
            time.sleep(0.3)
        first = time.monotonic()
        answer = client.get("/")
        first_ms = (time.monotonic() - first) * 1000
        assert answer.status_code == 200, answer.status_code
        rows = answer.text.count('class="light ')
        latencies = []
        cpu_before = _cpu_s(server.pid)
        for _ in range(requests):
            begin = time.monotonic()
            answer = client.get("/")
            latencies.append((time.monotonic() - begin) * 1000)
            assert answer.status_code == 200
            time.sleep(PAUSE_S)  # a technician's pace, so the cached mode sees its readings expire and refresh
        cpu_ms = (_cpu_s(server.pid) - cpu_before) * 1000 / requests
    median = statistics.median(latencies)
    p90 = sorted(latencies)[int(len(latencies) * 0.9) - 1]
    verdict = "met" if median < TARGET_MEDIAN_MS else "NOT met"
    print(f"{label}: page {len(answer.content) / 1024:.0f} KiB, {rows} traffic lights, first view {first_ms:.0f} ms")
    print(
        f"  GET / x{requests}: median {median:.0f} ms, p90 {p90:.0f} ms, min {min(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms (target: median < {TARGET_MEDIAN_MS:.0f} ms: {verdict})"
    )
    # Wall-clock latency depends on what else the machine runs; the server's own CPU time does much less.
    print(f"  console process CPU per view: {cpu_ms:.0f} ms (utime+stime, background refreshes included)")
    return True


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients", type=int, default=500, help="clients (default 500, the issue's size; `make bench` runs 50)"
    )
    parser.add_argument("--requests", type=int, default=40, help="GET / requests timed (default 40; `make bench`: 10)")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    parser.add_argument("--serve", nargs=3, metavar=("CONFIG", "PORT", "TTL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), float(args.serve[2]))
        return 0

    from preuve.store.db import Store
    from preuve.web.users import add_user, new_token

    folder = Path(tempfile.mkdtemp(prefix="preuve-web-bench-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        started = time.monotonic()
        config = build(folder, args.clients)
        drills, snapshots = populate(config)
        print(
            f"built {args.clients} clients, {2 * args.clients} targets, {drills} drills, {snapshots} snapshots "
            f"in {time.monotonic() - started:.0f} s"
        )
        store = Store.open(f"sqlite:///{config / 'preuve.db'}")
        add_user(store, "bench", "admin", "bench-password-long")
        token = new_token(store, "bench")
        store.close()
        ports: list[int] = []
        for label, ttl in (("every view reads the store (cache off)", 0.0), ("as served (default cache)", READING_TTL)):
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(config), str(_port_holder(ports)), str(ttl)]
            )
            try:
                if not measure(label, f"http://127.0.0.1:{ports[-1]}", token, args.requests, server):
                    return 1
            finally:
                _stop(server)
                server = None
        return 0
    finally:
        if server is not None:
            _stop(server)
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
