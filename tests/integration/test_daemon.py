"""`preuve daemon` as a real subprocess against real local repositories: a requested drill end to end, SIGTERM
during a drill, kill -9 then restart, SIGHUP with a broken file, a CLI drill racing the daemon on one repository,
and PostgreSQL restarted under a running daemon.

restic is wrapped by a script that logs every call (start and end, with the calling process) and holds restores at
a gate file, so a test can act while a drill is restoring and check that two processes never used one repository
at once. Every process a test starts is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from preuve.drills.result import DrillKind
from preuve.scheduler.queue import enqueue_drill
from preuve.store.db import Store
from tests.integration.drill_helpers import PREUVE, Setup, make_setup
from tests.support.fixtures_services import TargetRepo
from tests.support.postgres import PostgresServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LOCAL = pytest.mark.parametrize("target_repo", ["local"], indirect=True)
STOP_TIMEOUT_S = 15
DAEMON_SETTINGS = f"""
[daemon]
poll_every = "1s"
lock_lease = "6s"
lock_wait = "{{lock_wait}}"
stop_timeout = "{STOP_TIMEOUT_S}s"
probe_every = "1d"
policy_every = "1d"
[metrics]
{{metrics}}
"""


# ------------------------------------------------------------------------------------------------ helpers


@dataclass
class Rig:
    setup: Setup
    tmp: Path
    gate: Path  # restores wait until this file exists
    pidfile: Path  # the wrapper of the restore holding at the gate writes its pid here
    calls: Path  # "start PPID TIME ARGS" / "end PPID TIME" per restic call
    daemons: list[Daemon]

    def settings(self, *, lock_wait: str = "60s", database: str | None = None, metrics_port: int | None = None) -> None:
        lines = f'sandbox = "{self.setup.sandbox}"\nrestic = "{self.tmp / "restic"}"\n'
        lines += f'database = "{database}"\n' if database else 'database = "sqlite:///preuve.db"\n'
        metrics = f'listen = "127.0.0.1:{metrics_port}"' if metrics_port else "enabled = false"
        (self.setup.config / "preuve.toml").write_text(
            lines + DAEMON_SETTINGS.format(lock_wait=lock_wait, metrics=metrics)
        )

    def daemon(self) -> Daemon:
        started = Daemon(self.setup, self.tmp / f"daemon-{len(self.daemons) + 1}.log")
        self.daemons.append(started)
        return started

    def open_gate(self) -> None:
        self.gate.touch()

    def drill_json(self, drill_id: int) -> dict[str, Any]:
        done = self.setup.preuve("drill", "show", str(drill_id), "--json", timeout=60)
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def drill_log(self, drill_id: int) -> list[dict[str, Any]]:
        """The drill's restore log as stored now (written while the drill runs: preuve.drills.live)."""
        done = self.setup.preuve("drill", "show", str(drill_id), "--json", "--log", timeout=60)
        assert done.returncode == 0, done.stderr
        commands: list[dict[str, Any]] = json.loads(done.stdout)["commands"]
        return commands

    def drills(self) -> list[dict[str, Any]]:
        done = self.setup.preuve("drill", "list", "--json", timeout=60)
        assert done.returncode == 0, done.stderr
        found: list[dict[str, Any]] = json.loads(done.stdout)["drills"]
        return found

    def wait_status(self, drill_id: int, wanted: set[str], timeout: float = 90) -> dict[str, Any]:
        return wait_for(lambda: _with_status(self.drill_json(drill_id), wanted), timeout, f"drill {drill_id} {wanted}")

    def request(self, *args: str) -> int:
        done = self.setup.preuve("drill", "request", self.setup.ref, "--json", *args, timeout=60)
        assert done.returncode == 0, done.stderr
        drill_id: int = json.loads(done.stdout)["id"]
        return drill_id

    def restic_calls(self) -> list[tuple[int, float, float, str]]:
        """(caller pid, start, end, args) of every finished restic call that touched the repository."""
        starts: dict[str, tuple[int, float, str]] = {}
        calls = []
        for line in self.calls.read_text().splitlines() if self.calls.exists() else []:
            event, call_id, ppid, moment, *args = line.split(" ")
            if event == "start":
                starts[call_id] = (int(ppid), float(moment), " ".join(args))
            elif call_id in starts:
                caller, began, what = starts.pop(call_id)
                if "version" not in what.split():
                    calls.append((caller, began, float(moment), what))
        return calls


def _with_status(drill: dict[str, Any], wanted: set[str]) -> dict[str, Any] | None:
    return drill if drill["status"] in wanted else None


