"""Scheduling logic with frozen time, no sleeping: jitter, triggers, misfire grace and coalesce, reconcile, the
dispatcher's limits, repository locks and the scheduler lease, crash recovery, cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.executors.debug import DebugExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import text

from preuve.config.loader import Config, load_config
from preuve.drills.result import DrillKind, DrillStatus
from preuve.restic import execute
from preuve.scheduler import hooks, jobs, locks, plan
from preuve.scheduler.queue import (
    Limits,
    Slot,
    claimable,
    enqueue_drill,
    jitter_offset,
    recover,
    select_claimable,
)
from preuve.store.db import Store
from preuve.store.records import RETRY_PREFIX, create_drill, get_drill, list_drills, sync_config, worker_id

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------ helpers


def write_config(root: Path, schedule: dict[str, str] | None = None, *, targets: int = 2, extra: str = "") -> Path:
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    (root / "preuve.toml").write_text(f'database = "sqlite:///preuve.db"\nsandbox = "sandbox"\n{extra}')
    job: dict[str, Any] = {
        "client": "ACME",
        "targets": {
            f"t{i}": {
                "kind": "local",
                "path": f"/srv/repos/t{i}",
                "password_file": "secrets/p",
                "location": "onsite",
                "media": "disk",
            }
            for i in range(targets)
        },
    }
    if schedule is not None:
        job["schedule"] = schedule
    (root / "jobs" / "acme.yaml").write_text(yaml.safe_dump(job))
    return root


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path / "cfg", {"drill": "0 2 * * *", "integrity": "7d"}))


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    opened = Store.open(config.database_url)
    sync_config(opened, config)
    try:
        yield opened
    finally:
        opened.close()


class Frozen:
    """A clock for APScheduler's modules: ``datetime.now()`` returns what the test says."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
        self.now = now
        clock = self

        class FrozenDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return clock.now.astimezone(tz) if tz is not None else clock.now

        import apscheduler.executors.base
        import apscheduler.schedulers.base

        monkeypatch.setattr(apscheduler.schedulers.base, "datetime", FrozenDatetime)
        monkeypatch.setattr(apscheduler.executors.base, "datetime", FrozenDatetime)


class ManualScheduler(BaseScheduler):  # type: ignore[misc]
    """No thread: the test calls _process_jobs() itself, at frozen instants."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Replace the job functions by recorders (resolved by reference when a job is added)."""
    seen: list[tuple[str, ...]] = []

    def recorder(*args: str) -> None:
        seen.append(args)

    for name in ("enqueue_due_drill", "refresh_snapshots", "evaluate_policies", "monthly_attestation"):
        monkeypatch.setattr(jobs, name, recorder)
    return seen


def manual_scheduler() -> ManualScheduler:
    scheduler = ManualScheduler(
        jobstores={"default": MemoryJobStore()}, executors={"default": DebugExecutor()}, timezone=UTC
    )
    scheduler.start()
    return scheduler


# ------------------------------------------------------------------------------------------------- jitter


