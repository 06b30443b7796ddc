"""Tables of the results store.

Rows are history: targets removed from the configuration keep their rows (``removed_at``), drills in a final
status are never updated again, and snapshots that disappear from a repository are marked ``gone_at`` rather
than deleted. The schema is created by the Alembic migrations in :mod:`preuve.store.migrations`; a test checks
that they match these classes exactly.

JSON columns are plain text holding JSON (written by :mod:`preuve.store.records`), so the schema is the
same on SQLite and PostgreSQL and a human can read them with any SQL client.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Index, MetaData, Text, UniqueConstraint, false
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from preuve.store.types import UTCDateTime

# Named constraints let Alembic alter or drop them later (SQLite batch mode needs names to find them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A registry of our own: other SQLModel users in the process (tests, plugins) must not leak tables into the
# metadata that migrations are compared against.
metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoreModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every table of the results store."""


class Client(StoreModel, table=True):
    __tablename__ = "client"

    id: str = Field(primary_key=True)  # the job file's stem, e.g. "acme"
    name: str
    language: str
    policy: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class Target(StoreModel, table=True):
    __tablename__ = "target"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    name: str
    ref: str = Field(unique=True)  # "client/name"
    kind: str  # local | sftp | s3 | rest
    location: str  # onsite | offsite
    media: str
    repository: str  # display form, never with credentials (see preuve.targets.display)
    source: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Probe(StoreModel, table=True):
    __tablename__ = "probe"

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="target.id", index=True)
    started_at: datetime = Field(sa_type=UTCDateTime())
    finished_at: datetime = Field(sa_type=UTCDateTime())
    ok: bool
    failure_class: str | None = None
    message: str = Field(default="", sa_type=Text)
    reachable: bool | None = None
    credentials_ok: bool | None = None
    repository_opens: bool | None = None
    repository_id: str | None = None
    snapshot_count: int = 0
    newest_snapshot_id: str | None = None
    newest_snapshot_time: datetime | None = Field(default=None, sa_type=UTCDateTime())
    restic_version: str = ""
    host: str = ""
    preuve_version: str = ""
    facts: str = Field(default="{}", sa_type=Text)  # JSON object


class SnapshotSeen(StoreModel, table=True):
    __tablename__ = "snapshotseen"
    # The unique constraint's index also serves lookups by target_id (its first column); the second finds a
    # target's newest snapshot without reading the others (the overview and the metrics endpoint).
    __table_args__ = (
        UniqueConstraint("target_id", "snapshot_id"),
        Index("ix_snapshotseen_target_id_time", "target_id", "time"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="target.id")
    snapshot_id: str
    short_id: str
    time: datetime = Field(sa_type=UTCDateTime())
    hostname: str = ""
    username: str = ""
    paths: str = Field(default="[]", sa_type=Text)  # JSON array of strings
    tags: str = Field(default="[]", sa_type=Text)  # JSON array of strings
    tree: str = ""
    parent: str | None = None
    first_seen_at: datetime = Field(sa_type=UTCDateTime())
    last_seen_at: datetime = Field(sa_type=UTCDateTime())
    gone_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Measured by probes, a few snapshots at a time (NULL until then: "not measured" is not "zero").
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)  # restore size (`restic stats`)
    file_count: int | None = Field(default=None, sa_type=BigInteger)  # files, dirs and symlinks
    # Files changed, added or removed against the previous snapshot (`restic diff`); NULL for a snapshot with
    # no earlier one to compare with.
    changed_files: int | None = Field(default=None, sa_type=BigInteger)
    stats_at: datetime | None = Field(default=None, sa_type=UTCDateTime())  # when measured; NULL: not yet


