"""`preuve daemon`: the scheduler, the drill dispatcher and their supervision, in one long-running process.

The main thread supervises; everything that waits on the network runs elsewhere:

- the *scheduler* (APScheduler, jobs persisted in the results database) runs only in the daemon that holds the
  scheduler lease, so two daemons on one database never fire a job twice; it turns due schedules into queued
  drills, probes and policy evaluations (:mod:`preuve.scheduler.jobs`);
- the *dispatcher* (every daemon) claims queued drills within the limits (all drills, per storage host, one per
  repository under its lock) and runs each on a thread of its own, through :func:`preuve.drills.run.run_queued`.

Faults: SIGTERM stops taking work, cancels running drills (recorded ``interrupted``, sandboxes removed) and exits 0
within ``daemon.stop_timeout``. At start, drills a dead worker left ``running`` are closed and retried once. SIGHUP
or a changed job, policy or settings file reloads; a configuration with errors is refused whole and the previous one
keeps running. A database that goes away (PostgreSQL restarting) is waited for with back-off; nothing dies of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from preuve import redact
from preuve.config.loader import Config, load_config
from preuve.config.units import parse_duration
from preuve.drills.run import run_queued
from preuve.drills.sandbox import MARKER, PREFIX, remove_tree, sweep
from preuve.errors import ConfigurationError, PreuveError
from preuve.restic import execute
from preuve.scheduler import hooks, jobs, locks
from preuve.scheduler.plan import JobSpec, attest_available, desired_jobs, reconcile
from preuve.scheduler.queue import (
    Limits,
    Slot,
    busy_slots,
    claimable,
    recover,
    running,
    select_claimable,
    slot_for,
)
from preuve.store.db import Store
from preuve.store.records import ActiveDrill, mark_interrupted, sync_config, worker_id

log = logging.getLogger("preuve.scheduler")

EXIT_OK, EXIT_CONFIG = 0, 2
JOB_TABLE = "apscheduler_jobs"
FILES_EVERY_S = 3.0  # how often job, policy and settings files are checked for changes
TICK_S = 0.5  # the supervisor's longest sleep: signals and finished drills are handled within it
MAX_BACKOFF_S = 30.0  # the longest wait between two attempts while the database is unavailable
SCHEDULER_MAX_WAIT_S = 60.0  # a scheduler cycle at least this often, even with no job due (dead-man's switch)
DEAD_MAN_EVERY_S = 60.0  # the dead-man URL is pinged at most this often
REMIND_EVERY_S = 60.0  # how often lasting failures are checked for a reminder (alerts.reminder_after)
SCHEDULER_THREADS = 4  # probes and evaluations at once; drills only get queued there, they run in the dispatcher


def _seconds(value: str) -> float:
    return parse_duration(value).total_seconds()


def local_timezone() -> tzinfo:
    """The server's time zone: cron schedules in job files read like crontab, in local time."""
    from tzlocal import get_localzone

    zone: tzinfo = get_localzone()
    return zone


# ------------------------------------------------------------------------------------------------- APScheduler