def test_jitter_is_deterministic_and_within_bounds() -> None:
    jitter = timedelta(minutes=30)
    refs = [f"client{i}/nas" for i in range(300)]
    offsets = [jitter_offset(ref, jitter) for ref in refs]
    assert offsets == [jitter_offset(ref, jitter) for ref in refs]  # same target, same delay, every time
    assert all(timedelta(0) <= o < jitter for o in offsets)
    assert all(o == timedelta(seconds=int(o.total_seconds())) for o in offsets)  # whole seconds
    # spread out, not bunched: 300 targets at 02:00 land in every one of the six 5-minute slices
    assert {int(o.total_seconds() // 300) for o in offsets} == set(range(6))
    assert len(set(offsets)) > 250
    assert jitter_offset("acme/nas", timedelta(milliseconds=500)) == timedelta(0)


def test_enqueue_due_drill_queues_with_jitter_and_does_not_pile_up(config: Config, store: Store) -> None:
    jobs.install(str(config.directory), config, store)
    try:
        before = datetime.now(UTC)
        first = jobs.enqueue_due_drill(str(config.directory), "acme/t0", "sample")
        assert first is not None
        # still queued at the next fire: not queued twice
        assert jobs.enqueue_due_drill(str(config.directory), "acme/t0", "sample") is None
        other_kind = jobs.enqueue_due_drill(str(config.directory), "acme/t0", "integrity")
        assert other_kind is not None and other_kind != first
    finally:
        jobs.uninstall(config.directory)
    [queued] = [d for d in list_drills(store, target="acme/t0", kind="sample")]
    assert queued.status is DrillStatus.QUEUED and queued.requested_by == jobs.SCHEDULED_BY
    with store.connection() as connection:
        not_before = connection.execute(text("SELECT not_before FROM drillrun WHERE id = :i"), {"i": first}).scalar()
    offset = jitter_offset("acme/t0", timedelta(minutes=30))
    got = datetime.fromisoformat(str(not_before)).replace(tzinfo=UTC)
    assert before + offset - timedelta(seconds=1) <= got <= datetime.now(UTC) + offset
    # not claimable before its time, claimable after
    assert first not in [d.id for d in claimable(store, now=got - timedelta(seconds=1))]
    assert first in [d.id for d in claimable(store, now=got)]


# --------------------------------------------------------------------------------------------- triggers


def test_schedules_are_cron_or_interval() -> None:
    trigger, description = plan.parse_schedule("0 2 * * *", UTC)
    assert trigger.get_next_fire_time(None, T0) == datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
    assert description == "cron 0 2 * * * UTC"
    trigger, description = plan.parse_schedule("12h", UTC)
    assert trigger.get_next_fire_time(None, T0) == datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # from the anchor
    assert description.startswith("every 43200s from 2024-01-01")
    for bad, words in (("0 25 * * *", "not a cron expression"), ("soon", "neither"), ("10s", "too short")):
        with pytest.raises(ValueError, match=words):
            plan.parse_schedule(bad, UTC)


def test_desired_jobs_from_the_job_files(config: Config) -> None:
    specs, problems = plan.desired_jobs(config, "/cfg", UTC, attest=False)
    assert problems == []
    by_id = {spec.id: spec for spec in specs}
    assert sorted(by_id) == [
        "drill:acme/t0",
        "drill:acme/t1",
        "integrity:acme/t0",
        "integrity:acme/t1",
        "policies",
        "probe:acme/t0",
        "probe:acme/t1",
    ]
    assert by_id["drill:acme/t0"].args == ("/cfg", "acme/t0", "sample")
    assert by_id["integrity:acme/t1"].args == ("/cfg", "acme/t1", "integrity")
    assert by_id["probe:acme/t0"].func == "preuve.scheduler.jobs:refresh_snapshots"
    # probes of different targets are spread over the probe interval
    assert by_id["probe:acme/t0"].description != by_id["probe:acme/t1"].description
    with_attest, _ = plan.desired_jobs(config, "/cfg", UTC, attest=True)
    attest = next(spec for spec in with_attest if spec.id == "attest")
    # every morning (idempotent: it issues the month once and retries failed e-mails the next day)
    assert attest.trigger.get_next_fire_time(None, T0) == datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    assert attest.args == ("/cfg", "UTC")


def test_the_attestation_run_is_daily_in_the_daemons_zone_and_attests_its_last_complete_month(config: Config) -> None:
    from zoneinfo import ZoneInfo

    from preuve.reports.monthly import month_just_ended, zone

    tokyo = ZoneInfo("Asia/Tokyo")
    specs, _ = plan.desired_jobs(config, "/cfg", tokyo, attest=True)
    attest = next(spec for spec in specs if spec.id == "attest")
    assert attest.args == ("/cfg", "Asia/Tokyo") and zone("Asia/Tokyo") == tokyo
    first = attest.trigger.get_next_fire_time(None, datetime(2026, 10, 31, 12, 0, tzinfo=UTC))
    assert first == datetime(2026, 11, 1, 6, 0, tzinfo=tokyo)  # 31 October 21:00 UTC
    # seen from Tokyo, October is over on 1 November at 06:00, although it is still 31 October in UTC
    assert month_just_ended(first, tokyo) == "2026-10" and month_just_ended(first) == "2026-09"
    new_york = ZoneInfo("America/New_York")
    assert month_just_ended(datetime(2026, 11, 1, 3, 0, tzinfo=UTC), new_york) == "2026-09"  # 23:00 on 31 Oct
    assert month_just_ended(datetime(2026, 11, 1, 6, 0, tzinfo=new_york), new_york) == "2026-10"


def test_a_broken_schedule_is_a_located_problem(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"drill": "every night"}))
    _specs, problems = plan.desired_jobs(config, str(tmp_path), UTC, attest=False)
    assert len(problems) == 1  # one per client, not one per target
    assert "acme.yaml: schedule.drill: 'every night'" in problems[0]


