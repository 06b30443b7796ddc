"""Prometheus metrics: a text endpoint on ``[metrics] listen`` (default 127.0.0.1:9464), read from the store.

Nothing is counted in memory: at scrape time a collector reads the results store with a handful of grouped queries
(the reading is kept ~10 s, so several Prometheus servers scraping at once cost one reading), so the figures are
the same whichever process wrote them (daemon, technician's CLI) and survive restarts.

Per target (labels ``client``, ``target``, ``kind``, ``location``, ``media``; ``drill`` is ``restore`` for sampled
and full drills, ``integrity`` for `restic check` runs):

- ``preuve_target_info`` 1 for every configured target;
- ``preuve_last_drill_status{drill, status}`` 1, ``status`` being that of the latest finished drill (``passed``,
  ``failed``, ``error``, ``interrupted``; ``none`` before any). Only the current status has a sample (1,000 targets
  would otherwise make 10,000 lines of zeros): alert on ``preuve_last_drill_status{status=~"failed|error"}``;
- ``preuve_last_drill_finished_timestamp_seconds{drill}``;
- ``preuve_newest_snapshot_age_seconds`` and ``preuve_newest_snapshot_timestamp_seconds``;
- ``preuve_estimated_full_restore_seconds``: the latest restore drill's estimate, scaled to the newest snapshot's
  size when a probe measured it (as the RTO rule does);
- ``preuve_integrity_coverage_ratio``: distinct parts n of the latest rotation t read by passed integrity runs
  within the client's policy window, over t (as the integrity-coverage rule counts them).

Per client and rule: ``preuve_policy_verdict{client, rule, target, verdict}`` 1, ``verdict`` being the current one
(``met``, ``violated``, ``unknown``) from the rule's latest flip (``target`` is empty for client-wide rules).

Daemon-wide: ``preuve_up``, ``preuve_build_info{version}``, ``preuve_store_up`` (0 while the database cannot be
read), ``preuve_queued_drills``, ``preuve_running_drills``, ``preuve_drill_failures_30d{failure_class}`` (failed
and error drills finished in the last 30 days), ``preuve_alert_deliveries{status}``, and the standard
``process_*`` metrics of the daemon's own process.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, case, func, inspect, literal_column, or_, select, table
from sqlalchemy import column as sa_column
from sqlalchemy.exc import SQLAlchemyError

from preuve import __version__, redact
from preuve.config.loader import Config
from preuve.drills.integrity import Subset
from preuve.drills.result import DrillStatus
from preuve.errors import FailureClass, PreuveError
from preuve.policies.model import IntegrityRules
from preuve.store.db import Store
from preuve.store.models import metadata

log = logging.getLogger(__name__)

CACHE_S = 10.0  # a reading of the store serves the scrapes of the next 10 s
FAILURE_WINDOW = timedelta(days=30)
RECENT = timedelta(days=10)  # drills requested within this are read at every scrape (index on requested_at)
RUN_MARGIN = timedelta(days=2)  # longer than any drill or integrity run takes from request to finish
OLD_CACHE_S = 3600.0  # what older rows said of a target without recent drills is kept this long
RESTORE_KINDS = ("sample", "full")
FAILURE_STATUSES = (DrillStatus.FAILED.value, DrillStatus.ERROR.value)
FINAL_STATUSES = tuple(s.value for s in DrillStatus if s.final)
DRILL_GROUPS = ("restore", "integrity")
TARGET_LABELS = ("client", "target", "kind", "location", "media")

_TARGET = metadata.tables["target"]
_DRILL = metadata.tables["drillrun"]
_SNAPSHOT = metadata.tables["snapshotseen"]
# Tables of migration 0003 (flips and alert deliveries), read only when the database has them.
_FLIP = table(
    "flip",
    sa_column("id"),
    sa_column("client_id"),
    sa_column("target_ref"),
    sa_column("subject"),
    sa_column("kind"),
    sa_column("new_state"),
)
_DELIVERY = table("alertdelivery", sa_column("status"))


class MetricsError(PreuveError):
    """The metrics endpoint cannot listen where it is configured to."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureClass.INTERNAL, message)


# ------------------------------------------------------------------------------------------------ the reading


@dataclass(frozen=True)
class TargetRow:
    id: int
    ref: str
    client: str
    name: str
    kind: str
    location: str
    media: str

    @property
    def labels(self) -> list[str]:
        return [self.client, self.name, self.kind, self.location, self.media]


