"""Which scheduled jobs a configuration asks for, and bringing APScheduler's job store in line with them.

Jobs are data: an id ("drill:acme/nas"), a module-level function named by reference, string arguments (ids only:
the configuration folder, a target ref, a kind) and a trigger. Their persisted copies live in the database
(APScheduler's SQLAlchemyJobStore), so :func:`reconcile` changes only what differs: a job left untouched keeps its
stored next run time, which is how a drill missed while the server rebooted still runs once when the daemon is
back (within ``misfire_grace``).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from preuve.config.loader import Config
from preuve.config.units import parse_duration
from preuve.scheduler.queue import jitter_offset

log = logging.getLogger("preuve.scheduler")

JOBS_MODULE = "preuve.scheduler.jobs"
# Interval jobs count from this fixed instant, not from the daemon's start: the same configuration gives the same
# fire times after every restart and on every server (and an unchanged job compares equal in reconcile).
ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)
# The attestation run: every day at 06:00 local time, after the night's drills. It issues the month that just
# ended once (on the 1st, or the 2nd east of UTC) and retries failed e-mails daily (preuve.reports.monthly).
ATTEST_HOUR = 6


@dataclass(frozen=True)
class JobSpec:
    id: str  # "drill:acme/nas", "integrity:acme/nas", "probe:acme/nas", "policies", "attest"
    func: str  # "preuve.scheduler.jobs:enqueue_due_drill"
    args: tuple[str, ...]
    trigger: BaseTrigger = field(compare=False)
    # Canonical text of the trigger, stored as the job's name: a job whose description changed is replaced.
    description: str


def parse_schedule(text: str, tz: tzinfo, *, offset: timedelta = timedelta(0)) -> tuple[BaseTrigger, str]:
    """A trigger from a job file's schedule: a cron expression ("0 2 * * *", in ``tz``) or an interval ("12h").

    Intervals count from :data:`ANCHOR` plus ``offset``. ValueError says what is wrong.
    """
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    if " " in text:
        try:
            trigger = CronTrigger.from_crontab(text, timezone=tz)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f'{text!r} is not a cron expression (minute hour day month weekday, like "0 2 * * *"): {exc}'
            ) from None
        return trigger, f"cron {' '.join(text.split())} {tz}"
    try:
        every = parse_duration(text)
    except ValueError as exc:
        raise ValueError(
            f'{text!r} is neither a cron expression (like "0 2 * * *") nor an interval (like 12h): {exc}'
        ) from None
    if every < timedelta(minutes=1):
        raise ValueError(f"{text!r} is too short: drills and checks run at most once a minute")
    return interval(every, offset)


def interval(every: timedelta, offset: timedelta = timedelta(0)) -> tuple[BaseTrigger, str]:
    start = ANCHOR + offset
    seconds = int(every.total_seconds())
    trigger = IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC)
    return trigger, f"every {seconds}s from {start.isoformat()}"


def zone_name(tz: tzinfo) -> str:
    """The IANA name of ``tz`` ("Europe/Paris", "UTC"), as the attestation job receives it ("" if it has none:
    the job then uses the server's zone)."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    return "UTC" if tz in (UTC,) else ""


def attest_available() -> bool:
    """Whether the monthly attestation exists in this installation (``preuve.reports.monthly.run_monthly``)."""
    try:
        module = importlib.import_module("preuve.reports.monthly")
    except ImportError:
        return False
    return callable(getattr(module, "run_monthly", None))


def desired_jobs(config: Config, config_dir: str, tz: tzinfo, *, attest: bool) -> tuple[list[JobSpec], list[str]]:
    """Every job the configuration asks for, and the problems (file, key, what is wrong) that refuse it."""
    daemon = config.settings.daemon
    specs: list[JobSpec] = []
    problems: list[str] = []
    probe_every = parse_duration(daemon.probe_every)
    for target in config.targets():
        if not target.spec.enabled:
            continue
        ref = target.ref
        schedule = target.client.job.schedule
        for key, kind, text in (("drill", "sample", schedule.drill), ("integrity", "integrity", schedule.integrity)):
            if text is None:
                continue
            try:
                trigger, description = parse_schedule(text, tz)
            except ValueError as exc:
                problem = f"{target.client.file}: schedule.{key}: {exc}"
                if problem not in problems:  # one per client, not one per target
                    problems.append(problem)
                continue
            specs.append(JobSpec(f"{key}:{ref}", f"{JOBS_MODULE}:enqueue_due_drill", (config_dir, ref, kind),
                                 trigger, description))  # fmt: skip
        # Probes are spread over their interval by the same hash as drills, so 1,000 targets do not probe at once.
        trigger, description = interval(probe_every, jitter_offset(ref, probe_every))
        specs.append(
            JobSpec(f"probe:{ref}", f"{JOBS_MODULE}:refresh_snapshots", (config_dir, ref), trigger, description)
        )
    trigger, description = interval(parse_duration(daemon.policy_every))
    specs.append(JobSpec("policies", f"{JOBS_MODULE}:evaluate_policies", (config_dir,), trigger, description))
    if attest:
        trigger = CronTrigger(hour=ATTEST_HOUR, minute=0, timezone=tz)
        specs.append(
            JobSpec("attest", f"{JOBS_MODULE}:monthly_attestation", (config_dir, zone_name(tz)), trigger,
                    f"daily {ATTEST_HOUR:02d}:00 {tz}")
        )  # fmt: skip
    return specs, problems


@dataclass
class Reconciled:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    def __str__(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.replaced)} replaced, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged"
        )


def _same(job: Any, spec: JobSpec, grace_s: int) -> bool:
    return bool(
        job.func_ref == spec.func
        and tuple(job.args) == spec.args
        and job.name == spec.description
        and job.misfire_grace_time == grace_s
        and job.coalesce is True
        and job.max_instances == 1
    )


def reconcile(scheduler: Any, specs: list[JobSpec], misfire_grace: timedelta) -> Reconciled:
    """Make the scheduler's jobs exactly ``specs``: add the new, replace the changed, remove the others.

    Every job gets misfire_grace_time (explicitly: APScheduler's default of one second would drop a drill missed
    during a reboot), coalesce (several missed runs run once) and max_instances=1.
    """
    grace_s = max(1, int(misfire_grace.total_seconds()))
    existing = {job.id: job for job in scheduler.get_jobs()}
    done = Reconciled()
    for spec in specs:
        job = existing.pop(spec.id, None)
        if job is not None and _same(job, spec, grace_s):
            done.unchanged += 1
            continue
        scheduler.add_job(
            spec.func,
            trigger=spec.trigger,
            args=list(spec.args),
            id=spec.id,
            name=spec.description,
            misfire_grace_time=grace_s,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )
        (done.replaced if job is not None else done.added).append(spec.id)
    for job_id in existing:
        scheduler.remove_job(job_id)
        done.removed.append(job_id)
    return done