# --------------------------------------------------------------------------- reconcile, misfire, coalesce


def test_reconcile_adds_replaces_and_removes_by_job_id(config: Config, calls: list[Any]) -> None:
    scheduler = manual_scheduler()
    grace = timedelta(hours=6)
    specs, _ = plan.desired_jobs(config, "/cfg", UTC, attest=False)
    done = plan.reconcile(scheduler, specs, grace)
    assert len(done.added) == len(specs) and not done.replaced and not done.removed
    for job in scheduler.get_jobs():
        assert job.misfire_grace_time == 6 * 3600  # explicit, never APScheduler's one-second default
        assert job.coalesce is True
        assert job.max_instances == 1
    # same configuration: nothing touched, stored next run times kept
    next_runs = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    again = plan.reconcile(scheduler, specs, grace)
    assert again.unchanged == len(specs) and not (again.added or again.replaced or again.removed)
    assert {job.id: job.next_run_time for job in scheduler.get_jobs()} == next_runs

    # acme/t1 dropped, acme/t0's drill moved to 03:00, a grace change replaces everything
    changed = load_config(write_config(config.directory, {"drill": "0 3 * * *", "integrity": "7d"}, targets=1))
    specs2, _ = plan.desired_jobs(changed, "/cfg", UTC, attest=False)
    done = plan.reconcile(scheduler, specs2, grace)
    assert sorted(done.removed) == ["drill:acme/t1", "integrity:acme/t1", "probe:acme/t1"]
    assert done.replaced == ["drill:acme/t0"]
    assert sorted(job.id for job in scheduler.get_jobs()) == sorted(spec.id for spec in specs2)
    job = scheduler.get_job("drill:acme/t0")
    assert job.trigger.get_next_fire_time(None, T0) == datetime(2025, 3, 3, 3, 0, tzinfo=UTC)
    done = plan.reconcile(scheduler, specs2, timedelta(hours=1))
    assert len(done.replaced) == len(specs2)
    assert {j.misfire_grace_time for j in scheduler.get_jobs()} == {3600}
    scheduler.shutdown()


def _drill_only(config: Config) -> list[plan.JobSpec]:
    specs, _ = plan.desired_jobs(config, "/cfg", UTC, attest=False)
    return [spec for spec in specs if spec.id == "drill:acme/t0"]