@dataclass(frozen=True)
class LastDrill:
    status: str
    finished_at: datetime


@dataclass(frozen=True)
class Verdict:
    client: str
    rule: str
    target: str  # the target's name, "" for a client-wide rule
    verdict: str


@dataclass
class Reading:
    """What one scrape read from the store."""

    at: datetime
    targets: list[TargetRow] = field(default_factory=list)
    last_drill: dict[tuple[int, str], LastDrill] = field(default_factory=dict)  # (target id, drill group)
    newest_snapshot: dict[int, datetime] = field(default_factory=dict)
    estimate_s: dict[int, float] = field(default_factory=dict)
    coverage: dict[int, float] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    queued: int = 0
    running: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] | None = None  # None: no alert tables in this database


def read_store(store: Store, config: Config, now: datetime, reader: StoreReader | None = None) -> Reading:
    """Every figure the endpoint shows, in one read transaction."""
    return (reader or StoreReader()).read(store, config, now)


class StoreReader:
    """The queries behind a reading, kept cheap on a store with years of drills.

    Drills requested within :data:`RECENT` are read at every scrape, through the index on ``requested_at``: they
    give the last drill, the latest estimate, integrity runs and failures of nearly every target. Only a target
    with no drill that recent needs older rows; those are final and never change (results are append-only), so
    what was found for them is kept :data:`OLD_CACHE_S`.
    """

    def __init__(self) -> None:
        self._old_last: dict[tuple[int, str], tuple[float, LastDrill | None]] = {}
        self._old_estimate: dict[int, tuple[float, _Measured | None]] = {}

    def read(self, store: Store, config: Config, now: datetime) -> Reading:
        reading = Reading(at=now)
        with store.connection() as connection:
            reading.targets = _targets(connection)
            ids = [t.id for t in reading.targets]
            newest = _newest_snapshots(connection)
            reading.newest_snapshot = {tid: newest[tid][0] for tid in ids if tid in newest}
            last, measured, reading.failures = _recent(connection, now)
            self._fill_old(connection, now, ids, last, measured)
            wanted = set(ids)
            reading.last_drill = {key: value for key, value in last.items() if key[0] in wanted}
            for tid in ids:
                found = measured.get(tid)
                if found is not None:
                    reading.estimate_s[tid] = found.scaled(newest[tid][1] if tid in newest else None)
            reading.coverage = _coverage(connection, config, reading.targets, now)
            reading.queued, reading.running = _active(connection)
            tables = _tables(connection)
            if "flip" in tables:
                reading.verdicts = _verdicts(connection, reading.targets)
            if "alertdelivery" in tables:
                reading.deliveries = _deliveries(connection)
        return reading

    def _fill_old(
        self,
        connection: Connection,
        now: datetime,
        ids: list[int],
        last: dict[tuple[int, str], LastDrill],
        measured: dict[int, _Measured],
    ) -> None:
        """Complete ``last`` and ``measured`` for targets without recent drills, from the cache or one query."""
        clock = time.monotonic()
        cut = now - RECENT
        fresh = clock - OLD_CACHE_S
        want_last = [(tid, group) for tid in ids for group in DRILL_GROUPS if (tid, group) not in last]
        want_measured = [tid for tid in ids if tid not in measured]
        stale_last = [key for key in want_last if self._old_last.get(key, (-1.0, None))[0] < fresh]
        stale_measured = [tid for tid in want_measured if self._old_estimate.get(tid, (-1.0, None))[0] < fresh]
        if stale_last or stale_measured:
            targets = sorted({tid for tid, _ in stale_last} | set(stale_measured))
            old_last, old_measured = _older(connection, cut, targets)
            for key in stale_last:
                self._old_last[key] = (clock, old_last.get(key))
            for tid in stale_measured:
                self._old_estimate[tid] = (clock, old_measured.get(tid))
        for key in want_last:
            value = self._old_last.get(key, (0.0, None))[1]
            if value is not None:
                last[key] = value
        for tid in want_measured:
            found = self._old_estimate.get(tid, (0.0, None))[1]
            if found is not None:
                measured[tid] = found


@dataclass(frozen=True)
class _Measured:
    """A restore drill's full-restore time: its estimate, or a passed full restore's own time (as the RTO rule)."""

    seconds: float
    bytes_in_snapshot: int | None

    def scaled(self, current_bytes: int | None) -> float:
        """Scaled to the newest snapshot's size: the repository grows between drills, the throughput does not."""
        if current_bytes and self.bytes_in_snapshot and current_bytes != self.bytes_in_snapshot:
            return self.seconds * current_bytes / self.bytes_in_snapshot
        return self.seconds


