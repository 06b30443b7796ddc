"""Where each client and target stands: the traffic lights of the overview, and the same in plain words.

Read with the metrics reader (:class:`preuve.metrics.StoreReader`: a handful of grouped queries that stay cheap on
a store with years of history), so the console and Prometheus never disagree. Policy verdicts are the latest flips
of each rule, as evaluated by the daemon (``policy_every``): the overview does not re-evaluate 500 policies per view.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlmodel import select

from preuve.config.loader import Config
from preuve.metrics import LastDrill, Reading, StoreReader
from preuve.policies.model import Policy
from preuve.store.db import Store
from preuve.store.models import Client
from preuve.web.fmt import age as format_age

log = logging.getLogger("preuve.web")

READING_TTL_S = 5.0  # a store reading serves the views of the next five seconds (a refresh storm costs one)
MAX_STALE_S = 60.0  # an older reading is never shown: the view waits for a fresh one
SNAPSHOT_WARN_SHARE = 0.8  # amber once the newest snapshot is this close to the RPO


class Light(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"

    @property
    def rank(self) -> int:
        return {Light.GREEN: 0, Light.AMBER: 1, Light.RED: 2}[self]

    @property
    def words(self) -> str:
        return {Light.GREEN: "all good", Light.AMBER: "needs a look", Light.RED: "at risk"}[self]


def worst(lights: list[Light]) -> Light:
    return max(lights, key=lambda light: light.rank, default=Light.GREEN)


@dataclass(frozen=True)
class Reason:
    light: Light
    text: str  # for the provider
    plain: str  # for the client's manager


@dataclass(frozen=True)
class TargetStatus:
    ref: str
    client: str
    name: str
    kind: str
    location: str
    media: str
    last_drill: LastDrill | None  # restore drills (sample, full)
    last_integrity: LastDrill | None
    newest_snapshot: datetime | None
    rpo: timedelta
    coverage: float | None
    verdicts: dict[str, str]  # rule -> met | violated | unknown (this target's rules)
    reasons: tuple[Reason, ...]

    @property
    def light(self) -> Light:
        return worst([r.light for r in self.reasons])

    def snapshot_age(self, now: datetime) -> timedelta | None:
        return now - self.newest_snapshot if self.newest_snapshot else None


@dataclass(frozen=True)
class ClientStatus:
    id: str
    name: str
    targets: tuple[TargetStatus, ...]
    verdicts: dict[str, str]  # client-wide rules
    reasons: tuple[Reason, ...]  # client-wide

    @property
    def light(self) -> Light:
        return worst([r.light for r in self.reasons] + [t.light for t in self.targets])

    @property
    def all_reasons(self) -> list[tuple[str | None, Reason]]:
        found: list[tuple[str | None, Reason]] = [(None, r) for r in self.reasons]
        found += [(t.name, r) for t in self.targets for r in t.reasons]
        return sorted(found, key=lambda pair: -pair[1].light.rank)


@dataclass
class Overview:
    at: datetime
    clients: list[ClientStatus] = field(default_factory=list)
    queued: int = 0
    running: int = 0

    def client(self, client_id: str) -> ClientStatus | None:
        return next((c for c in self.clients if c.id == client_id), None)


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _drill_reasons(last: LastDrill | None) -> list[Reason]:
    if last is None:
        return [Reason(Light.AMBER, "no restore drill yet", "no restore test has been run yet")]
    when = _day(last.finished_at)
    if last.status == "passed":
        return [Reason(Light.GREEN, f"last drill passed ({when})", f"the last restore test passed on {when}")]
    if last.status == "failed":
        return [Reason(Light.RED, f"last drill failed ({when})", f"the last restore test, on {when}, found a problem")]
    if last.status == "error":
        return [
            Reason(
                Light.RED,
                f"last drill could not verify ({when})",
                f"the last restore test, on {when}, could not reach or read the backup",
            )
        ]
    return [Reason(Light.AMBER, f"last drill {last.status} ({when})", f"the last restore test was {last.status}")]


def _snapshot_reasons(newest: datetime | None, rpo: timedelta, now: datetime) -> list[Reason]:
    if newest is None:
        return [Reason(Light.AMBER, "no snapshot seen yet", "no backup has been seen yet")]
    age = now - newest
    shown = format_age(age)
    limit = format_age(rpo)
    if age > rpo:
        return [
            Reason(
                Light.RED,
                f"newest snapshot {shown} old, over the RPO of {limit}",
                f"the newest backup is {shown} old, older than the agreed {limit}",
            )
        ]
    if age > rpo * SNAPSHOT_WARN_SHARE:
        return [
            Reason(
                Light.AMBER,
                f"newest snapshot {shown} old, close to the RPO of {limit}",
                f"the newest backup is {shown} old, close to the agreed {limit}",
            )
        ]
    return [Reason(Light.GREEN, f"newest snapshot {shown} old (RPO {limit})", f"the newest backup is {shown} old")]


def _coverage_reasons(coverage: float | None, last_integrity: LastDrill | None) -> list[Reason]:
    if last_integrity is None:
        return []  # not every target has integrity runs scheduled; the policy's rule says whether it must
    if not coverage:
        return [
            Reason(
                Light.AMBER,
                "no integrity run passed within the policy window",
                "the full read of the stored data is behind schedule",
            )
        ]
    return [Reason(Light.GREEN, f"integrity coverage {coverage:.0%}", f"{coverage:.0%} of the stored data was re-read")]


def _verdict_reasons(verdicts: dict[str, str]) -> list[Reason]:
    reasons = []
    for rule, verdict in sorted(verdicts.items()):
        if verdict == "violated":
            reasons.append(Reason(Light.RED, f"rule {rule} violated", f"the continuity-plan rule “{rule}” is not met"))
        elif verdict == "unknown":
            reasons.append(
                Reason(Light.AMBER, f"rule {rule} unknown", f"the continuity-plan rule “{rule}” could not be checked")
            )
    return reasons


def _policy(config: Config, client: str) -> Policy:
    try:
        return config.client_policy(client)
    except Exception:  # a client the store knows and the configuration no longer does: the defaults
        return Policy()


def build_overview(reading: Reading, config: Config, names: dict[str, str]) -> Overview:
    now = reading.at
    client_verdicts: dict[str, dict[str, str]] = {}
    target_verdicts: dict[tuple[str, str], dict[str, str]] = {}
    for v in reading.verdicts:
        if v.target:
            target_verdicts.setdefault((v.client, v.target), {})[v.rule] = v.verdict
        else:
            client_verdicts.setdefault(v.client, {})[v.rule] = v.verdict
    by_client: dict[str, list[TargetStatus]] = {}
    policies: dict[str, Policy] = {}
    for t in reading.targets:
        policy = policies.get(t.client) or policies.setdefault(t.client, _policy(config, t.client))
        last = reading.last_drill.get((t.id, "restore"))
        integrity = reading.last_drill.get((t.id, "integrity"))
        newest = reading.newest_snapshot.get(t.id)
        coverage = reading.coverage.get(t.id)
        verdicts = target_verdicts.get((t.client, t.name), {})
        reasons = (
            _drill_reasons(last)
            + _snapshot_reasons(newest, policy.rpo, now)
            + _coverage_reasons(coverage, integrity)
            + _verdict_reasons(verdicts)
        )
        by_client.setdefault(t.client, []).append(
            TargetStatus(
                ref=t.ref,
                client=t.client,
                name=t.name,
                kind=t.kind,
                location=t.location,
                media=t.media,
                last_drill=last,
                last_integrity=integrity,
                newest_snapshot=newest,
                rpo=policy.rpo,
                coverage=coverage,
                verdicts=verdicts,
                reasons=tuple(reasons),
            )
        )
    overview = Overview(at=now, queued=reading.queued, running=reading.running)
    for client_id in sorted(set(by_client) | set(names)):
        targets = by_client.get(client_id)
        if not targets:
            continue  # a client with every target removed: nothing is watched any more
        verdicts = client_verdicts.get(client_id, {})
        overview.clients.append(
            ClientStatus(
                id=client_id,
                name=names.get(client_id, client_id),
                targets=tuple(targets),
                verdicts=verdicts,
                reasons=tuple(_verdict_reasons(verdicts)),
            )
        )
    return overview


class StatusBoard:
    """The overview, shared by every view: read from the store at most every ``ttl_s`` seconds.

    A reading older than ``ttl_s`` (but younger than ``max_stale_s``) is still served while one background thread
    reads the store again, so a view never waits for the store's queries (about 0.15 s of CPU with 1,000 targets and a
    year of history) except the first one, or right after a change made through the console.
    """

    def __init__(self, store: Store, ttl_s: float = READING_TTL_S, max_stale_s: float = MAX_STALE_S) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_stale_s = max_stale_s
        self._reader = StoreReader()
        self._lock = threading.Lock()  # guards _cached and _refreshing
        self._read_lock = threading.Lock()  # one store reading at a time (the reader keeps a cache of its own)
        self._cached: tuple[float, int, Overview] | None = None
        self._refreshing = False

    def _read(self, config: Config) -> Overview:
        with self._read_lock:
            clock = time.monotonic()
            reading = self._reader.read(self._store, config, datetime.now(UTC))
            with self._store.session() as session:
                names = {c.id: c.name for c in session.exec(select(Client)).all()}
            overview = build_overview(reading, config, names)
        with self._lock:
            self._cached = (clock, id(config), overview)
        return overview

    def _refresh(self, config: Config) -> None:
        try:
            self._read(config)
        except Exception as exc:  # the store is away: the next view tries again, synchronously once too stale
            log.warning("overview not refreshed (%s)", type(exc).__name__, extra={"event": "web.refresh_failed"})
        finally:
            with self._lock:
                self._refreshing = False

    def overview(self, config: Config) -> Overview:
        if self._ttl_s <= 0:  # no cache at all (tests, and the benchmark's uncached figure)
            return self._read(config)
        with self._lock:
            cached = self._cached
            age = time.monotonic() - cached[0] if cached else None
            usable = cached is not None and age is not None and cached[1] == id(config)
            if usable and age is not None and cached is not None:
                if age < self._ttl_s:
                    return cached[2]
                if age < self._max_stale_s:
                    if not self._refreshing:
                        self._refreshing = True
                        threading.Thread(target=self._refresh, args=(config,), name="web-overview", daemon=True).start()
                    return cached[2]
        return self._read(config)

    def invalidate(self) -> None:
        """After a change made through the console (a drill queued), the next view reads the store again."""
        with self._lock:
            self._cached = None
