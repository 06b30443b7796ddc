"""`preuve daemon` with 1,000 targets configured: start-up, idle memory and CPU, reload, stop.

Builds, in a scratch folder, a few small restic repositories (``--repos``, default 3) and a configuration folder with
real job files: 334 clients, 3 targets each (the last client has one, 1,000 targets in all), every target a local
repository among the shared ones, with a daily drill and a weekly integrity run at an hour far from now (nothing is
due while the daemon is measured) and the snapshot probe every 7 days (spread over those 7 days by the daemon's
jitter). Then it starts ``python -m preuve --config DIR daemon`` as a subprocess with JSON logs on stderr, and
measures:

* start-up: from the process start to the log line ``daemon.started`` and to the first ``scheduler.reconciled``
  (the schedule of every target is in the database: the daemon is ready), and to ``preuve_up 1`` on the metrics
  endpoint when the daemon serves it;
* idle resident memory: VmRSS of the daemon process once started and after the idle period (VmHWM: its peak);
* idle CPU over ``--idle`` seconds (default 60): utime + stime of the daemon process (all its threads) from
  /proc/PID/stat; children (restic) are counted apart, and every log line in the period is reported, so that a
  probe falling in the window shows;
* reload: SIGHUP with unchanged files, then every job file rewritten (a new drill hour: 1,000 jobs replaced) and
  SIGHUP; from the signal (from the first write, for the second) to the ``scheduler.reconciled`` line that follows
  ``config.reloaded``;
* restart: SIGTERM (time to exit), then a second start on the same database (jobs already stored).

Targets (issue 4): start and reload under 10 s, idle memory under 200 MB, idle CPU under 1 %.

Not a test (pytest does not collect bench/): ``.venv/bin/python bench/daemon_scale.py [--targets 1000] [--idle 60]
[--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESTIC = shutil.which("restic") or "/usr/bin/restic"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

TARGET_START_S = 10.0
TARGET_RELOAD_S = 10.0
TARGET_RSS_MB = 200.0
TARGET_CPU_PCT = 1.0

STARTED = "daemon.started"
RECONCILED = "scheduler.reconciled"
RELOADED = "config.reloaded"
REFUSED = {"daemon.refused", "config.refused", "config.invalid"}


# ------------------------------------------------------------------------------------------------- fixtures


def run(argv: list[str], *, env: dict[str, str] | None = None, what: str) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def build_repositories(work: Path, count: int) -> tuple[list[Path], Path]:
    """``count`` small restic repositories of one small dataset, and their password file."""
    password = work / "secrets" / "repo.pass"
    password.parent.mkdir(parents=True, mode=0o700)
    password.write_text("bench-password-not-a-secret\n")
    password.chmod(0o600)
    data = work / "data"
    for folder in range(5):
        (data / f"d{folder}").mkdir(parents=True)
        for i in range(20):
            (data / f"d{folder}" / f"f{i}.txt").write_text(f"file {folder}/{i}\n" * (i + 1))
    repos = []
    for n in range(count):
        repo = work / "repos" / f"repo{n}"
        env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(password)}
        env["RESTIC_CACHE_DIR"] = str(work / "restic-cache")
        run([RESTIC, "init", "--quiet"], env=env, what=f"restic init {repo}")
        run([RESTIC, "backup", "--quiet", str(data)], env=env, what=f"restic backup to {repo}")
        repos.append(repo)
    return repos, password


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def quiet_hour() -> int:
    """An hour of the day (local time, as cron reads it) about 12 hours from now: no drill is due during the run."""
    return (datetime.now().astimezone().hour + 12) % 24


def job_text(client: int, targets: int, repos: list[Path], password: Path, drill_hour: int) -> str:
    lines = [f"client: Bench client {client}", "language: en", "targets:"]
    media = ("disk", "nas", "object-storage")
    for t in range(targets):
        repo = repos[(client * 3 + t) % len(repos)]
        lines += [
            f"  t{t}:",
            "    kind: local",
            f"    path: {repo}",
            f"    password_file: {password}",
            f"    location: {'onsite' if t < 2 else 'offsite'}",
            f"    media: {media[t % 3]}",
        ]
    lines += [
        "schedule:",
        f'  drill: "{client % 60} {drill_hour} * * *"',
        f'  integrity: "{(client + 30) % 60} {drill_hour} * * {client % 7}"',
    ]
    return "\n".join(lines) + "\n"


def write_jobs(config: Path, targets: int, repos: list[Path], password: Path, drill_hour: int) -> int:
    """Job files for ``targets`` targets, 3 per client; returns how many files."""
    jobs = config / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    clients = (targets + 2) // 3
    for c in range(clients):
        count = min(3, targets - 3 * c)
        (jobs / f"client{c:04d}.yaml").write_text(job_text(c, count, repos, password, drill_hour))
    return clients


def write_config(config: Path, work: Path, port: int) -> None:
    config.mkdir(parents=True, exist_ok=True)
    (config / "preuve.toml").write_text(
        f'database = "sqlite:///{work / "preuve.db"}"\n'
        f'sandbox = "{work / "sandbox"}"\n'
        f'restic = "{RESTIC}"\n'
        "max_concurrent_drills = 2\n"
        "[daemon]\n"
        'probe_every = "7d"\n'  # spread over 7 days: about one probe every 10 minutes for 1,000 targets
        'policy_every = "7d"\n'
        "[metrics]\n"
        f'listen = "127.0.0.1:{port}"\n'
    )


# --------------------------------------------------------------------------------------------- the daemon


@dataclass
class Event:
    at: float  # time.monotonic()
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("event", ""))


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    started_at: float
    events: list[Event] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)
    new: queue.Queue[Event] = field(default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self, stream: TextIO) -> None:
        for line in stream:
            now = time.monotonic()
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                self.other_lines.append(line.rstrip("\n"))
                continue
            if isinstance(data, dict):
                event = Event(now, data)
                self.events.append(event)
                self.new.put(event)

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float, *, what: str) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"the daemon did not log {what} within {timeout:.0f} s{self._tail()}")
            try:
                event = self.new.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise SystemExit(
                        f"the daemon exited ({self.proc.returncode}) before {what}{self._tail()}"
                    ) from None
                continue
            if event.name in REFUSED:
                raise SystemExit(f"the daemon refused the configuration: {event.data.get('message')}{self._tail()}")
            if predicate(event):
                return event

    def drain(self) -> None:
        while not self.new.empty():
            self.new.get_nowait()

    def _tail(self) -> str:
        lines = [json.dumps(e.data, ensure_ascii=False)[:300] for e in self.events[-8:]] + self.other_lines[-8:]
        return "\nlast lines:\n  " + "\n  ".join(lines) if lines else ""


def start_daemon(python: str, config: Path) -> Daemon:
    env = {**os.environ, "PREUVE_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [python, "-m", "preuve", "--config", str(config), "daemon"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    daemon = Daemon(proc, started)
    assert proc.stderr is not None
    threading.Thread(target=daemon.read, args=(proc.stderr,), daemon=True).start()
    return daemon


def stop_daemon(daemon: Daemon, timeout: float = 120) -> float:
    """SIGTERM, then the seconds until the process exited."""
    if daemon.proc.poll() is not None:
        return 0.0
    sent = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        daemon.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        daemon.proc.wait()
        raise SystemExit(f"the daemon did not stop within {timeout:.0f} s of SIGTERM") from None
    return time.monotonic() - sent


def metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            return any(line.startswith("preuve_up 1") for line in response.read().decode().splitlines())
    except OSError:
        return False


class MetricsWatch:
    """Polls /metrics from the daemon's start (a thread), noting when it first says preuve_up 1."""

    def __init__(self, daemon: Daemon, port: int, timeout: float) -> None:
        self.answered_s: float | None = None
        self._thread = threading.Thread(target=self._poll, args=(daemon, port, timeout), daemon=True)
        self._thread.start()

    def _poll(self, daemon: Daemon, port: int, timeout: float) -> None:
        deadline = daemon.started_at + timeout
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            if metrics_up(port):
                self.answered_s = time.monotonic() - daemon.started_at
                return
            time.sleep(0.05)

    def result(self, wait: float) -> float | None:
        """Seconds from the process start until preuve_up 1; None if it never answered (within ``wait`` more)."""
        self._thread.join(timeout=wait)
        return self.answered_s