def _make_scheduler(store: Store, tz: tzinfo, on_cycle: Callable[[bool], None]) -> Any:
    """A BackgroundScheduler on the results database, reporting each cycle's success (for the dead-man ping)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.base import STATE_RUNNING

    class JobStore(SQLAlchemyJobStore):  # type: ignore[misc]
        """Notes failed reads (APScheduler logs and swallows them) and leaves the shared engine open."""

        failed = False

        def get_due_jobs(self, now: datetime) -> Any:
            try:
                return super().get_due_jobs(now)
            except Exception:
                self.failed = True
                raise

        def shutdown(self) -> None:
            pass  # the engine is the daemon's Store's: it is closed with it, not with the scheduler

    class Scheduler(BackgroundScheduler):  # type: ignore[misc]
        def _process_jobs(self) -> float | None:
            if self.state != STATE_RUNNING:
                # APScheduler's loop runs one more cycle after shutdown(): it would submit to a closed executor.
                return None
            jobstore.failed = False
            try:
                wait = super()._process_jobs()
            except Exception as exc:
                # APScheduler lets a failed job-store write escape, which would end its thread for good.
                log.warning("scheduler cycle failed (%s: %s); retrying", type(exc).__name__, exc)
                on_cycle(False)
                return float(self.jobstore_retry_interval)
            on_cycle(not jobstore.failed)
            return SCHEDULER_MAX_WAIT_S if wait is None else min(float(wait), SCHEDULER_MAX_WAIT_S)

    jobstore = JobStore(engine=store.engine, tablename=JOB_TABLE)
    return Scheduler(
        jobstores={"default": jobstore},
        executors={"default": ThreadPoolExecutor(SCHEDULER_THREADS)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=tz,
        jobstore_retry_interval=5,
    )


# ------------------------------------------------------------------------------------------------ the daemon


@dataclass
class InFlight:
    drill: ActiveDrill
    slot: Slot
    lease: locks.RepoLease
    scope: execute.CancelScope
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Task:
    name: str
    due: float = 0.0
    delay: float = 0.0  # current back-off after failures; 0 when healthy
    failing: bool = False


class Daemon:
    def __init__(self, config_dir: Path, *, tz: tzinfo | None = None) -> None:
        self.config_dir = config_dir.resolve()
        self.dir_key = str(self.config_dir)
        self.tz = tz
        self.worker = worker_id()
        self.holder = f"{self.worker}/{secrets.token_hex(4)}"  # of the scheduler lease
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = threading.Event()
        self.config: Config | None = None
        self.store: Store | None = None
        self.scheduler: Any = None
        self.scheduler_paused = False  # paused by us: the lease could not be renewed in time
        self.lease_ok_at = 0.0
        self.pending_sync = True
        self.pending_reconcile = False
        self.pending_config_ok = False
        self.files: dict[str, tuple[int, int]] = {}
        self.inflight: dict[int, InFlight] = {}
        self.inflight_lock = threading.Lock()
        self.tasks: dict[str, _Task] = {}
        self.last_ping = 0.0
        self.background: dict[str, threading.Thread] = {}
        self.standby_logged = False
        self.told_waiting: set[int] = set()  # drills whose wait for a busy repository was logged (once each)
        self.metrics: Any = None  # preuve.metrics.MetricsServer, when that module is installed
        self.web: Any = None  # preuve.web.server.WebServer, when preuve.toml has a [web] section
        self.last_remind = 0.0

    # --- entry point -------------------------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        try:
            config = load_config(self.config_dir)
            specs = self._specs(config)
        except ConfigurationError as exc:
            for problem in exc.problems:
                log.error("configuration problem: %s", problem, extra={"event": "config.invalid"})
            log.error(
                "the daemon cannot start: %d configuration problem(s) in %s",
                len(exc.problems),
                self.config_dir,
                extra={"event": "daemon.refused"},
            )
            return EXIT_CONFIG
        self.config = config
        self.files = self._fingerprint()
        if not self._open_store(config):
            return EXIT_OK  # stopped while waiting for the database
        assert self.store is not None
        jobs.install(self.dir_key, config, self.store)
        sweep(config.sandbox_root)  # sandboxes of dead processes (each removal is logged by sweep)
        self._start_metrics(config, self.store)
        self._start_web(config, self.store)
        self.pending_config_ok = True  # a configuration refused before a restart now loads: say so once
        log.info(
            "daemon started: %d clients, %d targets, %d scheduled jobs, database %s, worker %s",
            len(config.clients),
            len(config.targets()),
            len(specs),
            self.store.url,
            self.worker,
            extra={"event": "daemon.started", "worker": self.worker},
        )
        try:
            self._loop()
        finally:
            code = self._shutdown()
        return code

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            if not self.stopping.is_set():
                log.info("received %s: stopping", signal.Signals(signum).name, extra={"event": "daemon.stopping"})
            self.stopping.set()
            self.wake.set()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _open_store(self, config: Config) -> bool:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                self.store = Store.open(config.database_url)
                return True
            except PreuveError as exc:
                log.error("%s; retrying in %.0f s", exc.message, delay, extra={"event": "db.unavailable"})
            self.stopping.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        return False

    def _specs(self, config: Config) -> list[JobSpec]:
        specs, problems = desired_jobs(config, self.dir_key, self._tz(), attest=attest_available())
        if problems:
            raise ConfigurationError(problems)
        return specs

    def _tz(self) -> tzinfo:
        if self.tz is None:
            self.tz = local_timezone()
        return self.tz

    # --- supervision loop --------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stopping.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload("SIGHUP")
            config = self._config()
            daemon = config.settings.daemon
            lease_s = _seconds(daemon.lock_lease)
            poll_s = _seconds(daemon.poll_every)
            self._every("files", FILES_EVERY_S, self._check_files)
            self._every("pending", poll_s, self._apply_pending)
            self._every("recover", max(poll_s, lease_s / 2), self._recover)
            self._every("scheduler", max(lease_s / 3, 0.5), self._scheduler_tick)
            self._every("dispatch", poll_s, self._dispatch)
            self._every("deliver", poll_s, self._deliver)
            self._guard_lease(lease_s)
            self.wake.wait(TICK_S)
            self.wake.clear()

    def _every(self, name: str, interval_s: float, action: Callable[[], None]) -> None:
        """Run ``action`` when due; a database error backs off (1 s, 2 s, ... up to MAX_BACKOFF_S), others log."""
        task = self.tasks.setdefault(name, _Task(name))
        now = time.monotonic()
        if now < task.due or self.stopping.is_set():
            return
        try:
            action()
        except (SQLAlchemyError, PreuveError) as exc:
            task.delay = min(max(task.delay * 2, 1.0), MAX_BACKOFF_S)
            task.due = time.monotonic() + task.delay
            if not task.failing:
                log.warning(
                    "%s: database unavailable (%s); retrying with back-off",
                    name,
                    _reason(exc),
                    extra={"event": "db.unavailable", "task": name},
                )
            task.failing = True
            return
        except Exception:
            task.delay = min(max(task.delay * 2, 1.0), MAX_BACKOFF_S)
            task.due = time.monotonic() + task.delay
            log.exception("%s failed; retrying in %.0f s", name, task.delay, extra={"event": "daemon.error"})
            task.failing = True
            return
        if task.failing:
            log.info("%s: working again", name, extra={"event": "db.available", "task": name})
        task.failing = False
        task.delay = 0.0
        task.due = time.monotonic() + interval_s

    def _config(self) -> Config:
        assert self.config is not None
        return self.config

    def _store(self) -> Store:
        assert self.store is not None
        return self.store

    # --- reload ------------------------------------------------------------------------------------------------
    def _fingerprint(self) -> dict[str, tuple[int, int]]:
        paths = [self.config_dir / "preuve.toml"]
        for folder in ("jobs", "policies"):
            directory = self.config_dir / folder
            if directory.is_dir():
                paths += sorted(p for pattern in ("*.yaml", "*.yml") for p in directory.glob(pattern))
        found: dict[str, tuple[int, int]] = {}
        for path in paths:
            try:
                info = path.stat()
            except OSError:
                continue
            found[str(path)] = (info.st_mtime_ns, info.st_size)
        return found

    def _check_files(self) -> None:
        current = self._fingerprint()
        if current == self.files:
            return
        changed = sorted(set(current.items()) ^ set(self.files.items()))
        names = sorted({Path(path).relative_to(self.config_dir).as_posix() for path, _ in changed})
        self.reload("changed: " + ", ".join(names))

    def reload(self, why: str) -> bool:
        """Load the configuration again; apply it whole, or refuse it whole and keep the previous one."""
        self.files = self._fingerprint()  # a refused file is not re-read every few seconds, only when changed
        try:
            config = load_config(self.config_dir)
            self._specs(config)
        except ConfigurationError as exc:
            log.error(
                "configuration reload refused (%s): %d problem(s); the previous configuration keeps running: %s",
                why,
                len(exc.problems),
                " | ".join(exc.problems),
                extra={"event": "config.refused", "problems": exc.problems},
            )
            hooks.call("on_config_error", self._config(), self._store(), list(exc.problems))
            return False
        if config.database_url != self._config().database_url:
            log.warning(
                "the `database` setting changed: it takes effect when the daemon restarts",
                extra={"event": "config.restart_needed"},
            )
        self.config = config
        jobs.install(self.dir_key, config, self._store())
        if self.metrics is not None:
            self.metrics.update_config(config)
        self.pending_sync = True
        self.pending_config_ok = True
        self.pending_reconcile = self.scheduler is not None
        log.info(
            "configuration reloaded (%s): %d clients, %d targets",
            why,
            len(config.clients),
            len(config.targets()),
            extra={"event": "config.reloaded"},
        )
        self.tasks.setdefault("pending", _Task("pending")).due = 0.0
        self._every("pending", 0.0, self._apply_pending)
        return True

    def _apply_pending(self) -> None:
        """The database side of a (re)load, retried until the database takes it."""
        if self.pending_sync:
            sync_config(self._store(), self._config())
            self.pending_sync = False
        if self.pending_reconcile and self.scheduler is not None:
            self._reconcile()
            self.pending_reconcile = False
        if self.pending_config_ok:
            self.pending_config_ok = False
            hooks.call("on_config_error", self._config(), self._store(), [])  # back to "loads" after a refusal

    # --- scheduler lease and APScheduler -----------------------------------------------------------------------
    def _scheduler_tick(self) -> None:
        config = self._config()
        lease = parse_duration(config.settings.daemon.lock_lease)
        store = self._store()
        if self.scheduler is None:
            if locks.acquire_scheduler(store, self.holder, lease):
                self.lease_ok_at = time.monotonic()
                log.info("this daemon now runs the schedule", extra={"event": "scheduler.lease_acquired"})
                self._start_scheduler()
                self.standby_logged = False
            elif not self.standby_logged:
                holder = locks.scheduler_holder(store)
                log.info(
                    "another daemon runs the schedule (%s); this one runs queued drills only",
                    holder.describe() if holder else "unknown",
                    extra={"event": "scheduler.standby"},
                )
                self.standby_logged = True
            return
        if locks.renew_scheduler(store, self.holder, lease):
            self.lease_ok_at = time.monotonic()
            if self.scheduler_paused:
                self.scheduler.resume()
                self.scheduler_paused = False
                log.info("scheduler lease renewed: schedule resumed", extra={"event": "scheduler.resumed"})
            return
        holder = locks.scheduler_holder(store)
        log.error(
            "the scheduler lease was taken over by %s after ours expired: this daemon stops scheduling",
            holder.describe() if holder else "another daemon",
            extra={"event": "scheduler.lease_lost"},
        )
        self._stop_scheduler()

    def _guard_lease(self, lease_s: float) -> None:
        """Pause the schedule once our lease may have expired (database away): another daemon may take over."""
        if self.scheduler is None or self.scheduler_paused:
            return
        if time.monotonic() - self.lease_ok_at > lease_s:
            self.scheduler.pause()
            self.scheduler_paused = True
            log.warning(
                "scheduler lease not renewed for %.0f s: schedule paused until it is", lease_s,
                extra={"event": "scheduler.paused"},
            )  # fmt: skip

    def _start_scheduler(self) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

        scheduler = _make_scheduler(self._store(), self._tz(), self._on_cycle)
        scheduler.add_listener(self._on_job_event, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
        scheduler.start(paused=True)  # reconcile before anything runs: stale jobs must not fire first
        self.scheduler = scheduler
        self.scheduler_paused = False
        try:
            self._reconcile()
        except Exception:
            self._stop_scheduler()
            raise
        scheduler.resume()

    def _reconcile(self) -> None:
        config = self._config()
        specs = self._specs(config)
        done = reconcile(self.scheduler, specs, parse_duration(config.settings.daemon.misfire_grace))
        log.info("scheduled jobs: %s", done, extra={"event": "scheduler.reconciled"})

    def _stop_scheduler(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=False)
            except Exception as exc:  # already stopped
                log.debug("scheduler shutdown: %s", exc)

    def _on_cycle(self, ok: bool) -> None:
        """After each scheduler cycle (scheduler thread): ping the dead-man's switch if it went well."""
        if not ok or self.stopping.is_set() or self.scheduler_paused:
            return
        now = time.monotonic()
        if now - self.last_ping < DEAD_MAN_EVERY_S:
            return
        self.last_ping = now
        config = self._config()
        self._in_background("dead-man", lambda: hooks.call("ping_dead_man", config))

    def _on_job_event(self, event: Any) -> None:
        """A scheduled job ran, failed or was missed (scheduler thread): the alerts track each job's health as
        ``daemon:job:<id>``, so a job that keeps failing, or a drill missed beyond the grace, is alerted once."""
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED

        problem = None
        if event.code == EVENT_JOB_ERROR:
            problem = f"job {event.job_id} failed: {type(event.exception).__name__}: {event.exception}"
        elif event.code == EVENT_JOB_MISSED:
            when = event.scheduled_run_time.astimezone(self._tz()).strftime("%Y-%m-%d %H:%M %Z")
            problem = f"job {event.job_id} of {when} was missed: the daemon was down longer than daemon.misfire_grace"
            log.warning("%s", problem, extra={"event": "job.missed", "job": event.job_id})
        if self.config is None or self.store is None or self.stopping.is_set():
            return
        hooks.call("on_daemon_state", self.config, self.store, f"job:{event.job_id}", problem)

    def _in_background(self, name: str, action: Callable[[], object]) -> None:
        """Run ``action`` on a thread of its own unless the previous one of that name is still at it."""
        previous = self.background.get(name)
        if previous is not None and previous.is_alive():
            return
        thread = threading.Thread(target=action, name=name, daemon=True)
        self.background[name] = thread
        thread.start()

    # --- dispatcher --------------------------------------------------------------------------------------------
    def _own(self, drill_id: int) -> bool:
        with self.inflight_lock:
            return drill_id in self.inflight

    def _recover(self) -> None:
        recover(self._store(), own=self._own)

    def _deliver(self) -> None:
        """Alerts: reminders of lasting failures (once a minute) and due deliveries (every poll), off this thread
        (an SMTP server that hangs must not hold the dispatcher)."""
        if hooks.hook("deliver_pending") is None or any(task.failing for task in self.tasks.values()):
            return  # no alerts package, or the database is away (said once already): not every poll
        config, store = self._config(), self._store()
        remind = time.monotonic() - self.last_remind >= REMIND_EVERY_S

        def work() -> None:
            if remind:
                hooks.call("remind", config, store)
            hooks.call("deliver_pending", config, store)

        if remind:
            self.last_remind = time.monotonic()
        self._in_background("deliver", work)

    def _start_metrics(self, config: Config, store: Store) -> None:
        start = hooks.hook("start_metrics_server", "preuve.metrics")
        if start is None:
            return
        try:
            self.metrics = start(config, store)
        except PreuveError as exc:
            # Drills matter more than their graphs: run without the endpoint, loudly.
            log.error("metrics disabled: %s", exc.message, extra={"event": "metrics.failed"})
        except Exception:
            log.exception("metrics disabled: the endpoint could not start", extra={"event": "metrics.failed"})

    def _start_web(self, config: Config, store: Store) -> None:
        start = hooks.hook("start_web_server", "preuve.web.server")
        if start is None:
            return
        try:
            self.web = start(config, store, self._config)
        except PreuveError as exc:
            # Drills matter more than the console: run without it, loudly.
            log.error("web console disabled: %s", exc.message, extra={"event": "web.failed"})
        except Exception:
            log.exception("web console disabled: it could not start", extra={"event": "web.failed"})

    def _dispatch(self) -> None:
        config, store = self._config(), self._store()
        queued = claimable(store)
        if not queued:
            return
        with self.inflight_lock:
            mine = {drill_id: item.slot for drill_id, item in self.inflight.items()}
        candidates: list[Slot] = []
        by_id: dict[int, ActiveDrill] = {}
        for drill in queued:
            if drill.id in mine:
                continue
            slot = slot_for(config, drill.id, drill.target)
            if slot is None:
                # Its target left the configuration: close it rather than keep it queued forever.
                run_queued(self.dir_key, drill.id, config=config, store=store)
                log.warning(
                    "drill %d of %s closed: the target is no longer configured",
                    drill.id,
                    drill.target,
                    extra={"event": "drill.refused", "drill_id": drill.id, "target": drill.target},
                )
                continue
            candidates.append(slot)
            by_id[drill.id] = drill
        busy = {slot.drill_id: slot for slot in busy_slots(config, running(store))}
        busy.update(mine)  # claimed by a thread of ours that may not have turned it running yet
        limits = Limits(config.settings.max_concurrent_drills, config.settings.daemon.max_per_storage_host)
        for slot in select_claimable(candidates, list(busy.values()), limits):
            drill = by_id[slot.drill_id]
            lease = locks.RepoLease(
                store,
                slot.repo,
                f"drill #{drill.id} of {drill.target} (daemon)",
                parse_duration(config.settings.daemon.lock_lease),
            )
            if not lease.try_acquire():
                if drill.id in self.told_waiting:
                    continue
                self.told_waiting.add(drill.id)
                holder = locks.lock_holder(store, slot.repo)
                log.info(
                    "drill %d of %s waits: its repository is in use by %s",
                    drill.id,
                    drill.target,
                    holder.describe() if holder else "another process",
                    extra={"event": "drill.waiting", "drill_id": drill.id, "target": drill.target},
                )
                continue
            self._start_drill(config, store, drill, slot, lease)

    def _start_drill(
        self, config: Config, store: Store, drill: ActiveDrill, slot: Slot, lease: locks.RepoLease
    ) -> None:
        self.told_waiting.discard(drill.id)
        item = InFlight(drill, slot, lease, execute.CancelScope(f"drill #{drill.id}"))
        thread = threading.Thread(
            target=self._drill_thread, args=(config, store, item), name=f"drill-{drill.id}", daemon=True
        )
        item.thread = thread
        with self.inflight_lock:
            self.inflight[drill.id] = item  # before the claim: recovery must see it as ours from the start
        log.info(
            "drill %d of %s starting (%s, asked by %s)",
            drill.id,
            drill.target,
            drill.kind.value,
            drill.requested_by,
            extra={"event": "drill.started", "drill_id": drill.id, "target": drill.target, "kind": drill.kind.value},
        )
        thread.start()

    def _drill_thread(self, config: Config, store: Store, item: InFlight) -> None:
        drill = item.drill
        status = None
        try:
            with execute.cancel_scope(item.scope):
                status = run_queued(self.dir_key, drill.id, config=config, store=store, lock=item.lease)
        except Exception:
            log.exception("drill %d of %s crashed in the dispatcher", drill.id, drill.target)
        finally:
            self._release(item.lease)
            with self.inflight_lock:
                self.inflight.pop(drill.id, None)
            self.wake.set()
        took = time.monotonic() - item.started
        if status is None:
            log.info("drill %d was taken by another worker", drill.id, extra={"event": "drill.lost_claim"})
            return
        log.info(
            "drill %d of %s %s after %.0f s",
            drill.id,
            drill.target,
            status.value,
            took,
            extra={
                "event": "drill.finished",
                "drill_id": drill.id,
                "target": drill.target,
                "status": status.value,
                "duration_s": round(took, 3),
            },
        )
        if not self.stopping.is_set():
            hooks.call("on_drill_finished", config, store, drill.id)

    def _release(self, lease: locks.RepoLease) -> None:
        for attempt in range(3):
            try:
                lease.release()
                return
            except SQLAlchemyError as exc:
                if attempt == 2:
                    log.warning(
                        "could not release the lock on %s (%s): it expires with its lease",
                        lease.key,
                        type(exc).__name__,
                    )
                    return
                time.sleep(1)

    # --- shutdown ----------------------------------------------------------------------------------------------
    def _shutdown(self) -> int:
        started = time.monotonic()
        config = self._config()
        timeout = _seconds(config.settings.daemon.stop_timeout)
        self.stopping.set()
        self._stop_scheduler()
        with self.inflight_lock:
            items = list(self.inflight.values())
        if items:
            log.info(
                "cancelling %d running drill(s): %s",
                len(items),
                ", ".join(f"{i.drill.id} ({i.drill.target})" for i in items),
                extra={"event": "daemon.cancelling"},
            )
        execute.cancel_all("Preuve was stopped")
        # Leave a second for the last writes and the store's closing.
        deadline = started + max(timeout - 1.0, 0.5)
        for item in items:
            if item.thread is not None:
                item.thread.join(max(deadline - time.monotonic(), 0.0))
        left = [item for item in items if item.thread is not None and item.thread.is_alive()]
        if left:
            self._abandon(config, left)
        if self.store is not None:
            with contextlib.suppress(SQLAlchemyError):  # else it expires with its lease
                locks.release_scheduler(self.store, self.holder)
        jobs.uninstall(self.dir_key)
        if self.metrics is not None:
            self.metrics.stop()
        if self.web is not None:
            self.web.stop()
        if self.store is not None:
            self.store.close()
        log.info(
            "daemon stopped after %.1f s",
            time.monotonic() - started,
            extra={"event": "daemon.stopped", "abandoned": len(left)},
        )
        return EXIT_OK

    def _abandon(self, config: Config, items: list[InFlight]) -> None:
        """Drills that did not stop in time: record them interrupted and remove their sandboxes ourselves."""
        ids = [item.drill.id for item in items]
        log.error(
            "drill(s) %s did not stop within daemon.stop_timeout: recorded interrupted",
            ", ".join(map(str, ids)),
            extra={"event": "daemon.abandoned"},
        )
        if self.store is not None:
            with contextlib.suppress(SQLAlchemyError):  # else crash recovery at the next start closes them
                mark_interrupted(self.store, ids)
            for item in items:
                self._release(item.lease)
        remove_own_sandboxes(config.sandbox_root)


def remove_own_sandboxes(root: Path) -> list[Path]:
    """This process's sandboxes (it is exiting: nothing will use them)."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    me, host = os.getpid(), socket.gethostname()
    for entry in root.iterdir():
        if not entry.name.startswith(PREFIX) or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            marker = json.loads((entry / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if marker.get("host") == host and marker.get("pid") == me:
            remove_tree(entry)
            removed.append(entry)
    return removed


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact.mask(text[0] if text else type(exc).__name__)[:300]


def stray_threads() -> list[threading.Thread]:
    """Threads that would keep the interpreter from exiting (a job stuck in a network call)."""
    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]


def run_daemon(config_dir: Path) -> int:
    """`preuve daemon`: returns the exit code (0 after SIGTERM, 2 for a configuration that cannot start)."""
    daemon = Daemon(config_dir)
    code = daemon.run()
    deadline = time.monotonic() + 2.0
    for thread in stray_threads():
        thread.join(max(deadline - time.monotonic(), 0.0))
    if stray_threads():
        # A scheduler job stuck in a network call would hold the exit past stop_timeout: everything is recorded.
        log.warning("exiting with %d job thread(s) still busy", len(stray_threads()))
        logging.shutdown()
        os._exit(code)
    return code