def _measured(row: Any) -> _Measured | None:
    if row.kind not in RESTORE_KINDS:
        return None
    if row.estimated_full_restore_s is not None:
        return _Measured(float(row.estimated_full_restore_s), row.bytes_in_snapshot)
    if row.kind == "full" and row.status == DrillStatus.PASSED.value and row.restore_s is not None:
        return _Measured(float(row.restore_s), row.bytes_in_snapshot)
    return None


def _drill_columns() -> tuple[Any, ...]:
    d = _DRILL.c
    return (
        d.target_id,
        d.id,
        d.kind,
        d.status,
        d.finished_at,
        d.failure_class,
        d.estimated_full_restore_s,
        d.restore_s,
        d.bytes_in_snapshot,
    )


def _recent(
    connection: Connection, now: datetime
) -> tuple[dict[tuple[int, str], LastDrill], dict[int, _Measured], dict[str, int]]:
    """From the finished drills requested within RECENT: the last per (target, group) and the latest full-restore
    time per target; and failures by class over FAILURE_WINDOW."""
    last, measured = _ranked(connection, (_DRILL.c.requested_at >= now - RECENT,), None)
    d = _DRILL.c
    rows = connection.execute(
        select(d.failure_class, func.count())
        .where(
            d.requested_at >= now - FAILURE_WINDOW - RUN_MARGIN,
            d.status.in_(FAILURE_STATUSES),
            d.finished_at >= now - FAILURE_WINDOW,
        )
        .group_by(d.failure_class)
    )
    failures = {cls.value: 0 for cls in FailureClass}
    for failure_class, count in rows:
        key = failure_class or "unknown"
        failures[key] = failures.get(key, 0) + int(count)
    return last, measured, failures


def _older(
    connection: Connection, cut: datetime, targets: list[int]
) -> tuple[dict[tuple[int, str], LastDrill], dict[int, _Measured]]:
    """The same for drills requested before ``cut``, for the given targets only."""
    last: dict[tuple[int, str], LastDrill] = {}
    measured: dict[int, _Measured] = {}
    for chunk in (targets[i : i + 500] for i in range(0, len(targets), 500)):
        found_last, found_measured = _ranked(connection, (_DRILL.c.requested_at < cut,), chunk)
        last.update(found_last)
        measured.update(found_measured)
    return last, measured


def _final() -> Any:
    """Final statuses, written so that the database does not pick the index on status for it.

    Without statistics SQLite prefers that index to the one on requested_at, and reads every finished drill ever
    recorded instead of the recent ones (lower() of a lowercase status changes nothing else).
    """
    return func.lower(_DRILL.c.status).in_(FINAL_STATUSES)


def _ranked(
    connection: Connection, where: tuple[Any, ...], targets: list[int] | None
) -> tuple[dict[tuple[int, str], LastDrill], dict[int, _Measured]]:
    """Ranked in the database (window functions, SQLite and PostgreSQL alike): per (target, group) the drill that
    finished last, and per target the restore drill that last measured a full-restore time."""
    d = _DRILL.c
    base = [*where, _final(), d.finished_at.is_not(None)]
    if targets is not None:
        base.append(d.target_id.in_(targets))
    group = case((d.kind == "integrity", literal_column("'integrity'")), else_=literal_column("'restore'"))
    newest_first = (d.finished_at.desc(), d.id.desc())
    ranked = (
        select(
            d.target_id,
            d.status,
            d.finished_at,
            group.label("grp"),
            func.row_number().over(partition_by=(d.target_id, group), order_by=newest_first).label("rn"),
        )
        .where(*base)
        .subquery()
    )
    last = {
        (row.target_id, str(row.grp)): LastDrill(row.status, row.finished_at)
        for row in connection.execute(select(ranked).where(ranked.c.rn == 1))
    }
    measuring = or_(
        d.estimated_full_restore_s.is_not(None),
        and_(d.kind == "full", d.status == DrillStatus.PASSED.value, d.restore_s.is_not(None)),
    )
    ranked = (
        select(
            *_drill_columns(),
            func.row_number().over(partition_by=d.target_id, order_by=newest_first).label("rn"),
        )
        .where(*base, d.kind.in_(RESTORE_KINDS), measuring)
        .subquery()
    )
    measured: dict[int, _Measured] = {}
    for row in connection.execute(select(ranked).where(ranked.c.rn == 1)):
        found = _measured(row)
        if found is not None:
            measured[row.target_id] = found
    return last, measured