@pytest.mark.parametrize(("back_at", "runs"), [(datetime(2025, 3, 3, 7, 30, tzinfo=UTC), 1), (datetime(2025, 3, 3, 8, 30, tzinfo=UTC), 0)])  # fmt: skip
def test_a_drill_missed_during_a_reboot_runs_once_within_the_grace(
    config: Config, calls: list[Any], monkeypatch: pytest.MonkeyPatch, back_at: datetime, runs: int
) -> None:
    """Down from 01:00 until ``back_at``: the 02:00 drill runs once if back within 6 h, else it is skipped."""
    clock = Frozen(monkeypatch, T0)
    scheduler = manual_scheduler()
    plan.reconcile(scheduler, _drill_only(config), timedelta(hours=6))
    assert scheduler.get_job("drill:acme/t0").next_run_time == datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
    clock.now = back_at
    scheduler._process_jobs()
    assert calls == [("/cfg", "acme/t0", "sample")] * runs
    # either way the schedule moved on to the next night
    assert scheduler.get_job("drill:acme/t0").next_run_time == datetime(2025, 3, 4, 2, 0, tzinfo=UTC)
    scheduler.shutdown()


def test_several_missed_runs_coalesce_into_one(
    tmp_path: Path, calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path, {"drill": "1h"}, targets=1))
    clock = Frozen(monkeypatch, T0)
    scheduler = manual_scheduler()
    plan.reconcile(scheduler, _drill_only(config), timedelta(hours=6))
    job = scheduler.get_job("drill:acme/t0")
    clock.now = T0 + timedelta(hours=5, minutes=30)
    assert len(job._get_run_times(clock.now)) == 6  # 01:00 to 06:00 were missed...
    scheduler._process_jobs()
    assert len(calls) == 1  # ...and the drill is queued once
    assert scheduler.get_job("drill:acme/t0").next_run_time == T0 + timedelta(hours=6)  # 07:00
    scheduler.shutdown()


