"""The content of a client's monthly attestation: the predicate of its signed statement, computed from the ledger.

:func:`build_predicate` returns a dict laid out as ``tests/data/predicate-example.json`` (the contract with the
renderers), without ``"signing"`` (the issuer adds it) and with ``"version": 1`` (the issuer sets the version it
issues). Values are plain JSON: times are ISO-8601 UTC strings ending in ``Z``, durations integer seconds, shares
percentages with two decimals; whatever was not measured is ``null`` or ``"unknown"``, never a default that looks
good, and a target without a passing restore drill in the period is ``"tested": false``.

Where each part comes from:

* the period's facts (drills, incidents, snapshot ages, integrity coverage, immutability, notes) from the client's
  ledger only: the slice recorded in the month (the same entries ``preuve ledger export`` writes) and the few
  earlier entries it depends on (:mod:`preuve.reports.month_ledger`); the ledger head at the end of the month is
  the one the statement names;
* each target's description (kind, location, media, enabled) and the thresholds (RPO, RTO, integrity window,
  whether an immutable copy is required) from the configuration: the job file and ``config.client_policy(id)``
  (policies/ with the job's overrides);
* the rules (``rules``) and each block's ``status`` from the policy engine over the month as of its end (the same
  verdicts as ``preuve policy check CLIENT --from`` the 1st ``--to`` the last day), which reads store rows: the
  ledger is verified first (:mod:`preuve.reports.chain`), so these rows are the ones it vouches for, and a ledger
  that fails verification gets no attestation at all.

Headline. ``restorable``: ``yes`` every enabled target passed a restore drill (sample or full) in the month and
none has a failure still unresolved at its end; ``no`` none did; ``unknown`` the ledger holds nothing about any
enabled target in the month; ``partly`` otherwise. ``plan``: ``met`` every rule met; ``partly`` some met and
others violated or unknown; ``not-met`` none met and at least one violated; ``unknown`` none judged.

Recommendations: ``{"code", "target", "rule"}`` (target and rule may be null), sorted by target then code; the
renderer turns each code into a sentence in the client's language. Codes:

* ``never-tested``: no restore drill of this target has ever passed (up to the end of the period);
* ``not-tested-this-month``: it passed before, but not during the period;
* ``unresolved-failure``: a failed or erroring drill of this target is not yet followed by a passing one at the
  end of the period (see ``incidents``);
* ``drill-frequency``: passing drills further apart than the policy's ``drill.every``, or a failure not followed
  by a pass within ``drill.grace``;
* ``rpo-violated``: the newest snapshot was older than the RPO at the end of the period or for part of it;
* ``rto-exceeded``: the estimated (or measured) full-restore time is over the RTO;
* ``rto-unconfirmed``: no full-restore drill confirmed the RTO within ``drill.full_restore_every`` (or nothing
  measured the restore throughput yet);
* ``integrity-damage``: an integrity run (``restic check --read-data-subset``) found damage within the window;
* ``integrity-coverage``: not every part of the repository was read within the integrity window;
* ``immutability-missing``: the policy requires an immutable copy and the bucket's Object Lock settings (as
  measured) do not make this one immutable, or no target can be one (target null);
* ``immutability-unverified``: they could not be read, or append-only is declared by a REST provider only;
* ``copies-insufficient``: fewer copies, media kinds, off-site or immutable copies than the policy requires;
* ``retention-short``: the repository no longer holds the snapshots the policy's retention keeps;
* ``secrets-exposed``: a repository password file is missing or readable by others than its owner;
* ``anomaly``: a snapshot shrank or changed more than the policy's anomaly limits (ransomware, lost mount);
* ``snapshots-vanished``: snapshots disappeared before the retention let them go;
* ``canaries-failed``: a canary file was missing or altered in the latest restore drill;
* ``canaries-missing``: no canary is declared (or not all were checked), so drills cannot prove the content;
* ``unknown-data``: with a rule, that rule could not be judged for lack of data; without one, the ledger holds no
  entry at all about this target in the period;
* ``rule-violated``: a rule without a code of its own is violated (a rule added after this list).

Keys added to the example's layout (the example's keys keep their meaning): ``partial`` (top level), ``notes``
(top level: every technician's note recorded in the period, ``{"text", "by", "at", "drill"}``); per target
``enabled``, ``entries_in_period``, ``drills.interrupted``, ``last_passed_drill.snapshot`` (the full snapshot id;
``snapshot_id`` is restic's 8-character short id), ``rpo.observed_pct``, ``rto.estimated_by_drill``,
``rto.full_restore_every_s``, ``integrity.window_s``, ``integrity.failed_runs``, ``immutability.versioning``,
``immutability.append_only_declared``; per incident ``status``, ``drill_kind``, ``failed_drills``; per rule
``measured``, ``required`` (the engine's raw value and threshold) and ``evidence``; in ``ledger``
``seq_before`` and ``head_before`` (the head the month's export starts from).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from preuve.config.loader import Client, Config
from preuve.errors import ConfigurationError, FailureClass, PreuveError
from preuve.policies.model import Policy
from preuve.reports import month_policy
from preuve.reports.chain import verify_client
from preuve.reports.month_drills import RESTORE_KINDS, Drill, drill_of, drills_of, incidents
from preuve.reports.month_ledger import DRILL_KINDS, Entry, Slice, read_back, read_kind, read_slice
from preuve.reports.month_targets import TargetInput, target_block
from preuve.reports.values import iso_z, when_us
from preuve.store.db import Store
from preuve.store.ledger import LedgerProblem, month_bounds

SCHEMA = 1
PROBE_LOOKBACK = timedelta(days=31)  # the last probe before the month, if any this recent, gives the age at its start
_MONTH = re.compile(r"^\d{4}-\d{2}$")

_ADVICE = {
    "unknown-client": "Check the client's id: it is the name of its job file in jobs/, without .yaml.",
    "bad-month": "Write the month as YYYY-MM, for example 2026-10.",
    "month-not-ended": "Attest a month once it has ended (the daemon does it in the morning after its last day), "
    "or add --partial to attest the month so far (the document then says it is the month so far).",
    "ledger-tampered": "Run `preuve ledger verify` to see what changed, restore the results database from a backup "
    "taken before the change, and keep the evidence: someone with access to the database edited recorded results.",
}


class AttestationError(PreuveError):
    """No attestation can be built: ``reason`` says why (unknown-client, bad-month, month-not-ended,
    ledger-tampered); ``problem`` is the ledger's first broken entry for ledger-tampered."""

    def __init__(self, reason: str, message: str, problem: LedgerProblem | None = None) -> None:
        super().__init__(FailureClass.INTERNAL, message)
        self.reason = reason
        self.problem = problem

    @property
    def full_message(self) -> str:
        return f"{self.message} {_ADVICE[self.reason]}"