def _tables(connection: Connection) -> set[str]:
    found = inspect(connection)
    return {name for name in ("flip", "alertdelivery") if found.has_table(name)}


def _targets(connection: Connection) -> list[TargetRow]:
    t = _TARGET.c
    rows = connection.execute(
        select(t.id, t.ref, t.client_id, t.name, t.kind, t.location, t.media)
        .where(t.removed_at.is_(None))
        .order_by(t.ref)
    )
    return [TargetRow(r.id, r.ref, r.client_id, r.name, r.kind, r.location, r.media) for r in rows]


def _newest_snapshots(connection: Connection) -> dict[int, tuple[datetime, int | None]]:
    """Per target: the newest snapshot still in the repository, and its size when a probe measured it."""
    s = _SNAPSHOT.c
    ranked = (
        select(
            s.target_id,
            s.time,
            s.size_bytes,
            func.row_number().over(partition_by=s.target_id, order_by=(s.time.desc(), s.id.desc())).label("rn"),
        )
        .where(s.gone_at.is_(None))
        .subquery()
    )
    rows = connection.execute(select(ranked.c.target_id, ranked.c.time, ranked.c.size_bytes).where(ranked.c.rn == 1))
    return {r.target_id: (r.time, r.size_bytes) for r in rows}


def _window(config: Config, client: str) -> timedelta:
    try:
        return config.client_policy(client).integrity.window
    except Exception:  # a client the store knows and the configuration no longer does, or a broken policy
        return IntegrityRules().window


def _coverage(connection: Connection, config: Config, targets: list[TargetRow], now: datetime) -> dict[int, float]:
    """As the integrity-coverage rule counts: parts n of the latest run's t read by passed runs in the window."""
    windows = {t.id: _window(config, t.client) for t in targets}
    if not windows:
        return {}
    d = _DRILL.c
    since = now - max(windows.values())
    rows = connection.execute(
        select(d.target_id, d.status, d.subset, d.finished_at)
        .where(
            d.requested_at >= since - RUN_MARGIN,  # bounded through the index; a run lasts far less than this
            d.kind == "integrity",
            _final(),
            d.finished_at > since,
        )
        .order_by(d.finished_at, d.id)
    )
    runs: dict[int, list[tuple[str, Subset]]] = {}
    for r in rows:
        window = windows.get(r.target_id)
        if window is None or r.finished_at <= now - window or not r.subset:
            continue
        try:
            runs.setdefault(r.target_id, []).append((r.status, Subset.parse(r.subset)))
        except ValueError:
            continue
    coverage = dict.fromkeys(windows, 0.0)
    for target_id, parsed in runs.items():
        parts = parsed[-1][1].parts  # the latest run's rotation; parts of another t are other slices
        read = {s.part for status, s in parsed if status == DrillStatus.PASSED.value and s.parts == parts}
        coverage[target_id] = len(read) / parts
    return coverage


def _active(connection: Connection) -> tuple[int, int]:
    d = _DRILL.c
    rows = connection.execute(
        select(d.status, func.count())
        .where(d.status.in_((DrillStatus.QUEUED.value, DrillStatus.RUNNING.value)))
        .group_by(d.status)
    )
    counts = {str(status): int(count) for status, count in rows}
    return int(counts.get(DrillStatus.QUEUED.value, 0)), int(counts.get(DrillStatus.RUNNING.value, 0))


def _verdicts(connection: Connection, targets: list[TargetRow]) -> list[Verdict]:
    """The latest flip of each rule subject ("rule:CLIENT:RULE[:CLIENT/TARGET]") of the configured targets."""
    f = _FLIP.c
    latest = select(func.max(f.id).label("id")).where(f.kind == "rule").group_by(f.subject).subquery()
    rows = connection.execute(
        select(f.client_id, f.target_ref, f.subject, f.new_state).join(latest, f.id == latest.c.id)
    )
    refs = {t.ref for t in targets}
    clients = {t.client for t in targets}
    verdicts = []
    for r in rows:
        parts = str(r.subject).split(":", 3)
        if len(parts) < 3 or parts[0] != "rule":
            continue
        target_ref = r.target_ref or (parts[3] if len(parts) == 4 else None)
        if target_ref is not None and target_ref not in refs:
            continue  # a target removed from the configuration: its rules are no longer judged
        if target_ref is None and r.client_id not in clients:
            continue
        target = target_ref.partition("/")[2] if target_ref else ""
        verdicts.append(Verdict(str(r.client_id), parts[2], target, str(r.new_state)))
    return sorted(verdicts, key=lambda v: (v.client, v.rule, v.target))


