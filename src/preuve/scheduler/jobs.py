"""The functions APScheduler runs: module-level, arguments that are ids only (strings), so that the persisted jobs
survive restarts and upgrades (a pickled job names ``preuve.scheduler.jobs:enqueue_due_drill`` and three strings,
nothing else).

Each reads the configuration and store of its configuration folder: the daemon installs the ones it runs with
(:func:`install`), so a job file broken on disk does not break the jobs while the daemon keeps its last good
configuration; called outside a daemon, a job loads and opens its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from preuve.config.loader import Config, load_config
from preuve.config.units import parse_duration
from preuve.drills.result import DrillKind, DrillStatus
from preuve.errors import ConfigurationError
from preuve.restic import execute
from preuve.scheduler import hooks
from preuve.scheduler.queue import enqueue_drill, jitter_offset
from preuve.store.db import Store
from preuve.store.records import active_drills

log = logging.getLogger("preuve.scheduler")

SCHEDULED_BY = "schedule"  # requested_by of the drills the scheduler queues

_installed: dict[str, tuple[Config, Store]] = {}
_installed_lock = threading.Lock()


def _key(config_dir: str | Path) -> str:
    return str(Path(config_dir).resolve())


def install(config_dir: str | Path, config: Config, store: Store) -> None:
    """Make jobs for ``config_dir`` use this configuration and store (the daemon's, replaced on reload)."""
    with _installed_lock:
        _installed[_key(config_dir)] = (config, store)


def uninstall(config_dir: str | Path) -> None:
    with _installed_lock:
        _installed.pop(_key(config_dir), None)


@contextmanager
def context(config_dir: str) -> Iterator[tuple[Config, Store]]:
    with _installed_lock:
        found = _installed.get(_key(config_dir))
    if found is not None:
        yield found
        return
    config = load_config(Path(config_dir))
    store = Store.open(config.database_url)
    try:
        yield config, store
    finally:
        store.close()


def enqueue_due_drill(config_dir: str, ref: str, kind: str) -> int | None:
    """A scheduled drill is due: queue it, not before now plus the target's jitter. Returns its id.

    Nothing is queued while a drill of the same kind is still queued for the target (a slow queue must not pile
    up copies of the same request). "Now" is the fire time when the job runs on time; for a run caught up after
    a reboot it is later than the missed fire time, so a burst of caught-up drills spreads over the jitter too.
    """
    try:
        with context(config_dir) as (config, store):
            try:
                target = config.target(ref)
            except ConfigurationError as exc:
                log.warning("scheduled drill of %s skipped: %s", ref, "; ".join(exc.problems))
                return None
            drill_kind = DrillKind(kind)
            pending = [d for d in active_drills(store, DrillStatus.QUEUED, target=target.ref) if d.kind is drill_kind]
            if pending:
                log.info(
                    "scheduled %s drill of %s not queued: drill %d is still waiting",
                    drill_kind.value,
                    ref,
                    pending[0].id,
                    extra={"event": "drill.already_queued", "target": ref, "drill_id": pending[0].id},
                )
                return None
            now = datetime.now(UTC)
            not_before = now + jitter_offset(target.ref, parse_duration(config.settings.daemon.jitter))
            drill_id = enqueue_drill(store, target.ref, drill_kind, SCHEDULED_BY, not_before=not_before)
            log.info(
                "drill %d of %s queued by the schedule (%s), not before %s",
                drill_id,
                ref,
                drill_kind.value,
                not_before.strftime("%H:%M:%S UTC"),
                extra={"event": "drill.queued", "drill_id": drill_id, "target": ref, "kind": drill_kind.value},
            )
            return drill_id
    except SQLAlchemyError as exc:
        log.warning("scheduled drill of %s not queued: database unavailable (%s)", ref, type(exc).__name__)
        raise


def refresh_snapshots(config_dir: str, ref: str) -> int | None:
    """Probe a target and record its snapshots (the history RPO rules read). Returns the probe id.

    Skipped when the repository is busy (a drill is running: it records the snapshot listing itself).
    """
    from preuve.targets.refresh import probe_locked

    with context(config_dir) as (config, store):
        try:
            target = config.target(ref)
        except ConfigurationError as exc:
            log.warning("snapshot refresh of %s skipped: %s", ref, "; ".join(exc.problems))
            return None
        try:
            # A scope of its own: a daemon stopping ends the probe's restic without recording a failed probe
            # (a shutdown says nothing about the repository).
            with execute.cancel_scope(execute.CancelScope(f"probe of {ref}")):
                done = probe_locked(config, store, target, wait=None, purpose=f"snapshot refresh of {ref} (daemon)")
        except execute.Cancelled as exc:
            log.info("snapshot refresh of %s stopped (%s): not recorded", ref, exc.reason)
            return None
        if done is None:
            log.info("snapshot refresh of %s skipped: its repository is in use", ref)
            return None
        probe_id, result = done
        if result.ok:
            log.info(
                "probe of %s: %d snapshots",
                ref,
                len(result.snapshots),
                extra={"event": "probe.ok", "target": ref, "probe_id": probe_id},
            )
        else:
            log.warning(
                "probe of %s failed (%s): %s",
                ref,
                result.failure_class,
                result.message,
                extra={"event": "probe.failed", "target": ref, "probe_id": probe_id},
            )
        return probe_id


def evaluate_policies(config_dir: str) -> None:
    """Evaluate every client's policy now; each report goes to the alerts (which act on verdict changes)."""
    from preuve.policies.evaluate import evaluate
    from preuve.policies.gather import gather
    from preuve.policies.period import Period

    with context(config_dir) as (config, store):
        period = Period.ending()
        for client_id in sorted(config.clients):
            try:
                policy = config.client_policy(client_id)
                report = evaluate(policy, gather(config, store, client_id, until=period.end), period)
            except SQLAlchemyError:
                raise  # the database is away: the next evaluation will do them all
            except Exception:
                log.exception("policy evaluation of %s failed", client_id)
                continue
            log.info(
                "policy %s of %s: %s",
                report.policy,
                client_id,
                report.verdict.value,
                extra={"event": "policy.evaluated", "client": client_id, "verdict": report.verdict.value},
            )
            hooks.call("on_policy_report", config, store, report)


def monthly_attestation(config_dir: str, tz_name: str = "") -> None:
    """Every morning: the attestation run (preuve.reports.monthly.run_monthly), in the daemon's time zone. It
    issues the month that just ended once, and retries the e-mails that failed."""
    from preuve.reports.monthly import run_monthly

    log.info("attestation run starting", extra={"event": "attest.started"})
    run_monthly(config_dir, tz_name or None)
    log.info("attestation run done", extra={"event": "attest.finished"})