# ------------------------------------------------------------------------------------------------ /proc


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime + stime of the process and all its threads, cutime + cstime of its waited-for children)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return utime + stime, cutime + cstime


def memory_kb(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            found[key] = int(value.split()[0])
    return found


# -------------------------------------------------------------------------------------------- the bench


@dataclass
class Row:
    measure: str
    value: float
    unit: str
    target: float | None = None

    def line(self) -> str:
        value = f"{self.value:,.2f} {self.unit}"
        if self.target is None:
            return f"{self.measure:<52}{value:>16}"
        ratio = self.value / self.target
        verdict = "ok" if ratio < 1 else "OVER"
        target = f"< {self.target:g} {self.unit}"
        return f"{self.measure:<52}{value:>16}{target:>14}{ratio:>9.2f}  {verdict}"


def available(python: str) -> str | None:
    """None when `preuve daemon` exists in this checkout, else why not."""
    done = subprocess.run(
        [python, "-m", "preuve", "daemon", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout).strip() else "?"


def bench(args: argparse.Namespace, work: Path) -> int:
    python = args.python
    why = available(python)
    if why is not None:
        print(
            "`preuve daemon` is not available in this checkout yet "
            f"({python} -m preuve daemon --help: {why}).\n"
            "This benchmark needs the daemon command (src/preuve/scheduler/, cli `daemon`): run it again once it "
            "is there.",
            file=sys.stderr,
        )
        return 2

    print(f"scratch folder: {work}")
    t0 = time.monotonic()
    repos, password = build_repositories(work, args.repos)
    config = work / "config"
    port = free_port()
    write_config(config, work, port)
    hour = quiet_hour()
    clients = write_jobs(config, args.targets, repos, password, hour)
    print(
        f"{args.repos} restic repositories, {clients} job files, {args.targets} targets "
        f"(drills at {hour:02d}:xx local time, probes every 7 days): built in {time.monotonic() - t0:.1f} s"
    )
    rows: list[Row] = []

    # --- first start: an empty database, every job added
    daemon = start_daemon(python, config)
    watch = MetricsWatch(daemon, port, args.timeout)
    try:
        started = daemon.wait_for(lambda e: e.name == STARTED, args.timeout, what=STARTED)
        reconciled = daemon.wait_for(lambda e: e.name == RECONCILED, args.timeout, what=RECONCILED)
        metrics_s = watch.result(wait=5)
        rows.append(Row("start (empty database): daemon.started", started.at - daemon.started_at, "s"))
        rows.append(
            Row(
                "start (empty database): schedule in place",
                reconciled.at - daemon.started_at,
                "s",
                TARGET_START_S,
            )
        )
        print(f"  first reconcile: {reconciled.data.get('message')}")
        if metrics_s is not None:
            rows.append(Row("start: metrics endpoint answers preuve_up 1", metrics_s, "s", TARGET_START_S))
        else:
            print(f"  (no metrics endpoint on 127.0.0.1:{port}: this daemon does not serve /metrics)")

        # --- idle
        time.sleep(args.settle)
        after_start = memory_kb(daemon.pid)
        daemon.drain()
        first_event = len(daemon.events)
        ticks0, children0 = cpu_ticks(daemon.pid)
        wall0 = time.monotonic()
        print(f"  idle for {args.idle:.0f} s ...", flush=True)
        time.sleep(args.idle)
        ticks1, children1 = cpu_ticks(daemon.pid)
        wall = time.monotonic() - wall0
        idle = memory_kb(daemon.pid)
        during = daemon.events[first_event:]
        cpu_pct = (ticks1 - ticks0) / TICKS / wall * 100
        child_pct = (children1 - children0) / TICKS / wall * 100
        rows.append(Row("idle: resident memory (VmRSS) after start", after_start["VmRSS"] / 1024, "MB", TARGET_RSS_MB))
        rows.append(Row(f"idle: resident memory after {args.idle:.0f} s", idle["VmRSS"] / 1024, "MB", TARGET_RSS_MB))
        rows.append(Row("idle: peak resident memory so far (VmHWM)", idle["VmHWM"] / 1024, "MB"))
        rows.append(Row(f"idle: daemon CPU over {wall:.0f} s (utime+stime)", cpu_pct, "%", TARGET_CPU_PCT))
        rows.append(Row("idle: CPU of its finished children (restic)", child_pct, "%"))
        rows.append(Row("idle: threads", idle["Threads"], ""))
        if metrics_s is not None:
            scraped = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                lines = len(response.read().splitlines())
            rows.append(Row(f"scrape of /metrics ({lines:,} lines, database read)", time.monotonic() - scraped, "s"))
        names: dict[str, int] = {}
        for event in during:
            key = event.name or str(event.data.get("message", ""))[:40]
            names[key] = names.get(key, 0) + 1
        print(f"  log lines while idle: {len(during)} {dict(sorted(names.items())) if names else ''}")

        # --- reload, files unchanged
        daemon.drain()
        sent = time.monotonic()
        daemon.proc.send_signal(signal.SIGHUP)
        loaded = daemon.wait_for(lambda e: e.name == RELOADED, args.timeout, what=f"{RELOADED} after SIGHUP")
        done = daemon.wait_for(lambda e: e.name == RECONCILED, args.timeout, what=f"{RECONCILED} after the reload")
        rows.append(Row("reload (SIGHUP, files unchanged)", done.at - sent, "s", TARGET_RELOAD_S))
        rows.append(Row("  of which files read and checked", loaded.at - sent, "s"))
        rows.append(Row("  of which schedule reconciled", done.at - loaded.at, "s"))
        print(f"  reconcile: {done.data.get('message')}")

        # --- reload, every job file changed
        daemon.drain()
        begun = time.monotonic()
        write_jobs(config, args.targets, repos, password, (hour + 1) % 24)
        daemon.proc.send_signal(signal.SIGHUP)
        loaded = daemon.wait_for(
            lambda e: e.name == RELOADED, args.timeout, what=f"{RELOADED} after rewriting the job files"
        )
        done = daemon.wait_for(lambda e: e.name == RECONCILED, args.timeout, what=f"{RECONCILED} after the reload")
        rows.append(Row(f"reload (all {clients} job files changed, SIGHUP)", done.at - begun, "s", TARGET_RELOAD_S))
        rows.append(Row("  of which files written, read and checked", loaded.at - begun, "s"))
        rows.append(Row("  of which schedule reconciled", done.at - loaded.at, "s"))
        print(f"  reconcile: {done.data.get('message')}")
        time.sleep(1)
        rows.append(
            Row("resident memory after the reloads", memory_kb(daemon.pid)["VmRSS"] / 1024, "MB", TARGET_RSS_MB)
        )

        rows.append(Row("stop (SIGTERM until exit, nothing running)", stop_daemon(daemon), "s"))
    finally:
        stop_daemon(daemon)

    # --- restart on the same database: jobs already stored
    daemon = start_daemon(python, config)
    try:
        started = daemon.wait_for(lambda e: e.name == STARTED, args.timeout, what=STARTED)
        reconciled = daemon.wait_for(lambda e: e.name == RECONCILED, args.timeout, what=RECONCILED)
        rows.append(
            Row("restart (jobs stored): schedule in place", reconciled.at - daemon.started_at, "s", TARGET_START_S)
        )
        print(f"  restart reconcile: {reconciled.data.get('message')}")
    finally:
        stop_daemon(daemon)

    print()
    print(f"{'measure':<52}{'value':>16}{'target':>14}{'ratio':>9}")
    for row in rows:
        print(row.line())
    over = [row for row in rows if row.target is not None and row.value >= row.target]
    print(f"\n{len(over)} measure(s) over target" if over else "\nevery measure within its target")
    return 1 if over else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=1000, help="targets configured (3 per client)")
    parser.add_argument("--repos", type=int, default=3, help="shared restic repositories the targets point at")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after start-up before measuring idle")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for any one log line")
    parser.add_argument("--python", default=sys.executable, help="interpreter that has preuve installed")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new one under the temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if args.targets < 1:
        parser.error("--targets must be at least 1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="preuve-daemon-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        parser.error(f"{work} is not empty")
    try:
        return bench(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