def _deliveries(connection: Connection) -> dict[str, int]:
    rows = connection.execute(
        select(_DELIVERY.c.status, func.count()).select_from(_DELIVERY).group_by(_DELIVERY.c.status)
    )
    counts = {"pending": 0, "sent": 0, "failed": 0}
    counts.update({str(status): int(count) for status, count in rows})
    return counts


# -------------------------------------------------------------------------------------------- the collector


class StoreCollector(Collector):
    """Reads the store at scrape time (kept ``cache_s`` seconds) and turns the reading into metric families."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        cache_s: float = CACHE_S,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._cache_s = cache_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._reading: Reading | None = None
        self._reader = StoreReader()
        self._read_at = -float("inf")
        self._store_up = True

    def update_config(self, config: Config) -> None:
        """After a reload: the next scrape reads with the new configuration (policy windows)."""
        with self._lock:
            self._config = config
            self._read_at = -float("inf")

    def reading(self) -> Reading | None:
        """The cached reading, or a new one; None while the store cannot be read."""
        with self._lock:
            if time.monotonic() - self._read_at < self._cache_s:
                return self._reading
            try:
                reading: Reading | None = self._reader.read(self._store, self._config, self._clock())
            except (SQLAlchemyError, OSError) as exc:
                if self._store_up:
                    log.warning(
                        "metrics: cannot read the results database %s: %s",
                        self._store.url,
                        redact.mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__),
                        extra={"event": "metrics.store_down"},
                    )
                reading = None
            except Exception:  # a fault of ours: the endpoint keeps answering (preuve_store_up 0), logged once
                if self._store_up:
                    log.exception("metrics: reading the results database failed", extra={"event": "metrics.error"})
                reading = None
            if reading is not None and not self._store_up:
                log.info("metrics: the results database answers again", extra={"event": "metrics.store_up"})
            self._store_up = reading is not None
            self._reading, self._read_at = reading, time.monotonic()
            return reading

    def describe(self) -> Iterable[Metric]:
        return []  # families vary with the store; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("preuve_up", "1 while Preuve answers.")
        up.add_metric([], 1)
        yield up
        info = GaugeMetricFamily("preuve_build_info", "Preuve's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        reading = self.reading()
        store_up = GaugeMetricFamily("preuve_store_up", "1 when the last reading of the results database worked.")
        store_up.add_metric([], 1 if reading is not None else 0)
        yield store_up
        if reading is not None:
            yield from self._families(reading)

    def _families(self, reading: Reading) -> Iterator[Metric]:
        now = self._clock()
        target_info = GaugeMetricFamily("preuve_target_info", "1 for every configured target.", labels=TARGET_LABELS)
        status = GaugeMetricFamily(
            "preuve_last_drill_status",
            "1, with the status of the target's latest finished drill (none: no drill yet).",
            labels=[*TARGET_LABELS, "drill", "status"],
        )
        finished = GaugeMetricFamily(
            "preuve_last_drill_finished_timestamp_seconds",
            "When the target's latest drill finished (Unix time).",
            labels=[*TARGET_LABELS, "drill"],
        )
        age = GaugeMetricFamily(
            "preuve_newest_snapshot_age_seconds",
            "Age of the newest snapshot still in the target's repository.",
            labels=TARGET_LABELS,
        )
        newest = GaugeMetricFamily(
            "preuve_newest_snapshot_timestamp_seconds",
            "Time of the newest snapshot still in the target's repository (Unix time).",
            labels=TARGET_LABELS,
        )
        estimate = GaugeMetricFamily(
            "preuve_estimated_full_restore_seconds",
            "Estimated time of a full restore, from the latest restore drill's throughput.",
            labels=TARGET_LABELS,
        )
        coverage = GaugeMetricFamily(
            "preuve_integrity_coverage_ratio",
            "Share of the repository read by passed integrity runs within the policy's window (0 to 1).",
            labels=TARGET_LABELS,
        )
        for target in reading.targets:
            labels = target.labels
            target_info.add_metric(labels, 1)
            for group in DRILL_GROUPS:
                last = reading.last_drill.get((target.id, group))
                status.add_metric([*labels, group, last.status if last else "none"], 1)
                if last is not None:
                    finished.add_metric([*labels, group], last.finished_at.timestamp())
            snapshot_time = reading.newest_snapshot.get(target.id)
            if snapshot_time is not None:
                age.add_metric(labels, (now - snapshot_time).total_seconds())
                newest.add_metric(labels, snapshot_time.timestamp())
            if target.id in reading.estimate_s:
                estimate.add_metric(labels, reading.estimate_s[target.id])
            coverage.add_metric(labels, reading.coverage.get(target.id, 0.0))
        yield from (target_info, status, finished, age, newest, estimate, coverage)

        verdict = GaugeMetricFamily(
            "preuve_policy_verdict",
            "1, with the rule's current verdict (from its latest flip).",
            labels=["client", "rule", "target", "verdict"],
        )
        for v in reading.verdicts:
            verdict.add_metric([v.client, v.rule, v.target, v.verdict], 1)
        yield verdict

        queued = GaugeMetricFamily("preuve_queued_drills", "Drills waiting for the daemon.")
        queued.add_metric([], reading.queued)
        running = GaugeMetricFamily("preuve_running_drills", "Drills running now (daemon and CLI).")
        running.add_metric([], reading.running)
        failures = GaugeMetricFamily(
            "preuve_drill_failures_30d",
            "Failed and error drills finished in the last 30 days, by failure class.",
            labels=["failure_class"],
        )
        for failure_class, count in sorted(reading.failures.items()):
            failures.add_metric([failure_class], count)
        yield from (queued, running, failures)

        if reading.deliveries is not None:
            deliveries = GaugeMetricFamily(
                "preuve_alert_deliveries", "Alert deliveries by status (failed: given up).", labels=["status"]
            )
            for state, count in sorted(reading.deliveries.items()):
                deliveries.add_metric([state], count)
            yield deliveries


# ------------------------------------------------------------------------------------------------ the server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not events worth a log line."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds up the daemon's exit


def parse_listen(listen: str) -> tuple[str, int]:
    """("127.0.0.1", 9464) from "127.0.0.1:9464"; an IPv6 address is written in brackets, "[::1]:9464"."""
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise MetricsError(f"[metrics] listen = {listen!r} is not HOST:PORT, like 127.0.0.1:9464")
    return host, int(port)


class MetricsServer:
    """The endpoint: GET /metrics. :meth:`stop` closes the socket; :meth:`update_config` after a reload."""

    def __init__(self, collector: StoreCollector, server: WSGIServer | None) -> None:
        self.collector = collector
        self._server = server
        self._thread: threading.Thread | None = None
        if server is not None:
            self._thread = threading.Thread(target=server.serve_forever, name="preuve-metrics", daemon=True)
            self._thread.start()

    @property
    def address(self) -> tuple[str, int] | None:
        """Where it listens; None when metrics are disabled."""
        if self._server is None:
            return None
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str | None:
        address = self.address
        if address is None:
            return None
        host, port = address
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def update_config(self, config: Config) -> None:
        self.collector.update_config(config)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _app(registry: CollectorRegistry) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/metrics", "/metrics/"):
            return list(metrics(environ, start_response))
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Preuve: metrics at /metrics\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: metrics at /metrics\n"]

    return app


def start_metrics_server(
    config: Config,
    store: Store,
    *,
    cache_s: float = CACHE_S,
    clock: Callable[[], datetime] | None = None,
) -> MetricsServer:
    """Listen on ``[metrics] listen`` exactly (no other address, no other port) and serve /metrics in a thread.

    With ``[metrics] enabled = false`` nothing listens and the server's :attr:`~MetricsServer.address` is None.
    Raises :class:`MetricsError` when the address cannot be bound (in use, not an address of this machine).
    """
    collector = StoreCollector(config, store, cache_s=cache_s, clock=clock)
    settings = config.settings.metrics
    if not settings.enabled:
        return MetricsServer(collector, None)
    host, port = parse_listen(settings.listen)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICSERV)[0][0]
    except socket.gaierror as exc:
        raise MetricsError(f"[metrics] listen = {settings.listen!r}: cannot resolve {host!r} ({exc})") from None

    class Server(_Server):
        address_family = family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    try:
        server = make_server(host, port, _app(registry), server_class=Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise MetricsError(
            f"cannot serve metrics on {settings.listen} ([metrics] listen in preuve.toml): {exc.strerror or exc}"
        ) from None
    started = MetricsServer(collector, server)
    log.info(
        "metrics at %s",
        started.url,
        extra={"event": "metrics.listening", "listen": settings.listen},
    )
    return started