def _restoring(commands: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return commands if commands and commands[-1]["running"] and "restore" in commands[-1]["argv"] else None


def wait_for(probe: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Daemon:
    """`preuve --config DIR daemon` with its JSON log in a file."""

    def __init__(self, setup: Setup, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
        env["PREUVE_LOG_FORMAT"] = "json"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*PREUVE, "--config", str(setup.config), "daemon"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                found.append({"message": line})  # a traceback line: kept for the failure message
        return found

    def wait_event(self, event: str, timeout: float = 60, since: int = 0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            assert self.process.poll() is None or event == "daemon.stopped", f"daemon exited:\n{self.text()}"
            return next((e for e in self.events()[since:] if e.get("event") == event), None)

        try:
            found: dict[str, Any] = wait_for(find, timeout, f"log event {event}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.text()}") from None
        return found

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S + 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the daemon did not stop within {timeout} s:\n{self.text()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _wrapper(tmp: Path, gate: Path, pidfile: Path, calls: Path) -> Path:
    """A restic that logs each call and holds restores until the gate file exists (at most two minutes)."""
    script = tmp / "restic"
    script.write_text(
        "#!/bin/sh\n"
        "id=$$\n"
        f'echo "start $id $PPID $(date +%s.%N) $*" >> {calls}\n'
        'case " $* " in *" restore "*)\n'
        f"  echo $$ > {pidfile}\n"
        "  n=0\n"
        f"  while [ ! -e {gate} ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done;;\n"
        "esac\n"
        '/usr/bin/restic "$@"\n'
        "rc=$?\n"
        f'echo "end $id $PPID $(date +%s.%N)" >> {calls}\n'
        "exit $rc\n"
    )
    script.chmod(0o755)
    return script


def _gone(pid: int) -> bool:
    """True once the process no longer runs (a zombie counts as gone: PID 1 here may not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _kill_group(pid: int) -> None:
    """End a restic wrapper a killed daemon left behind (its own process group: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def rig(tmp_path: Path, target_repo: TargetRepo) -> Iterator[Rig]:
    setup = make_setup(tmp_path, target_repo)
    gate, pidfile, calls = tmp_path / "gate", tmp_path / "restore.pid", tmp_path / "calls.log"
    _wrapper(tmp_path, gate, pidfile, calls)
    made = Rig(setup, tmp_path, gate, pidfile, calls, [])
    made.settings()
    try:
        yield made
    finally:
        made.open_gate()
        for daemon in made.daemons:
            daemon.kill()
        if pidfile.exists() and pidfile.read_text().strip():
            _kill_group(int(pidfile.read_text()))


def _wait_restoring(rig: Rig) -> int:
    pid: int = wait_for(
        lambda: int(rig.pidfile.read_text()) if rig.pidfile.exists() and rig.pidfile.read_text().strip() else 0,
        90,
        "the drill to reach its restore",
        every=0.1,
    )
    return pid


# ------------------------------------------------------------------------------------------------- tests


@LOCAL
def test_requested_drill_goes_queued_running_passed(rig: Rig) -> None:
    port = free_port()
    rig.settings(metrics_port=port)
    drill_id = rig.request()
    queued = rig.drill_json(drill_id)
    assert queued["status"] == "queued" and queued["started_at"] is None
    assert queued["requested_by"].endswith("@" + os.uname().nodename)  # who asked, and when
    daemon = rig.daemon()
    running = rig.wait_status(drill_id, {"running"})
    assert running["worker"] == f"{daemon.pid}@{os.uname().nodename}"
    # while restic's restore is held, the log already holds the commands that ended and the restore, running
    live = wait_for(lambda: _restoring(rig.drill_log(drill_id)), 60, "the running restore in the drill's log")
    assert [c["argv"][-1] for c in live[:2]] == ["version", "--json"] and "ls" in live[2]["argv"]
    assert all(not c["running"] and c["exit_code"] == 0 for c in live[:-1])
    rig.open_gate()
    passed = rig.wait_status(drill_id, {"passed", "failed", "error", "interrupted"})
    assert passed["status"] == "passed", passed["message"]
    final = rig.drill_log(drill_id)
    assert len(final) == len(live) and not any(c["running"] for c in final) and final[-1]["exit_code"] == 0
    finished = daemon.wait_event("drill.finished")
    assert finished["drill_id"] == drill_id and finished["status"] == "passed"
    # the daemon serves its metrics meanwhile (preuve.metrics)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert b"preuve_up 1" in response.read()
    assert daemon.stop() == 0
    assert rig.setup.sandboxes() == []


@LOCAL
def test_sigterm_during_a_drill_interrupts_it_cleans_and_exits_0(rig: Rig) -> None:
    daemon = rig.daemon()
    daemon.wait_event("daemon.started")
    drill_id = rig.request("--full")
    restic_pid = _wait_restoring(rig)
    assert rig.setup.sandboxes(), "the drill should be restoring into its sandbox now"
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(STOP_TIMEOUT_S + 5) == 0, daemon.text()
    assert time.monotonic() - started < STOP_TIMEOUT_S
    drill = rig.drill_json(drill_id)
    assert drill["status"] == "interrupted", drill
    assert "stopped before it finished" in drill["message"]
    assert drill["failure_class"] is None  # not an error: a deliberate stop
    # the command it stopped stays in the log, marked so (a full drill starts its restore beside the listing: the
    # restore need not be the last command started)
    restore = next(c for c in rig.drill_log(drill_id) if "restore" in c["argv"])
    assert "restore" in restore["argv"] and not restore["running"] and restore["exit_code"] is None
    assert restore["note"].startswith("stopped before it finished")
    assert rig.setup.sandboxes() == []
    assert wait_for(lambda: _gone(restic_pid), 10, "the held restore to end")
    events = [e.get("event") for e in daemon.events()]
    assert "daemon.cancelling" in events and events[-1] == "daemon.stopped"


@LOCAL
def test_kill_9_during_a_drill_then_restart_interrupts_and_retries_once(rig: Rig) -> None:
    first = rig.daemon()
    first.wait_event("daemon.started")
    drill_id = rig.request()
    restic_pid = _wait_restoring(rig)
    first.kill()  # SIGKILL: no chance to record anything
    _kill_group(restic_pid)  # its restic, in a session of its own, outlived it
    assert rig.drill_json(drill_id)["status"] == "running"
    assert rig.setup.sandboxes(), "the killed daemon left its sandbox behind"
    rig.open_gate()

    second = rig.daemon()
    second.wait_event("scheduler.released_stale")  # the dead daemon's schedule is taken over at once
    recovered = second.wait_event("drill.recovered")
    assert recovered["drill_id"] == drill_id
    retry_id = recovered["retry_id"]
    retry = rig.wait_status(retry_id, {"passed", "failed", "error", "interrupted"})
    assert retry["status"] == "passed", retry["message"]
    assert retry["requested_by"] == f"retry of #{drill_id}"
    old = rig.drill_json(drill_id)
    assert old["status"] == "interrupted" and str(first.pid) in old["message"]
    # shown running when its daemon died; closed by the recovery
    restore = next(c for c in rig.drill_log(drill_id) if "restore" in c["argv"])
    assert "restore" in restore["argv"] and not restore["running"] and restore["exit_code"] is None
    assert "process running the drill ended" in restore["note"]
    # a few more rounds of the loops: nothing recovered or retried twice
    time.sleep(3)
    assert sorted(d["id"] for d in rig.drills()) == sorted([drill_id, retry_id])
    assert [e["drill_id"] for e in second.events() if e.get("event") == "drill.recovered"] == [drill_id]
    assert second.wait_event("scheduler.lease_acquired", timeout=10)
    assert second.stop() == 0
    assert rig.setup.sandboxes() == []


@LOCAL
def test_sighup_with_a_broken_job_file_keeps_the_previous_configuration(rig: Rig) -> None:
    rig.open_gate()
    daemon = rig.daemon()
    daemon.wait_event("daemon.started")
    job_file = rig.setup.config / "jobs" / "acme.yaml"
    good = job_file.read_text()
    job_file.write_text(good.replace("kind: local", "kind: floppy"))
    daemon.signal(signal.SIGHUP)
    refused = daemon.wait_event("config.refused")
    assert "acme.yaml" in refused["message"] and "previous configuration keeps running" in refused["message"]
    assert daemon.alive()
    # the CLI refuses the broken file; the daemon still runs drills of the configuration it had
    assert rig.setup.preuve("drill", "request", rig.setup.ref).returncode == 2
    with Store.open(f"sqlite:///{rig.setup.config / 'preuve.db'}") as store:
        drill_id = enqueue_drill(store, rig.setup.ref, DrillKind.SAMPLE, "test")
    job_file.write_text(good)  # fixed: picked up without a signal (files are watched)
    drill = rig.wait_status(drill_id, {"passed", "failed", "error", "interrupted"})
    assert drill["status"] == "passed", drill["message"]
    daemon.wait_event("config.reloaded")
    if importlib.util.find_spec("preuve.alerts") is not None:
        # alerted too: one flip to error for the refused file, one back to ok once it loads again
        def flips() -> list[str] | None:
            with Store.open(f"sqlite:///{rig.setup.config / 'preuve.db'}") as store, store.connection() as db:
                states = [row[0] for row in db.execute(text("SELECT new_state FROM flip WHERE subject = 'config'"))]
            return states if len(states) >= 2 else None

        assert wait_for(flips, 30, "the configuration flips") == ["error", "ok"]
    assert daemon.stop() == 0


@LOCAL
def test_a_cli_drill_and_a_daemon_drill_never_use_one_repository_at_once(rig: Rig) -> None:
    rig.settings(lock_wait="2s")
    daemon = rig.daemon()
    daemon.wait_event("daemon.started")
    drill_id = rig.request()
    _wait_restoring(rig)
    # the technician's drill gives up after lock_wait, saying who holds the repository and since when
    started = time.monotonic()
    code, result = rig.setup.drill(timeout=60)
    assert code == 3, result
    assert result["failure_class"] == "repo-locked"
    assert f"in use by {daemon.pid}@" in result["message"] and f"drill #{drill_id}" in result["message"]
    assert " since " in result["message"]
    assert 1.5 < time.monotonic() - started < 30
    assert len(rig.drills()) == 1  # nothing recorded for a drill that never started

    rig.settings(lock_wait="90s")
    cli = subprocess.Popen(
        [*PREUVE, "--config", str(rig.setup.config), "drill", "run", rig.setup.ref, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # it waits for the lock meanwhile
        assert cli.poll() is None
        rig.open_gate()
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, (out, err)
    assert "waiting for the repository: in use by" in err
    assert json.loads(out)["status"] == "passed"
    assert rig.wait_status(drill_id, {"passed", "failed", "error"})["status"] == "passed"
    calls = rig.restic_calls()
    assert {caller for caller, *_ in calls} == {daemon.pid, cli.pid}
    for caller, start, end, what in calls:
        for other, start2, end2, what2 in calls:
            if caller != other:
                assert end <= start2 or end2 <= start, f"overlap: {caller} {what} and {other} {what2}"
    assert daemon.stop() == 0


@pytest.mark.postgres
@LOCAL
def test_postgres_restarted_under_a_running_daemon(rig: Rig, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    rig.settings(database=url)
    rig.open_gate()
    daemon = rig.daemon()
    try:
        daemon.wait_event("daemon.started")
        daemon.wait_event("scheduler.lease_acquired", timeout=10)
        daemon.wait_event("scheduler.reconciled")
        postgres_server.shutdown()
        try:
            unavailable = daemon.wait_event("db.unavailable", timeout=30)
            assert unavailable["level"] == "WARNING"
            time.sleep(2)
            assert daemon.alive()
        finally:
            postgres_server.start()
        drill_id = rig.request()
        drill = rig.wait_status(drill_id, {"passed", "failed", "error", "interrupted"}, timeout=120)
        assert drill["status"] == "passed", drill["message"]
        assert daemon.alive()
        assert daemon.stop() == 0
        assert any(e.get("event") == "db.available" for e in daemon.events())  # it said when it was back
        errors = [e for e in daemon.events() if e.get("level") == "ERROR" and e.get("logger") == "preuve.scheduler"]
        assert errors == [], errors
    finally:
        daemon.kill()
        postgres_server.drop_database(url.rsplit("/", 1)[1])


def test_locks_and_the_scheduler_lease_on_each_backend(store_url: str) -> None:
    """The same acquire/renew/steal rules on SQLite and PostgreSQL (psycopg reports INSERT ... ON CONFLICT
    differently: the outcome must not depend on row counts)."""
    from datetime import UTC, datetime, timedelta

    from preuve.scheduler import locks

    t0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
    lease = timedelta(minutes=2)
    with Store.open(store_url) as store:
        assert locks.acquire(store, "k", "1@a/x", "drill #1", lease, now=t0)
        assert not locks.acquire(store, "k", "2@b/y", "probe", lease, now=t0 + timedelta(minutes=1))
        assert locks.renew(store, "k", "1@a/x", lease, now=t0 + timedelta(minutes=1))
        assert not locks.acquire(store, "k", "2@b/y", "probe", lease, now=t0 + timedelta(minutes=2, seconds=59))
        assert locks.acquire(store, "k", "2@b/y", "probe", lease, now=t0 + timedelta(minutes=3, seconds=1))
        assert not locks.renew(store, "k", "1@a/x", lease, now=t0 + timedelta(minutes=4))
        holder = locks.lock_holder(store, "k")
        assert holder is not None and (holder.holder, holder.purpose) == ("2@b/y", "probe")
        assert locks.release(store, "k", "2@b/y") and locks.lock_holder(store, "k") is None
        assert locks.acquire_scheduler(store, "1@a/x", lease, now=t0)
        assert not locks.acquire_scheduler(store, "2@b/y", lease, now=t0 + timedelta(minutes=1))
        assert locks.acquire_scheduler(store, "2@b/y", lease, now=t0 + timedelta(minutes=5))
        assert not locks.renew_scheduler(store, "1@a/x", lease, now=t0 + timedelta(minutes=5))
