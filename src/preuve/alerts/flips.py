"""Flips: the changes of state worth a message, recorded in the store with one delivery per channel.

Every watched thing is a *subject* with a state (the bad states are alerted and reminded):

- ``drill:<client/target>``: sample and full drills; passed, failed, error (bad: failed, error);
- ``integrity:<client/target>``: integrity runs; passed, failed, error (bad: failed, error);
- ``rule:<client>:<rule>`` or ``rule:<client>:<rule>:<client/target>``: policy reports; met, violated, unknown
  (bad: violated);
- ``config``: configuration loads; ok, error (bad: error);
- ``daemon:<part>``: the daemon's own health; ok, error (bad: error).

A flip is recorded only when a subject's state changes (the first state ever seen is recorded as a flip from
``None``); runs that repeat the current state record nothing, so a target failing every night is one message,
not one per night. A flip is *alerted* (one :class:`~preuve.store.models.AlertDelivery` per configured channel)
when its new or its previous state is bad: a failure, a recovery from one, and a failure changing its nature
(failed to error). Going between two good states is recorded, never alerted: a first ``passed`` or ``met``, and
a rule going between ``met`` and ``unknown`` (a fact that could not be measured is not a failure to page anyone
about; ``unknown`` to ``violated`` and ``violated`` to ``unknown`` are alerted, since they start or end a
violation). The configuration flips on every distinct set of problems (a new mistake while the first is still
there is worth a message), and back to ``ok`` when it loads again.

Reminders (:func:`remind`) are flips with ``reminder=True`` and the same old and new state: one per
``alerts.reminder_after`` while a bad state lasts, for subjects that are still configured.

Flips are written under one lock (SQLite's write lock; a PostgreSQL advisory lock), so two daemons reporting the
same change record it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from preuve import redact
from preuve.alerts.secrets import register_secrets
from preuve.config.loader import Config
from preuve.config.units import parse_duration
from preuve.drills.result import DrillKind, DrillStatus
from preuve.errors import FailureClass
from preuve.policies.evaluate import PolicyReport, rule_json
from preuve.policies.facts import RuleResult, Verdict
from preuve.store import ledger
from preuve.store.db import Store
from preuve.store.models import AlertDelivery, Flip
from preuve.store.records import DrillDetail, get_drill

DAEMON_WIDE = "*"  # client_id of flips about no single client: the configuration, the daemon itself
CONFIG_SUBJECT = "config"
OK, ERROR = "ok", "error"
PENDING, SENT, FAILED = "pending", "sent", "failed"
EMAIL, WEBHOOK = "email", "webhook"
MAX_FINDINGS = 10  # findings copied into a flip's details (and so into the messages)

_BAD_DRILL = frozenset({DrillStatus.FAILED.value, DrillStatus.ERROR.value})
_DRILL_STATES = frozenset({DrillStatus.PASSED.value, *_BAD_DRILL})
# pg_advisory_xact_lock key: one writer of flips at a time, so a change is recorded once.
_FLIP_LOCK_KEY = 0x70726561  # "prea"


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _masked(value: Any) -> Any:
    """A copy with every string masked: details are stored, rendered and posted from this."""
    if isinstance(value, str):
        return redact.mask(value)
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def is_bad(kind: str, state: str | None) -> bool:
    """A state someone must act on: alerted when it starts and ends, reminded while it lasts."""
    if state is None:
        return False
    if kind == "drill":
        return state in _BAD_DRILL
    if kind == "rule":
        return state == Verdict.VIOLATED.value
    return state != OK  # config, daemon


def should_alert(kind: str, old: str | None, new: str) -> bool:
    """True when the change from ``old`` to ``new`` is sent on (see the module's documentation)."""
    return old != new and (is_bad(kind, new) or is_bad(kind, old))


def drill_subject(kind: DrillKind | str, ref: str) -> str:
    return f"{'integrity' if DrillKind(kind) is DrillKind.INTEGRITY else 'drill'}:{ref}"


def rule_subject(client: str, rule: str, target: str | None) -> str:
    return f"rule:{client}:{rule}" + (f":{target}" if target else "")


def webhook_display(url: str) -> str:
    """A webhook URL as stored and shown: scheme and host only; its path and query often are the secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    hidden = parts.path not in ("", "/") or parts.query
    return urlunsplit((parts.scheme, host, "/" + redact.MASK if hidden else parts.path, "", ""))


def when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


# -------------------------------------------------------------------------------------------- plain records


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    channel: str  # email | webhook
    destination: str  # addresses, or the webhook URL with its path masked
    status: str  # pending | sent | failed
    attempts: int
    last_error: str
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class FlipRecord:
    id: int
    client: str  # client id, or "*" for the configuration and the daemon
    target: str | None  # "client/target"
    subject: str
    kind: str  # drill | rule | config | daemon
    previous: str | None  # None: the first state ever seen
    state: str
    at: datetime
    summary: str
    details: dict[str, Any]
    reminder: bool
    deliveries: tuple[DeliveryRecord, ...] = ()

    @property
    def family(self) -> str:
        """The subject's family: drill, integrity, rule, config or daemon (the webhook's ``event`` prefix)."""
        return self.subject.split(":", 1)[0]


def flip_record(row: Flip, deliveries: Sequence[AlertDelivery] = ()) -> FlipRecord:
    if row.id is None:  # pragma: no cover - rows read from the database always have an id
        raise RuntimeError("flip row without id")
    return FlipRecord(
        id=row.id,
        client=row.client_id,
        target=row.target_ref,
        subject=row.subject,
        kind=row.kind,
        previous=row.old_state,
        state=row.new_state,
        at=row.at,
        summary=row.summary,
        details=_details(row),
        reminder=row.reminder,
        deliveries=tuple(delivery_record(d) for d in deliveries),
    )


def delivery_record(row: AlertDelivery) -> DeliveryRecord:
    if row.id is None:  # pragma: no cover - rows read from the database always have an id
        raise RuntimeError("delivery row without id")
    return DeliveryRecord(
        id=row.id,
        channel=row.channel,
        destination=row.destination,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        created_at=row.created_at,
    )


# ----------------------------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class _Observed:
    """A subject's state as just observed; ``describe`` words the flip once the previous state is known."""

    subject: str
    kind: str
    client_id: str
    target_ref: str | None
    state: str
    at: datetime
    describe: Callable[[str | None], tuple[str, dict[str, Any]]]  # previous state -> (summary, details)
    same_as: Callable[[Flip], bool] | None = None  # the last flip says the same: no new flip (default: same state)


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FLIP_LOCK_KEY})


