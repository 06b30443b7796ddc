"""The restore log written while the drill runs: each restic command reaches the store when it starts (masked argv,
start time), its stderr tail while it runs (bounded writes), and complete when it ends; the drill's result then
completes the rows instead of adding them twice.

The end-to-end test runs a real `preuve drill run` (a subprocess) against a REST repository whose server is paused
(SIGSTOP: restic's request hangs, deterministically) while the test reads `GET /api/drills/{id}/log` through the
real console app: the finished command and the running one are there before the drill ends.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from preuve import redact
from preuve.config.loader import load_config
from preuve.config.model import WebSettings
from preuve.drills.live import TAIL_LINES, LiveLog
from preuve.drills.result import CommandLog, DrillKind, DrillResult, DrillStatus
from preuve.store.db import Store
from preuve.store.ledger import verify_chains
from preuve.store.records import create_drill, finish_drill, get_drill, mark_interrupted, sync_config
from preuve.store.restore_log import STOPPED_NOTE, write_live
from preuve.web.app import create_app
from preuve.web.context import WebContext, register_secrets
from preuve.web.users import add_user, new_token
from tests.integration.drill_helpers import PREUVE, make_setup
from tests.support.fixtures_services import TargetRepo
from tests.support.web import PASSWORD, write_client

pytestmark = pytest.mark.integration

SECRET = "live-log-secret-9f3a"  # registered with redact: must never be stored or shown


def _wait(what: str, check: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------ a real drill, followed


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target_repo", ["rest"], indirect=True)
def test_the_log_grows_while_a_real_drill_runs(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    config = load_config(setup.config)
    store = Store.open(config.database_url)
    sync_config(store, config)
    register_secrets(config)
    add_user(store, "tech", "technician", PASSWORD)
    token = new_token(store, "tech")
    context = WebContext(store=store, config=lambda: config, settings=WebSettings(), reading_ttl_s=0.0)
    api = TestClient(create_app(context), base_url="http://testserver", headers={"Authorization": f"Bearer {token}"})
    server = target_repo.server
    assert server is not None
    drill: subprocess.Popen[str] | None = None
    try:
        server.pause()  # restic's first request to the repository now hangs until resume()
        drill = subprocess.Popen(
            [*PREUVE, "--config", str(setup.config), "drill", "run", setup.ref, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def running_drill() -> int | None:
            assert drill is not None and drill.poll() is None, "the drill ended while its repository was paused"
            found = api.get("/api/drills", params={"target": setup.ref, "status": "running"}).json()
            return int(found[0]["id"]) if found else None

        drill_id = _wait("the drill to be running", running_drill)

        def live_log() -> dict[str, Any] | None:
            assert drill is not None and drill.poll() is None, "the drill ended while its repository was paused"
            log = api.get(f"/api/drills/{drill_id}/log").json()
            return log if any(c["running"] for c in log["commands"]) else None

        live = _wait("a running command in the drill's log", live_log)
        assert live["final"] is False and live["status"] == "running"
        done = [c for c in live["commands"] if not c["running"]]
        running = [c for c in live["commands"] if c["running"]]
        # `restic version` ended (once per process) and is stored complete; the opening commands (`snapshots`, and
        # `ls` started beside it) wait for the server
        assert done and all(c["exit_code"] == 0 for c in done)
        assert done[0]["argv"][1:] == ["version"]
        assert running and all(c["exit_code"] is None and c["note"].startswith("running:") for c in running)
        opening = {c["argv"][-2] if c["argv"][-1] == "--json" else "ls" for c in running}
        assert opening <= {"snapshots", "ls"}, running
        assert all(datetime.fromisoformat(c["started_at"]) <= datetime.now(UTC) for c in running)
        page = api.get(f"/drills/{drill_id}/live")  # what the drill page polls
        assert page.status_code == 200 and "running" in page.json()["log"]
        assert any(("snapshots --json" if o == "snapshots" else " ls ") in page.json()["log"] for o in opening)
    finally:
        server.resume()
        if drill is not None:
            out, err = drill.communicate(timeout=240)
    assert drill is not None and drill.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["status"] == "passed"

    final = api.get(f"/api/drills/{drill_id}/log").json()
    assert final["final"] is True
    commands = final["commands"]
    assert result["drill_id"] == drill_id
    assert not any(c["running"] for c in commands)
    assert all(c["exit_code"] == 0 for c in commands)
    # one row per command, none twice: version, then snapshots and ls (started together, either order), restore
    assert len(commands) == 4
    assert commands[0]["argv"][-1] == "version"
    assert {"snapshots" if "snapshots" in c["argv"] else "ls" if "ls" in c["argv"] else "?" for c in commands[1:3]} == {
        "snapshots",
        "ls",
    }
    assert "restore" in commands[3]["argv"]
    with store.connection() as connection:
        seqs = [
            row.seq
            for row in connection.execute(text("SELECT seq FROM drillcommand WHERE drill_id = :d"), {"d": drill_id})
        ]
    assert seqs and sorted(seqs) == list(range(1, len(commands) + 1))
    assert setup.repo.password not in json.dumps(final)
    assert all(status.problem is None for status in verify_chains(store))
    api.close()
    store.close()


# --------------------------------------------------------------------------- the live log against a real store


@pytest.fixture
def store(tmp_path: Path) -> Any:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "preuve.toml").write_text('database = "sqlite:///preuve.db"\nsandbox = "sandbox"\n')
    write_client(config_dir, "acme", "ACME", {"nas": {"path": "/srv/acme-nas"}})
    config = load_config(config_dir)
    opened = Store.open(config.database_url)
    sync_config(opened, config)
    redact.register(SECRET)
    try:
        yield opened
    finally:
        opened.close()


def _command(argv: tuple[str, ...], *, exit_code: int | None = 0, stderr: str = "", note: str = "") -> CommandLog:
    return CommandLog(
        argv=argv,
        started_at=datetime.now(UTC).replace(microsecond=0),
        duration_s=0.5,
        exit_code=exit_code,
        stdout="out\n",
        stderr=stderr,
        note=note,
    )


def _rows(store: Store, drill_id: int) -> list[Any]:
    with store.connection() as connection:
        return list(
            connection.execute(
                text("SELECT seq, running, exit_code, stderr, note, argv FROM drillcommand WHERE drill_id = :d"),
                {"d": drill_id},
            )
        )


def test_output_is_written_bounded_and_masked(store: Store) -> None:
    drill_id = create_drill(store, "acme/nas", DrillKind.SAMPLE, "test")
    updates: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "drillcommand" in statement and statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            updates.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    lines = 20_000
    started = time.monotonic()
    with LiveLog(store, drill_id, flush_s=0.5) as live:
        live.started(1, ("restic", "restore", "abc", "--password", "***"), datetime.now(UTC))
        _wait("the running command's row", lambda: _rows(store, drill_id))
        for n in range(lines):
            live.stderr_line(1, f"line {n} {SECRET}\n")
            live.stdout_line(1)
        row = _wait("the stderr tail", lambda: [r for r in _rows(store, drill_id) if f"line {lines - 1} " in r.stderr])[
            0
        ]
        assert row.running and row.exit_code is None
        assert SECRET not in row.stderr and "***" in row.stderr
        shown = row.stderr.splitlines()
        assert len(shown) <= TAIL_LINES + 1 and shown[0].startswith(f"[... {lines - TAIL_LINES} earlier lines")
        assert f"{lines} stdout and {lines} stderr lines so far" in row.note
        final = _command(("restic", "restore", "abc"), stderr="done\n")
        live.finished(1, final)
    elapsed = time.monotonic() - started
    event.remove(store.engine, "before_cursor_execute", count)
    # a write when the command started, one when it ended, at most one per flush period in between: not per line
    assert live.writes <= 2 + elapsed / 0.5 + 1
    assert len(updates) <= 2 * live.writes
    rows = _rows(store, drill_id)
    assert len(rows) == 1 and not rows[0].running and rows[0].exit_code == 0 and rows[0].stderr == "done\n"


def test_the_result_completes_the_live_rows_without_duplicates(store: Store) -> None:
    drill_id = create_drill(store, "acme/nas", DrillKind.SAMPLE, "test")
    version = _command(("restic", "version"))
    listing = _command(("restic", "snapshots", "--json"))
    restore = _command(("restic", "restore", "abc", f"--tag={SECRET}"), stderr=f"warning {SECRET}\n")
    running = CommandLog(("restic", "restore", "abc"), restore.started_at, 0.2, None, "", "partial\n", running=True)
    # live: the first two complete, the third still running (as the drill's watcher writes them)
    assert write_live(store, drill_id, [(1, version), (2, listing), (3, running)])
    detail = get_drill(store, drill_id)
    assert detail is not None and [c.running for c in detail.commands] == [False, False, True]
    # a late running state never overwrites a completed row
    assert write_live(
        store, drill_id, [(1, CommandLog(("restic", "version"), version.started_at, 9.0, None, "", "", running=True))]
    )
    assert _rows(store, drill_id)[0].running == 0
    result = DrillResult(
        status=DrillStatus.PASSED,
        kind=DrillKind.SAMPLE,
        started_at=datetime.now(UTC) - timedelta(seconds=5),
        finished_at=datetime.now(UTC),
        log=[version, listing, restore],
    )
    finish_drill(store, drill_id, result)
    detail = get_drill(store, drill_id)
    assert detail is not None
    assert len(detail.commands) == 3 and not any(c.running for c in detail.commands)
    assert detail.commands[:2] == (version, listing)
    assert SECRET not in repr(detail.commands) and detail.commands[2].stderr == "warning ***\n"
    assert detail.commands[2].argv[-1] == "--tag=***"
    # the drill is final: live writes no longer touch it
    assert not write_live(store, drill_id, [(4, running)])
    assert len(_rows(store, drill_id)) == 3
    assert all(status.problem is None for status in verify_chains(store))


def test_a_command_running_when_the_drill_stops_is_closed(store: Store) -> None:
    version = _command(("restic", "version"))
    running = CommandLog(
        ("restic", "restore", "abc"), version.started_at, 3.0, None, "", "half\n", note="running: 2", running=True
    )
    # the drill's own process records it (interrupted): the command it had started is marked stopped
    stopped = create_drill(store, "acme/nas", DrillKind.SAMPLE, "test")
    assert write_live(store, stopped, [(1, version), (2, running)])
    result = DrillResult(
        status=DrillStatus.INTERRUPTED, kind=DrillKind.SAMPLE, started_at=version.started_at, log=[version]
    )
    finish_drill(store, stopped, result)
    rows = _rows(store, stopped)
    assert [(r.seq, bool(r.running)) for r in rows] == [(1, False), (2, False)]
    assert rows[1].exit_code is None and rows[1].note.startswith(STOPPED_NOTE) and rows[1].stderr == "half\n"
    # its worker died (crash recovery): the same, from mark_interrupted
    crashed = create_drill(store, "acme/nas", DrillKind.SAMPLE, "test")
    assert write_live(store, crashed, [(1, version), (2, running)])
    assert mark_interrupted(store, [crashed]) == 1
    rows = _rows(store, crashed)
    assert not any(r.running for r in rows) and "process running the drill ended" in rows[1].note
    detail = get_drill(store, crashed)
    assert detail is not None and detail.status is DrillStatus.INTERRUPTED
    assert all(status.problem is None for status in verify_chains(store))
