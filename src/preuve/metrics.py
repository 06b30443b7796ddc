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

import functools
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
from sqlalchemy import Connection, and_, func, inspect, or_, select, table
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

    Each target's newest snapshot, and its newest finished drill of each kind, come from one lookup per target in
    the indexes of migration 0007 (``snapshotseen(target_id, time)``, ``drillrun(target_id, kind, finished_at)``):
    correlated subqueries that SQLite and PostgreSQL both answer by reading a handful of index entries per target,
    whatever the length of the history. Nothing is cached here: every reading is the store as it is.
    """

    def read(self, store: Store, config: Config, now: datetime) -> Reading:
        reading = Reading(at=now)
        with store.connection() as connection:
            reading.targets = _targets(connection)
            ids = [t.id for t in reading.targets]
            newest = _newest_snapshots(connection)
            reading.newest_snapshot = {tid: newest[tid][0] for tid in ids if tid in newest}
            last, measured = _latest_drills(connection)
            wanted = set(ids)
            reading.last_drill = {key: value for key, value in last.items() if key[0] in wanted}
            for tid in ids:
                found = measured.get(tid)
                if found is not None:
                    reading.estimate_s[tid] = found.scaled(newest[tid][1] if tid in newest else None)
            reading.failures = _failures(connection, now)
            reading.coverage = _coverage(connection, config, reading.targets, now)
            reading.queued, reading.running = _active(connection)
            tables = _tables(connection)
            if "flip" in tables:
                reading.verdicts = _verdicts(connection, reading.targets)
            if "alertdelivery" in tables:
                reading.deliveries = _deliveries(connection)
        return reading


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


def _failures(connection: Connection, now: datetime) -> dict[str, int]:
    """Failed and error drills finished within FAILURE_WINDOW, by failure class."""
    d = _DRILL.c
    rows = connection.execute(
        select(d.failure_class, func.count())
        # a range of the index on (status, finished_at) per status: the recent failures only
        .where(d.status.in_(FAILURE_STATUSES), d.finished_at >= now - FAILURE_WINDOW)
        .group_by(d.failure_class)
    )
    failures = {cls.value: 0 for cls in FailureClass}
    for failure_class, count in rows:
        key = failure_class or "unknown"
        failures[key] = failures.get(key, 0) + int(count)
    return failures


def _final(status: Any) -> Any:
    """Final statuses, written so that the database does not pick the index on status for it.

    Without statistics SQLite may prefer that index to a better one, and read every finished drill ever recorded
    (lower() of a lowercase status changes nothing else).
    """
    return func.lower(status).in_(FINAL_STATUSES)


def _newest_drill(kind: str, *conditions: Callable[[Any], Any]) -> Any:
    """The id of the target's (the outer query's ``target`` row) newest finished drill of ``kind`` meeting
    ``conditions``: a backward walk of the index on (target_id, kind, finished_at) that stops at the first match."""
    d = _DRILL.alias("newest")
    return (
        select(d.c.id)
        .where(
            d.c.target_id == _TARGET.c.id,
            d.c.kind == kind,
            d.c.finished_at.is_not(None),
            _final(d.c.status),
            *(condition(d.c) for condition in conditions),
        )
        .order_by(d.c.finished_at.desc(), d.c.id.desc())
        .limit(1)
        .correlate(_TARGET)
        .scalar_subquery()
    )


_MEASURING = {
    "sample": lambda c: c.estimated_full_restore_s.is_not(None),
    "full": lambda c: or_(
        c.estimated_full_restore_s.is_not(None),
        and_(c.status == DrillStatus.PASSED.value, c.restore_s.is_not(None)),
    ),
}
_KINDS = ("sample", "full", "integrity")
# Built once: making the aliases costs more than running the queries on a small store.
_LATEST = select(_TARGET.c.id, *(_newest_drill(kind).label(kind) for kind in _KINDS)).where(
    _TARGET.c.removed_at.is_(None)
)
_MEASURING_OF = {kind: _newest_drill(kind, _MEASURING[kind]).label("drill") for kind in RESTORE_KINDS}


def _latest_drills(connection: Connection) -> tuple[dict[tuple[int, str], LastDrill], dict[int, _Measured]]:
    """Per (target, group) the drill that finished last, and per target the restore drill that last measured a
    full-restore time (an estimate, or a passed full restore's own time), for every watched target.

    The newest drill of a kind usually measured it too; only for a (target, kind) whose newest did not is the
    measuring one looked for apart.
    """
    per_target = [tuple(row) for row in connection.execute(_LATEST)]
    rows = _drill_rows(connection, [drill_id for row in per_target for drill_id in row[1:]])
    # per kind: target id -> its newest finished drill of that kind
    latest: dict[str, dict[int, Any]] = {kind: {} for kind in _KINDS}
    for target_id, *drill_ids in per_target:
        for kind, drill_id in zip(_KINDS, drill_ids, strict=True):
            if drill_id is not None and drill_id in rows:
                latest[kind][target_id] = rows[drill_id]
    measuring: dict[str, dict[int, Any]] = {}
    for kind in RESTORE_KINDS:
        found = {tid: row for tid, row in latest[kind].items() if _measured(row) is not None}
        deeper = [tid for tid in latest[kind] if tid not in found]
        for chunk in (deeper[i : i + 500] for i in range(0, len(deeper), 500)):
            pairs = connection.execute(select(_TARGET.c.id, _MEASURING_OF[kind]).where(_TARGET.c.id.in_(chunk))).all()
            more = _drill_rows(connection, [drill_id for _tid, drill_id in pairs])
            found.update({tid: more[drill_id] for tid, drill_id in pairs if drill_id in more})
        measuring[kind] = found
    last: dict[tuple[int, str], LastDrill] = {}
    measured: dict[int, _Measured] = {}
    for target_id, *_ids in per_target:
        restore = _newer(latest["sample"].get(target_id), latest["full"].get(target_id))
        if restore is not None:
            last[(target_id, "restore")] = LastDrill(restore.status, restore.finished_at)
        integrity = latest["integrity"].get(target_id)
        if integrity is not None:
            last[(target_id, "integrity")] = LastDrill(integrity.status, integrity.finished_at)
        best = _newer(measuring["sample"].get(target_id), measuring["full"].get(target_id))
        value = _measured(best) if best is not None else None
        if value is not None:
            measured[target_id] = value
    return last, measured


def _drill_rows(connection: Connection, ids: Iterable[int | None]) -> dict[int, Any]:
    """The drills of these ids (None skipped), by id."""
    wanted = sorted({drill_id for drill_id in ids if drill_id is not None})
    rows: dict[int, Any] = {}
    for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500)):
        for row in connection.execute(select(*_drill_columns()).where(_DRILL.c.id.in_(chunk))):
            rows[row.id] = row
    return rows


def _newer(first: Any, second: Any) -> Any:
    """Of two drill rows (either may be None), the one that finished last (the higher id on a tie)."""
    if first is None or second is None:
        return first if second is None else second
    return max(first, second, key=lambda r: (r.finished_at, r.id))


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


def _newest_snapshot_ids() -> Any:
    """Per watched target, the id of its newest snapshot still in the repository (a backward walk of the index on
    (target_id, time) that stops at the first one not gone)."""
    s = _SNAPSHOT.alias("newest")
    newest_id = (
        select(s.c.id)
        .where(s.c.target_id == _TARGET.c.id, s.c.gone_at.is_(None))
        .order_by(s.c.time.desc(), s.c.id.desc())
        .limit(1)
        .correlate(_TARGET)
        .scalar_subquery()
    )
    return select(newest_id).where(_TARGET.c.removed_at.is_(None))


_NEWEST_SNAPSHOTS = select(_SNAPSHOT.c.target_id, _SNAPSHOT.c.time, _SNAPSHOT.c.size_bytes).where(
    _SNAPSHOT.c.id.in_(_newest_snapshot_ids())
)


def _newest_snapshots(connection: Connection) -> dict[int, tuple[datetime, int | None]]:
    """Per watched target: the newest snapshot still in the repository, and its size when a probe measured it."""
    return {r.target_id: (r.time, r.size_bytes) for r in connection.execute(_NEWEST_SNAPSHOTS)}


def _window(config: Config, client: str) -> timedelta:
    try:
        return config.client_policy(client).integrity.window
    except Exception:  # a client the store knows and the configuration no longer does, or a broken policy
        return IntegrityRules().window


def _coverage(connection: Connection, config: Config, targets: list[TargetRow], now: datetime) -> dict[int, float]:
    """As the integrity-coverage rule counts: parts n of the latest run's t read by passed runs in the window."""
    windows = {t.id: _window(config, t.client) for t in targets}
    by_window: dict[timedelta, list[int]] = {}
    for target_id, window in windows.items():
        by_window.setdefault(window, []).append(target_id)
    d = _DRILL.c
    runs: dict[int, list[tuple[str, Subset]]] = {}
    # One query per distinct window (usually one) and 500 targets, each a range of the index on
    # (target_id, kind, finished_at); the rows come ordered, so no timestamp needs converting here.
    for window, ids in by_window.items():
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            rows = connection.execute(
                select(d.target_id, d.status, d.subset)
                .where(
                    d.target_id.in_(chunk),
                    d.kind == "integrity",
                    d.finished_at > now - window,
                    _final(d.status),
                    d.subset.is_not(None),
                )
                .order_by(d.finished_at, d.id)
            )
            for r in rows:
                subset = _subset(r.subset)
                if subset is not None:
                    runs.setdefault(r.target_id, []).append((r.status, subset))
    coverage = dict.fromkeys(windows, 0.0)
    for target_id, parsed in runs.items():
        parts = parsed[-1][1].parts  # the latest run's rotation; parts of another t are other slices
        read = {s.part for status, s in parsed if status == DrillStatus.PASSED.value and s.parts == parts}
        coverage[target_id] = len(read) / parts
    return coverage


@functools.lru_cache(maxsize=1024)
def _subset(text: str) -> Subset | None:
    """A recorded "n/t", parsed once per distinct text (a handful, read thousands of times); None if unreadable."""
    try:
        return Subset.parse(text)
    except ValueError:
        return None


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