def test_events_of_a_missed_run(config: Config, calls: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The grace check itself (APScheduler's run_job), on a job as reconcile made it."""
    from apscheduler.executors.base import run_job

    clock = Frozen(monkeypatch, T0)
    scheduler = manual_scheduler()
    plan.reconcile(scheduler, _drill_only(config), timedelta(hours=6))
    job = scheduler.get_job("drill:acme/t0")
    fire = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
    clock.now = fire + timedelta(hours=5, minutes=59)
    assert [e.code for e in run_job(job, "default", [fire], "test")] == [EVENT_JOB_EXECUTED]
    clock.now = fire + timedelta(hours=6, minutes=1)
    assert [e.code for e in run_job(job, "default", [fire], "test")] == [EVENT_JOB_MISSED]
    assert len(calls) == 1
    scheduler.shutdown()


def test_jobs_persist_in_the_database_and_a_restart_keeps_a_missed_run(
    config: Config, store: Store, calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's scheduler (SQLAlchemyJobStore on the results database): down from 01:00 to 05:00, the restarted
    daemon finds its jobs unchanged, with the missed 02:00 drill still due."""
    from preuve.scheduler.daemon import JOB_TABLE, _make_scheduler

    assert JOB_TABLE == "apscheduler_jobs"

    clock = Frozen(monkeypatch, T0)
    specs, _ = plan.desired_jobs(config, "/cfg", UTC, attest=False)
    first = _make_scheduler(store, UTC, lambda ok: None)
    first.start(paused=True)
    assert len(plan.reconcile(first, specs, timedelta(hours=6)).added) == len(specs)
    first.shutdown(wait=False)
    with store.connection() as connection:
        assert connection.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar_one() == len(specs)

    clock.now = T0 + timedelta(hours=4)
    second = _make_scheduler(store, UTC, lambda ok: None)
    second.start(paused=True)
    done = plan.reconcile(second, specs, timedelta(hours=6))
    assert done.unchanged == len(specs) and not (done.added or done.replaced or done.removed)
    job = second.get_job("drill:acme/t0")
    assert job.next_run_time == datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # missed, kept: it runs once on resume
    assert job.func_ref == "preuve.scheduler.jobs:enqueue_due_drill" and job.args == ("/cfg", "acme/t0", "sample")
    second.shutdown(wait=False)
    with store.connection() as connection:  # the scheduler left the shared engine usable
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


# -------------------------------------------------------------------------------------- dispatcher limits


def _slot(drill_id: int, repo: str, host: str) -> Slot:
    return Slot(drill_id, repo, host)


def test_limits_global_per_host_and_per_repository() -> None:
    candidates = [
        _slot(1, "nas1:/a", "nas1"),
        _slot(2, "nas1:/b", "nas1"),  # second on nas1: over the per-host limit of 1
        _slot(3, "s3:/x", "s3.example"),
        _slot(4, "s3:/x", "s3.example"),  # same repository as 3
        _slot(5, "rest:/y", "rest.example"),
        _slot(6, "local:/z", "mount:/"),
    ]
    chosen = select_claimable(candidates, [], Limits(max_total=3, max_per_host=1))
    assert [s.drill_id for s in chosen] == [1, 3, 5]  # oldest first, skipping what does not fit, up to 3
    chosen = select_claimable(candidates, [], Limits(max_total=10, max_per_host=2))
    assert [s.drill_id for s in chosen] == [1, 2, 3, 5, 6]  # never two on one repository
    # what already runs counts: nas1 is busy, one slot of two is taken
    busy = [_slot(99, "nas1:/c", "nas1")]
    chosen = select_claimable(candidates, busy, Limits(max_total=2, max_per_host=1))
    assert [s.drill_id for s in chosen] == [3]
    # a repository already being drilled is not drilled again
    chosen = select_claimable(candidates, [_slot(98, "s3:/x", "s3.example")], Limits(max_total=5, max_per_host=5))
    assert 3 not in [s.drill_id for s in chosen] and 4 not in [s.drill_id for s in chosen]
    assert select_claimable(candidates, [_slot(i, f"r{i}", f"h{i}") for i in range(4)], Limits(4, 1)) == []


def test_storage_host_and_repository_identity(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, targets=1))
    target = config.target("acme/t0")
    assert locks.repo_key(config, target) == "local:/srv/repos/t0"
    assert locks.storage_host(config, target).startswith("mount:/")


# ------------------------------------------------------------------------------------ locks and the lease


def test_repository_lock_acquire_renew_expire_and_steal(store: Store) -> None:
    lease = timedelta(minutes=2)
    key = "local:/srv/repos/t0"
    assert locks.acquire(store, key, "1@a/x", "drill #1", lease, now=T0)
    assert not locks.acquire(store, key, "2@b/y", "drill #2", lease, now=T0 + timedelta(minutes=1))
    info = locks.lock_holder(store, key)
    assert info is not None and info.holder == "1@a/x" and info.purpose == "drill #1"
    assert info.describe() == "1@a (drill #1) since 2025-03-03 01:00:00 UTC"
    # renewed by its holder: still held past the first lease
    assert locks.renew(store, key, "1@a/x", lease, now=T0 + timedelta(minutes=1, seconds=30))
    assert not locks.acquire(store, key, "2@b/y", "drill #2", lease, now=T0 + timedelta(minutes=3))
    assert not locks.renew(store, key, "2@b/y", lease, now=T0 + timedelta(minutes=3))  # not the holder
    # the holder stops renewing (it died): once the lease ran out, the next one takes it over
    assert locks.acquire(store, key, "2@b/y", "drill #2", lease, now=T0 + timedelta(minutes=3, seconds=31))
    assert not locks.renew(store, key, "1@a/x", lease, now=T0 + timedelta(minutes=4))  # the old holder lost it
    assert not locks.release(store, key, "1@a/x")
    assert locks.release(store, key, "2@b/y")
    assert locks.lock_holder(store, key) is None
    assert locks.acquire(store, key, "3@c/z", "probe", lease, now=T0 + timedelta(minutes=5))


def test_an_expired_lease_nobody_took_is_renewed(store: Store) -> None:
    lease = timedelta(seconds=30)
    assert locks.acquire(store, "k", "1@a/x", "", lease, now=T0)
    assert locks.renew(store, "k", "1@a/x", lease, now=T0 + timedelta(minutes=5))  # database was away a while
    assert not locks.acquire(store, "k", "2@b/y", "", lease, now=T0 + timedelta(minutes=5, seconds=10))


def test_two_holders_of_one_process_exclude_each_other(store: Store) -> None:
    first, second = locks.new_holder(), locks.new_holder()
    assert locks.holder_worker(first) == locks.holder_worker(second) == worker_id()
    assert locks.acquire(store, "k", first, "drill", timedelta(minutes=1))
    assert not locks.acquire(store, "k", second, "probe", timedelta(minutes=1))


def test_repo_lease_waits_then_names_the_holder(store: Store) -> None:
    assert locks.acquire(store, "k", "7@nas-admin/x", "drill #3 of acme/t0", timedelta(minutes=5))
    lease = locks.RepoLease(store, "k", "cli", timedelta(minutes=1))
    told: list[locks.LeaseInfo] = []
    with pytest.raises(locks.RepoBusy, match=r"in use by 7@nas-admin \(drill #3 of acme/t0\) since") as caught:
        lease.wait_or_raise("acme/t0", timedelta(milliseconds=100), on_wait=told.append)
    assert caught.value.failure_class.value == "repo-locked"
    assert [i.holder for i in told] == ["7@nas-admin/x"]
    assert not lease.held


def test_heartbeat_reports_a_lost_lock() -> None:
    lost = threading.Event()
    answers = iter([True, False])
    beat = locks.Heartbeat(lambda: next(answers), timedelta(milliseconds=10), on_lost=lost.set)
    beat.start()
    assert lost.wait(5)
    beat.stop()
    assert beat.lost


def test_scheduler_lease_one_daemon_at_a_time(store: Store) -> None:
    lease = timedelta(minutes=2)
    assert locks.acquire_scheduler(store, "1@a/x", lease, now=T0)
    assert not locks.acquire_scheduler(store, "2@b/y", lease, now=T0 + timedelta(seconds=1))
    assert locks.renew_scheduler(store, "1@a/x", lease, now=T0 + timedelta(minutes=1))
    assert not locks.acquire_scheduler(store, "2@b/y", lease, now=T0 + timedelta(minutes=2))
    # daemon 1 stops renewing: daemon 2 takes over once the lease ran out, and daemon 1 learns it lost it
    assert locks.acquire_scheduler(store, "2@b/y", lease, now=T0 + timedelta(minutes=3, seconds=1))
    assert not locks.renew_scheduler(store, "1@a/x", lease, now=T0 + timedelta(minutes=3, seconds=2))
    holder = locks.scheduler_holder(store)
    assert holder is not None and holder.holder == "2@b/y"
    assert not locks.release_scheduler(store, "1@a/x")
    assert locks.release_scheduler(store, "2@b/y")


# ------------------------------------------------------------------------------------------ crash recovery


def _running_as(store: Store, ref: str, worker: str) -> int:
    drill_id = create_drill(store, ref, DrillKind.SAMPLE, "alice@srv", status=DrillStatus.RUNNING)
    with store.connection(write=True) as connection:
        connection.execute(text("UPDATE drillrun SET worker = :w WHERE id = :i"), {"w": worker, "i": drill_id})
    return drill_id


def test_recovery_interrupts_and_retries_once(store: Store) -> None:
    dead = _running_as(store, "acme/t0", "4242@thishost")
    alive = _running_as(store, "acme/t1", "4343@thishost")
    remote = _running_as(store, "acme/t1", "77@otherhost")
    # 4343 holds a live lock; the remote worker's lock lease has run out; 4242's process is gone
    now = datetime.now(UTC)
    assert locks.acquire(store, "k1", "4343@thishost/a", "drill", timedelta(minutes=2), now=now)
    assert locks.acquire(store, "k2", "4242@thishost/b", "drill", timedelta(minutes=2), now=now)
    assert locks.acquire(store, "k3", "77@otherhost/c", "drill", timedelta(minutes=2), now=now - timedelta(hours=1))

    def pid_alive(pid: int) -> bool:
        return pid == 4343

    result = recover(store, pid_alive=pid_alive, host="thishost")
    assert sorted(result.interrupted) == sorted([dead, remote])
    assert result.released_locks == ["k2"]  # the dead local process's lock is freed at once
    for drill_id in (dead, remote):
        detail = get_drill(store, drill_id)
        assert detail is not None and detail.status is DrillStatus.INTERRUPTED
        retry = get_drill(store, result.retries[drill_id])
        assert retry is not None and retry.status is DrillStatus.QUEUED
        assert retry.requested_by == f"{RETRY_PREFIX}{drill_id}" and retry.kind is DrillKind.SAMPLE
    alive_detail = get_drill(store, alive)
    assert alive_detail is not None and alive_detail.status is DrillStatus.RUNNING
    # a second pass (another daemon, or the next start) finds nothing more to do: no duplicate retry
    again = recover(store, pid_alive=pid_alive, host="thishost")
    assert again.interrupted == [] and again.retries == {}
    assert len(list_drills(store, limit=None)) == 5


def test_a_retry_that_dies_is_not_retried_again(store: Store) -> None:
    first = _running_as(store, "acme/t0", "4242@thishost")
    retry_id = recover(store, pid_alive=lambda pid: False, host="thishost").retries[first]
    with store.connection(write=True) as connection:
        connection.execute(
            text("UPDATE drillrun SET status = 'running', worker = '4545@thishost' WHERE id = :i"), {"i": retry_id}
        )
    result = recover(store, pid_alive=lambda pid: False, host="thishost")
    assert result.interrupted == [retry_id] and result.retries == {}


def test_recovery_leaves_this_process_drills_alone(store: Store) -> None:
    mine = create_drill(store, "acme/t0", DrillKind.SAMPLE, "x", status=DrillStatus.RUNNING)  # worker: us
    assert recover(store, own=lambda drill_id: drill_id == mine).interrupted == []
    # ours by name but unknown to this process: left by an earlier process that had our pid
    assert recover(store, own=lambda drill_id: False).interrupted == [mine]


def test_enqueue_records_who_and_options(store: Store) -> None:
    drill_id = enqueue_drill(store, "acme/t1", "integrity", "bob@srv", options={"subset": "2/5", "snapshot": None})
    detail = get_drill(store, drill_id)
    assert detail is not None and detail.status is DrillStatus.QUEUED
    assert detail.requested_by == "bob@srv" and detail.options == {"subset": "2/5"}
    assert [d.id for d in claimable(store)] == [drill_id]


# ----------------------------------------------------------------------------------------------- cancelling


def test_a_cancelled_scope_ends_its_process_and_raises() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    scope = execute.CancelScope("drill #1")
    other = execute.CancelScope("drill #2")
    threading.Timer(0.2, scope.cancel, args=("Preuve was stopped",)).start()
    started = time.monotonic()
    with execute.cancel_scope(scope), pytest.raises(execute.Cancelled, match="Preuve was stopped"):
        execute.run(("sleep", "30"), env=env, deadline_s=60)
    assert time.monotonic() - started < 10
    assert execute.running_groups() == []
    with execute.cancel_scope(scope), pytest.raises(execute.Cancelled):
        execute.run(("true",), env=env, deadline_s=10)  # nothing new starts in a cancelled scope
    with execute.cancel_scope(other):
        assert execute.run(("true",), env=env, deadline_s=10).exit_code == 0  # other drills go on


def test_missing_alerts_hooks_are_skipped() -> None:
    assert hooks.hook("no_such_hook", "preuve.no_such_module") is None
    assert hooks.call("anything", 1, module_name="preuve.no_such_module") is False