class DrillRun(StoreModel, table=True):
    __tablename__ = "drillrun"
    # A target's newest drill of a kind in one index lookup, and the recent failures without reading the passes
    # (the overview and the metrics endpoint).
    __table_args__ = (
        Index("ix_drillrun_target_id_kind_finished_at", "target_id", "kind", "finished_at"),
        Index("ix_drillrun_status_finished_at", "status", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="target.id", index=True)
    kind: str  # DrillKind
    status: str = Field(index=True)  # DrillStatus
    requested_by: str
    requested_at: datetime = Field(sa_type=UTCDateTime(), index=True)  # listings are newest first
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    failure_class: str | None = None
    message: str = Field(default="", sa_type=Text)
    snapshot_id: str | None = None
    snapshot_time: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Measurements stay NULL until the drill finishes: "not measured" is not "zero".
    files_in_snapshot: int | None = Field(default=None, sa_type=BigInteger)
    bytes_in_snapshot: int | None = Field(default=None, sa_type=BigInteger)
    files_checked: int | None = Field(default=None, sa_type=BigInteger)
    files_changed_since_snapshot: int | None = Field(default=None, sa_type=BigInteger)
    bytes_restored: int | None = Field(default=None, sa_type=BigInteger)
    restore_s: float | None = None
    duration_s: float | None = None
    estimated_full_restore_s: float | None = None
    canaries_checked: int | None = None
    sample_budget_limited: bool | None = None  # the sample stopped at max_sample_bytes
    manifest_sha256: str | None = None  # digest of (path, sha256) of every verified file
    subset: str | None = None  # integrity runs: the part "n/t" read by `restic check --read-data-subset`
    restic_version: str = ""
    host: str = ""
    preuve_version: str = ""
    worker: str | None = None  # "pid@host" of the process that runs it
    options: str = Field(default="{}", sa_type=Text)  # JSON object
    # A queued drill is not claimed before this instant: the scheduler's deterministic per-target jitter spreads
    # drills scheduled at the same minute. NULL: claimable at once (a technician's request).
    not_before: datetime | None = Field(default=None, sa_type=UTCDateTime())


class DrillFinding(StoreModel, table=True):
    __tablename__ = "drillfinding"

    id: int | None = Field(default=None, primary_key=True)
    drill_id: int = Field(foreign_key="drillrun.id", index=True)
    path: str = Field(sa_type=Text)
    failure_class: str
    detail: str = Field(default="", sa_type=Text)


class DrillCommand(StoreModel, table=True):
    __tablename__ = "drillcommand"
    __table_args__ = (UniqueConstraint("drill_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    drill_id: int = Field(foreign_key="drillrun.id", index=True)
    seq: int  # order of the command within its drill, from 1
    argv: str = Field(sa_type=Text)  # JSON array of strings, secrets already masked
    started_at: datetime = Field(sa_type=UTCDateTime())
    duration_s: float
    exit_code: int | None = None
    timed_out: bool = False
    stdout: str = Field(default="", sa_type=Text)
    stderr: str = Field(default="", sa_type=Text)
    note: str = Field(default="", sa_type=Text)
    # True while the command runs (the live restore log, preuve.drills.live): duration so far and stderr's last
    # lines, rewritten at most every second or so; the drill's result completes the row when it is recorded.
    running: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class RepoLock(StoreModel, table=True):
    """At most one restic operation per repository, whether the daemon or a technician's CLI started it.

    A row is a held lock; its holder renews ``lease_until`` while it works, so a lock whose holder died
    (kill -9, power loss) expires by itself and can be taken over.
    """

    __tablename__ = "repolock"

    key: str = Field(primary_key=True)  # the repository's identity, e.g. repository_display(spec)
    holder: str  # "pid@host", or "pid@host/drill:N" for one drill of a daemon
    purpose: str  # what it is doing, for "who holds it" messages, e.g. "drill #12 acme/nas"
    acquired_at: datetime = Field(sa_type=UTCDateTime())
    lease_until: datetime = Field(sa_type=UTCDateTime())


class SchedulerLease(StoreModel, table=True):
    """The one daemon that schedules jobs for a database (others only dispatch queued drills)."""

    __tablename__ = "schedulerlease"

    name: str = Field(primary_key=True)  # e.g. "scheduler"
    holder: str  # "pid@host"
    acquired_at: datetime = Field(sa_type=UTCDateTime())
    lease_until: datetime = Field(sa_type=UTCDateTime())


class Flip(StoreModel, table=True):
    """A change of state worth telling someone about: a drill passed then failed, a rule became violated...

    Alerts are sent on flips (and reminders of a lasting failure), never once per failed run.
    """

    __tablename__ = "flip"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(index=True)
    target_ref: str | None = None  # "client/target"; None for client-wide or daemon-wide subjects
    subject: str = Field(index=True)  # e.g. "drill:acme/nas", "rule:acme:rpo:acme/nas", "config"
    kind: str  # drill | rule | config | daemon
    old_state: str | None = None  # None: first state ever seen
    new_state: str
    at: datetime = Field(sa_type=UTCDateTime(), index=True)
    summary: str
    details: str = Field(default="{}", sa_type=Text)  # JSON object
    reminder: bool = False  # a reminder that an earlier flip still holds, not a new change


class AlertDelivery(StoreModel, table=True):
    """One message about one flip to one destination; failures stay recorded, never silently dropped."""

    __tablename__ = "alertdelivery"

    id: int | None = Field(default=None, primary_key=True)
    flip_id: int = Field(foreign_key="flip.id", index=True)
    channel: str  # email | webhook
    destination: str  # an address, or a webhook URL with its secrets masked
    status: str = Field(index=True)  # pending | sent | failed
    attempts: int = 0
    last_error: str = Field(default="", sa_type=Text)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class LedgerEntry(StoreModel, table=True):
    """One link of a client's hash chain (see :mod:`preuve.store.ledger`); rows are appended, never updated."""

    __tablename__ = "ledgerentry"
    __table_args__ = (
        UniqueConstraint("client_id", "seq"),
        # A month's slice is found by time (the head before it, the head at its end), and an attestation reads
        # one kind of entry over a seq range (drills of the months before, the last probes before the month).
        Index("ix_ledgerentry_client_id_recorded_at_seq", "client_id", "recorded_at", "seq"),
        Index("ix_ledgerentry_client_id_kind_seq", "client_id", "kind", "seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(index=True)
    seq: int  # position in the client's chain, from 1
    kind: str  # drill | integrity | probe | policy | note
    ref_table: str | None = None  # the source row: "drillrun", "probe", "flip"; None for a free note
    ref_id: int | None = None
    recorded_at: datetime = Field(sa_type=UTCDateTime())
    payload: str = Field(sa_type=Text)  # canonical JSON object
    prev_hash: str  # hex SHA-256 of the entry before; 64 zeros for seq 1
    entry_hash: str  # hex SHA-256 of the canonical JSON of {client, seq, kind, recorded_at, payload, prev_hash}


class Attestation(StoreModel, table=True):
    """One issued monthly attestation (one version of it): where its files are and what they say.

    A regenerated month is a new row with the next ``version``; older versions and their files are kept.
    The files are the evidence; this row is an index for the console and for mailing.
    """

    __tablename__ = "attestation"
    __table_args__ = (UniqueConstraint("client_id", "month", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(index=True)
    month: str  # "YYYY-MM"
    version: int  # 1, 2, ... (files of version n > 1 carry ".vN" before their extension)
    language: str  # fr | en
    verdict: str  # the plan's headline verdict: met | partly | not-met | unknown
    restorable: str  # were the backups proven restorable this month: yes | partly | no | unknown
    keyid: str  # fingerprint of the Ed25519 key that signed the statement
    pdf_path: str
    statement_path: str
    html_path: str
    pdf_sha256: str
    ledger_head: str  # entry hash of the client's chain at the end of the month (64 zeros: empty chain)
    ledger_seq: int  # its sequence number (0: empty chain)
    # The month so far (it had not ended when issued): never counts as the month's attestation for the monthly run.
    partial: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    emailed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    email_error: str = Field(default="", sa_type=Text)


class WebUser(StoreModel, table=True):
    """Someone who may log in to the web console: a provider's admin or technician, or a client's user.

    Only the password's argon2 hash is stored. A client user is bound to exactly one client and sees nothing else.
    """

    __tablename__ = "webuser"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    role: str  # admin | technician | client
    client_id: str | None = None  # the one client a "client" user may see; None for the provider's staff
    password_hash: str
    failed_logins: int = 0  # consecutive failed logins; reset by a successful one or `preuve users reset`
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class WebSession(StoreModel, table=True):
    """A logged-in browser. The cookie holds a random secret; only its SHA-256 is stored here."""

    __tablename__ = "websession"

    id: str = Field(primary_key=True)  # hex SHA-256 of the cookie's secret
    user_id: int = Field(foreign_key="webuser.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime())
    expires_at: datetime = Field(sa_type=UTCDateTime())
    address: str = ""  # the client address that logged in, for the record


class ApiToken(StoreModel, table=True):
    """A token for scripts (`Authorization: Bearer ...`), shown once when created; only its SHA-256 is stored."""

    __tablename__ = "apitoken"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="webuser.id", index=True)
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime())
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