def _latest(session: Session, subjects: Iterable[str], *, reminders: bool) -> dict[str, Flip]:
    """The newest flip of each subject (changes only, unless ``reminders``)."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    newest = select(func.max(Flip.id)).where(col(Flip.subject).in_(wanted))
    if not reminders:
        newest = newest.where(col(Flip.reminder).is_(False))
    rows = session.exec(select(Flip).where(col(Flip.id).in_(newest.group_by(col(Flip.subject))))).all()
    return {row.subject: row for row in rows}


def channels(config: Config) -> list[tuple[str, str]]:
    """The configured channels as (channel, destination as stored)."""
    alerts = config.settings.alerts
    found: list[tuple[str, str]] = []
    if alerts.email:
        found.append((EMAIL, ", ".join(alerts.email)))
    if alerts.webhook:
        found.append((WEBHOOK, webhook_display(alerts.webhook)))
    return found


def _insert(
    session: Session, config: Config, observed: _Observed, previous: str | None, *, reminder: bool, alert: bool
) -> int:
    summary, details = observed.describe(previous)
    flip = Flip(
        client_id=observed.client_id,
        target_ref=observed.target_ref,
        subject=observed.subject,
        kind=observed.kind,
        old_state=previous,
        new_state=observed.state,
        at=observed.at,
        summary=redact.mask(summary),
        details=_json(_masked(details)),
        reminder=reminder,
    )
    session.add(flip)
    session.flush()
    if flip.id is None:  # pragma: no cover - flush assigns the id
        raise RuntimeError("the database did not assign a flip id")
    if observed.kind == "rule" and not reminder:
        ledger.record_policy_flip(session.connection(), flip.id)  # a policy verdict change is a recorded result
    if alert:
        created = _now()
        for channel, destination in channels(config):
            session.add(
                AlertDelivery(
                    flip_id=flip.id,
                    channel=channel,
                    destination=redact.mask(destination),
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=created,  # due at once, whatever clock the caller judged by
                    created_at=created,
                )
            )
    return flip.id


def _record(store: Store, config: Config, observations: Sequence[_Observed]) -> list[int]:
    """Record the observations that change their subject's state; the new flips' ids."""
    ids: list[int] = []
    if not observations:
        return ids
    register_secrets(config)
    with store.session(write=True) as session:
        _lock(session)
        latest = _latest(session, (o.subject for o in observations), reminders=False)
        for observed in observations:
            last = latest.get(observed.subject)
            if last is not None:
                if observed.at < last.at:
                    continue  # older than what the subject already says (results reported out of order)
                same = observed.same_as(last) if observed.same_as else last.new_state == observed.state
                if same:
                    continue
            previous = last.new_state if last is not None else None
            alert = should_alert(observed.kind, previous, observed.state) or (
                observed.same_as is not None and is_bad(observed.kind, observed.state)
            )
            ids.append(_insert(session, config, observed, previous, reminder=False, alert=alert))
    return ids


# --------------------------------------------------------------------------------------------------- drills


def _drill_describe(config: Config, detail: DrillDetail) -> Callable[[str | None], tuple[str, dict[str, Any]]]:
    what = "integrity check" if detail.kind is DrillKind.INTEGRITY else "drill"
    cls = detail.failure_class

    def describe(previous: str | None) -> tuple[str, dict[str, Any]]:
        state = detail.status.value
        if detail.status is DrillStatus.PASSED:
            summary = f"{detail.target}: {what} PASSED" + (
                f" again (was {previous})" if is_bad("drill", previous) else ""
            )
        else:
            summary = f"{detail.target}: {what} {state.upper()}" + (f" ({cls.value})" if cls else "")
        details: dict[str, Any] = {
            "drill_id": detail.id,
            "client_name": client.name if (client := config.clients.get(detail.client)) else None,
            "drill_kind": detail.kind.value,
            "status": state,
            "failure_class": cls.value if cls else None,
            "advice": cls.advice if cls and detail.status is not DrillStatus.PASSED else None,
            "message": detail.message,
            "requested_by": detail.requested_by,
            "finished_at": detail.finished_at,
            "snapshot_id": detail.snapshot_id,
            "snapshot_time": detail.snapshot_time,
            "subset": detail.subset,
            "files_checked": detail.files_checked,
            "findings_count": len(detail.findings),
            "findings": [
                {"path": f.path, "failure_class": FailureClass(f.failure_class).value, "detail": f.detail}
                for f in detail.findings[:MAX_FINDINGS]
            ],
        }
        return summary, details

    return describe


def on_drill_finished(config: Config, store: Store, drill_id: int) -> list[int]:
    """Note a finished drill's outcome: a flip when its subject's state changes; the new flip ids ([] or one).

    Sample and full drills share the subject ``drill:<ref>``, integrity runs have ``integrity:<ref>``.
    Interrupted drills (and drills not finished) say nothing about the backup and record nothing; a drill
    older than the subject's last flip (reported late) changes nothing. LookupError if there is no such drill.
    """
    detail = get_drill(store, drill_id)
    if detail is None:
        raise LookupError(f"no drill {drill_id} in the results database")
    if detail.status.value not in _DRILL_STATES:
        return []
    observed = _Observed(
        subject=drill_subject(detail.kind, detail.target),
        kind="drill",
        client_id=detail.client,
        target_ref=detail.target,
        state=detail.status.value,
        at=detail.finished_at or _now(),
        describe=_drill_describe(config, detail),
    )
    return _record(store, config, [observed])


# --------------------------------------------------------------------------------------------------- policy


def _rule_describe(report: PolicyReport, result: RuleResult) -> Callable[[str | None], tuple[str, dict[str, Any]]]:
    about = result.target or report.client

    def describe(previous: str | None) -> tuple[str, dict[str, Any]]:
        verdict = result.verdict
        if verdict is Verdict.VIOLATED:
            summary = f"{about}: rule {result.rule} VIOLATED"
        elif previous == Verdict.VIOLATED.value:
            again = "met again" if verdict is Verdict.MET else "can no longer be measured"
            summary = f"{about}: rule {result.rule} {again} (was violated)"
        else:
            summary = f"{about}: rule {result.rule} {verdict.value}"
        details = {**rule_json(result), "client_name": report.name, "policy": report.policy}
        return summary, details

    return describe


def on_policy_report(config: Config, store: Store, report: PolicyReport) -> list[int]:
    """Note each rule's verdict of a client's report (per client, rule and target); the new flip ids.

    met and violated flip both ways and are alerted; ``unknown`` is recorded on every change but alerted only
    when it ends or starts a violation (violated to unknown, unknown to violated), never between met and unknown.
    """
    observations = [
        _Observed(
            subject=rule_subject(report.client, result.rule, result.target),
            kind="rule",
            client_id=report.client,
            target_ref=result.target,
            state=result.verdict.value,
            at=report.period.end,
            describe=_rule_describe(report, result),
        )
        for result in report.rules
    ]
    return _record(store, config, observations)


# --------------------------------------------------------------------------------------------- configuration


def _details(flip: Flip) -> dict[str, Any]:
    try:
        value = json.loads(flip.details) if flip.details else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _problems(flip: Flip) -> list[str]:
    value = _details(flip).get("problems", [])
    return [str(p) for p in value] if isinstance(value, list) else []


def on_config_error(config: Config, store: Store, problems: list[str]) -> int | None:
    """Note a configuration load: ``problems`` when it was refused, ``[]`` when it loaded; the flip id or None.

    One flip per distinct set of problems (alerted), one back to ``ok`` when it loads again after an error
    (alerted); a configuration that loads and never failed records nothing. ``config`` is the configuration
    still in force (its alert channels are used).
    """
    shown = sorted({redact.mask(p) for p in problems})
    state = ERROR if shown else OK

    def describe(previous: str | None) -> tuple[str, dict[str, Any]]:
        if not shown:
            return "configuration loads again", {"problems": [], "directory": str(config.directory)}
        count = len(shown)
        summary = f"configuration refused: {count} problem{'s' if count > 1 else ''} (the last good one keeps running)"
        return summary, {"problems": shown, "directory": str(config.directory)}

    def same_as(last: Flip) -> bool:
        return last.new_state == state and (state == OK or _problems(last) == shown)

    observed = _Observed(
        subject=CONFIG_SUBJECT,
        kind="config",
        client_id=DAEMON_WIDE,
        target_ref=None,
        state=state,
        at=_now(),
        describe=describe,
        same_as=same_as,
    )
    if not shown:
        with store.session() as session:
            last = _latest(session, [CONFIG_SUBJECT], reminders=False).get(CONFIG_SUBJECT)
        if last is None:
            return None  # it has always loaded: nothing to recover from
    ids = _record(store, config, [observed])
    return ids[0] if ids else None


def on_daemon_state(config: Config, store: Store, name: str, problem: str | None) -> int | None:
    """Note the health of a part of the daemon itself (subject ``daemon:<name>``, e.g. ``daemon:scheduler``):
    ``problem`` is a sentence while it is wrong, None once it is fine; the flip id or None.

    One flip (alerted) when it goes wrong, whatever the sentence says later; one back to ``ok`` (alerted) when it
    recovers; a part that was never wrong records nothing.
    """
    subject = f"daemon:{name}"
    shown = redact.mask(problem) if problem else None
    state = ERROR if shown else OK

    def describe(previous: str | None) -> tuple[str, dict[str, Any]]:
        if shown:
            return f"Preuve {name}: {shown}", {"message": shown}
        return f"Preuve {name} is back to normal", {"message": ""}

    if not shown:
        with store.session() as session:
            if subject not in _latest(session, [subject], reminders=False):
                return None
    observed = _Observed(
        subject=subject,
        kind="daemon",
        client_id=DAEMON_WIDE,
        target_ref=None,
        state=state,
        at=_now(),
        describe=describe,
    )
    ids = _record(store, config, [observed])
    return ids[0] if ids else None


# ------------------------------------------------------------------------------------------------ reminders


def _still_watched(flip: Flip, config: Config, refs: set[str]) -> bool:
    """Reminders stop for targets and clients removed from the configuration."""
    if flip.target_ref is not None:
        return flip.target_ref in refs
    if flip.client_id != DAEMON_WIDE:
        return flip.client_id in config.clients
    return True


def remind(config: Config, store: Store, now: datetime | None = None) -> list[int]:
    """One reminder flip per subject whose bad state has lasted ``alerts.reminder_after`` since its last flip or
    reminder (so one per period, however long the daemon was away); the new flip ids."""
    now = now or _now()
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    period = parse_duration(config.settings.alerts.reminder_after)
    register_secrets(config)
    ids: list[int] = []
    with store.session(write=True) as session:
        _lock(session)
        newest = session.exec(
            select(Flip).where(col(Flip.id).in_(select(func.max(Flip.id)).group_by(col(Flip.subject))))
        ).all()
        refs = {t.ref for t in config.targets()}
        due = [
            f
            for f in newest
            if is_bad(f.kind, f.new_state) and now - f.at >= period and _still_watched(f, config, refs)
        ]
        changes = _latest(session, (f.subject for f in due), reminders=False)
        for last in due:
            change = changes.get(last.subject, last)
            details = _details(change)
            count = int(_details(last).get("reminder_count", 0)) if last.reminder else 0
            base_details = {k: v for k, v in details.items() if k not in ("since", "reminder_of", "reminder_count")}

            def describe(
                _previous: str | None, change: Flip = change, extra: dict[str, Any] = base_details, count: int = count
            ) -> tuple[str, dict[str, Any]]:
                summary = f"{change.summary}, unresolved since {when(change.at)}"
                return summary, {**extra, "since": change.at, "reminder_of": change.id, "reminder_count": count + 1}

            observed = _Observed(
                subject=last.subject,
                kind=last.kind,
                client_id=last.client_id,
                target_ref=last.target_ref,
                state=last.new_state,
                at=now,
                describe=describe,
            )
            ids.append(_insert(session, config, observed, last.new_state, reminder=True, alert=True))
    return ids


# ------------------------------------------------------------------------------------------------- listing


def list_alerts(
    store: Store, limit: int | None = 50, *, client: str | None = None, failed_only: bool = False
) -> list[FlipRecord]:
    """Recent flips, newest first, each with its deliveries (sent, pending and failed).

    ``failed_only``: only flips with a delivery that failed for good.
    """
    statement = select(Flip)
    if client is not None:
        statement = statement.where(col(Flip.client_id) == client)
    if failed_only:
        failed = select(AlertDelivery.flip_id).where(col(AlertDelivery.status) == FAILED)
        statement = statement.where(col(Flip.id).in_(failed))
    statement = statement.order_by(col(Flip.at).desc(), col(Flip.id).desc())
    if limit is not None:
        statement = statement.limit(limit)
    with store.session() as session:
        flips = session.exec(statement).all()
        ids = [f.id for f in flips if f.id is not None]
        by_flip: dict[int, list[AlertDelivery]] = {i: [] for i in ids}
        if ids:
            rows = session.exec(
                select(AlertDelivery).where(col(AlertDelivery.flip_id).in_(ids)).order_by(col(AlertDelivery.id))
            ).all()
            for row in rows:
                by_flip[row.flip_id].append(row)
        return [flip_record(f, by_flip.get(f.id or 0, [])) for f in flips]


def get_flip(store: Store, flip_id: int) -> FlipRecord | None:
    with store.session() as session:
        row = session.get(Flip, flip_id)
        if row is None:
            return None
        deliveries = session.exec(
            select(AlertDelivery).where(col(AlertDelivery.flip_id) == flip_id).order_by(col(AlertDelivery.id))
        ).all()
        return flip_record(row, deliveries)