def build_predicate(
    config: Config,
    store: Store,
    client_id: str,
    month: str,
    *,
    now: datetime | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """The attestation's content for ``client_id`` and ``month`` ("YYYY-MM"), computed as of ``now`` (default: the
    current time). A month that has not ended is refused unless ``partial``: then its period ends at ``now`` and
    the predicate says ``"partial": true``. AttestationError for an unknown client, a malformed month, a month not
    ended (or not begun), and a ledger that fails verification."""
    now = now if now is not None else datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    client = _client(config, client_id)
    start, end, is_partial = _period(month, now, partial)
    problem = verify_client(store, client_id)
    if problem is not None:
        raise AttestationError(
            "ledger-tampered",
            f"The ledger of {client_id} fails verification, so no attestation is issued over it: {problem.message}.",
            problem,
        )
    policy = config.client_policy(client_id)
    with store.connection() as connection:
        period = read_slice(connection, client_id, start, end)
        refs = {f"{client_id}/{name}" for name in client.job.targets}
        earlier_drills = read_back(
            connection, client_id, DRILL_KINDS, period.before.seq, _DrillsNeeded(refs, end - policy.integrity.window)
        )
        earlier_probes = read_back(
            connection, client_id, ("probe",), period.before.seq, _ProbesNeeded(refs, start - PROBE_LOOKBACK)
        )
        month_drills = drills_of(period.entries)
        known = drills_of(earlier_drills) + month_drills
        found = [i for i in incidents(known) if i.overlaps(start, end)]
        first_seq = min((i.first.seq for i in found), default=period.before.seq + 1)
        notes = read_kind(connection, client_id, "note", min(first_seq, period.before.seq + 1) - 1, period.end.seq)
    report = month_policy.evaluate_period(config, store, client_id, start, end)
    rules = month_policy.by_key(report)
    targets = _targets(client_id, client, policy, period, earlier_probes, month_drills, known, start, end, rules)
    open_at_end = {i.target for i in found if i.resolved_at is None}
    return {
        "schema": SCHEMA,
        "client": {
            "id": client_id,
            "name": client.name,
            "language": client.job.language,
            "policy": client.job.policy,
        },
        "period": {"month": month, "start": iso_z(start), "end": iso_z(end)},
        "partial": is_partial,
        "generated_at": iso_z(now),
        "version": 1,
        "headline": {
            "restorable": month_policy.restorable(targets, open_at_end),
            "plan": month_policy.plan(r.verdict for r in report.rules),
        },
        "targets": targets,
        "incidents": [i.as_json(notes) for i in found],
        "rules": month_policy.rules_json(report),
        "recommendations": month_policy.recommendations(targets, rules, open_at_end),
        "notes": [_note(n) for n in notes if start <= n.recorded_at < end],
        "ledger": {
            "head": period.end.entry_hash,
            "seq": period.end.seq,
            "entries_in_month": len(period.entries),
            "first_seq_in_month": period.before.seq + 1 if period.entries else None,
            "seq_before": period.before.seq,
            "head_before": period.before.entry_hash,
        },
    }


def _client(config: Config, client_id: str) -> Client:
    try:
        return config.client(client_id)
    except ConfigurationError as exc:
        raise AttestationError("unknown-client", exc.problems[0]) from None


def _period(month: str, now: datetime, partial: bool) -> tuple[datetime, datetime, bool]:
    if not _MONTH.match(month):
        raise AttestationError("bad-month", f"{month!r} is not a month: write it YYYY-MM, e.g. 2026-10")
    try:
        start, end = month_bounds(month)
    except ValueError as exc:
        raise AttestationError("bad-month", str(exc)) from None
    if now < start:
        raise AttestationError("month-not-ended", f"{month} has not begun yet (it is {iso_z(now)})")
    if now < end:
        if not partial:
            raise AttestationError(
                "month-not-ended",
                f"{month} has not ended yet: it ends on {iso_z(end)}, and it is {iso_z(now)}",
            )
        return start, now, True
    return start, end, False


def _note(entry: Entry) -> dict[str, Any]:
    payload = entry.payload
    return {
        "text": payload.get("text"),
        "by": payload.get("by"),
        "at": iso_z(when_us(payload.get("at")) or entry.recorded_at),
        "drill": payload.get("drill"),
    }


def _targets(
    client_id: str,
    client: Client,
    policy: Policy,
    period: Slice,
    earlier_probes: Sequence[Entry],
    month_drills: Sequence[Drill],
    known: Sequence[Drill],
    start: datetime,
    end: datetime,
    rules: dict[month_policy.RuleKey, Any],
) -> list[dict[str, Any]]:
    blocks = []
    for name, spec in sorted(client.job.targets.items()):
        ref = f"{client_id}/{name}"
        before = [p for p in earlier_probes if p.target == ref and p.payload.get("ok") is True][-1:]
        during = [e for e in period.entries if e.kind == "probe" and e.target == ref and e.payload.get("ok") is True]
        item = TargetInput(
            ref=ref,
            name=name,
            spec=spec,
            month_drills=[d for d in month_drills if d.target == ref],
            known_drills=[d for d in known if d.target == ref],
            probes=before + during,
            entries_in_period=sum(1 for e in period.entries if e.kind in _DATA_KINDS and e.target == ref),
        )
        blocks.append(target_block(item, policy, start, end, rules))
    return blocks


_DATA_KINDS = frozenset({"drill", "integrity", "probe"})


class _DrillsNeeded:
    """Reading drills backwards from the month's start: enough once every target's last passing restore, last
    passing full restore and last passing integrity run are found (so that every incident open at the start, and
    when the RTO was last confirmed, are known) and the integrity window is covered. A target without one of these
    makes the reading go back to the chain's start: drills are a few a day, never hourly."""

    def __init__(self, refs: set[str], floor: datetime) -> None:
        self.missing = {(ref, need) for ref in refs for need in ("restore", "full", "integrity")}
        self.floor = floor

    def __call__(self, entry: Entry) -> bool:
        drill = drill_of(entry)
        if drill is not None and drill.status == "passed":
            if drill.kind in RESTORE_KINDS:
                self.missing.discard((drill.target, "restore"))
            if drill.kind == "full":
                self.missing.discard((drill.target, "full"))
            if drill.kind == "integrity":
                self.missing.discard((drill.target, "integrity"))
        return not self.missing and entry.recorded_at <= self.floor


class _ProbesNeeded:
    """Reading probes backwards from the month's start: enough once every target's last successful probe is found,
    or ``floor`` is passed (a target not probed for a month is not looked for further)."""

    def __init__(self, refs: set[str], floor: datetime) -> None:
        self.missing = set(refs)
        self.floor = floor

    def __call__(self, entry: Entry) -> bool:
        if entry.payload.get("ok") is True and entry.target is not None:
            self.missing.discard(entry.target)
        return not self.missing or entry.recorded_at < self.floor


__all__ = ["AttestationError", "build_predicate"]
