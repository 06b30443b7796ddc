"""The shape of the configuration: preuve.toml settings and one job file per client.

Pydantic models validate types and closed vocabularies; :mod:`preuve.config.loader` maps each validation error back
to the file and line it came from, then checks the rules that span fields and files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from preuve.config.units import parse_duration, parse_size

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Canary(_Strict):
    path: str
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.lower()
        if not _SHA256.match(value):
            raise ValueError("must be 64 hexadecimal characters (a SHA-256 digest)")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be the absolute path of the file as it was backed up")
        return value


Location = Literal["onsite", "offsite"]
Media = Literal["disk", "nas", "object-storage", "tape", "other"]


class _TargetBase(_Strict):
    password_file: str
    location: Location
    media: Media
    source: str | None = None
    canaries: list[Canary] = Field(default_factory=list)
    timeout: str | None = None  # deadline for opening the repository; overrides preuve.toml
    enabled: bool = True

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("sftp://"):
            rest = value[len("sftp://") :]
            if "/" not in rest or not rest.split("/", 1)[0]:
                raise ValueError("an SFTP source reads sftp://HOST/absolute/path")
            return value
        if not value.startswith("/"):
            raise ValueError("must be an absolute local path or sftp://HOST/path")
        return value


class LocalTarget(_TargetBase):
    kind: Literal["local"]
    path: str


class SftpTarget(_TargetBase):
    kind: Literal["sftp"]
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str
    identity_file: str
    known_hosts: str
    path: str

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path on the NAS")
        return value


class S3Target(_TargetBase):
    kind: Literal["s3"]
    endpoint: str
    bucket: str
    prefix: str = ""
    region: str | None = None
    env_file: str

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("must be an http:// or https:// URL with no path, like https://s3.example.net")
        if "@" in value:
            raise ValueError("must not carry credentials: put them in env_file")
        return value.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", value):
            raise ValueError("is not a valid S3 bucket name")
        return value


class RestTarget(_TargetBase):
    kind: Literal["rest"]
    url: str
    env_file: str | None = None  # RESTIC_REST_USERNAME / RESTIC_REST_PASSWORD
    append_only: bool = False  # declared by the provider; reported as declared, not verified

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s]+$", value):
            raise ValueError("must be an http:// or https:// URL")
        if "@" in value.split("/")[2]:
            raise ValueError("must not carry credentials: put them in env_file")
        return value


Target = Annotated[LocalTarget | SftpTarget | S3Target | RestTarget, Field(discriminator="kind")]


def _target_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"target name {name!r} must be lowercase letters, digits, '-' or '_'")
    return name


def _email(address: str) -> str:
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", address):
        raise ValueError(f"{address!r} is not an e-mail address")
    return address


def _policy_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a policy name: the name of a file in policies/ without .yaml")
    return name


# Checked one by one, so that an error names the offending target or address (and its line), not the whole field.
TargetName = Annotated[str, AfterValidator(_target_name)]
Email = Annotated[str, AfterValidator(_email)]
PolicyName = Annotated[str, AfterValidator(_policy_name)]


class Schedule(_Strict):
    drill: str | None = None
    integrity: str | None = None


class JobFile(_Strict):
    client: str = Field(min_length=1)
    language: Literal["fr", "en"] = "en"
    contacts: list[Email] = Field(default_factory=list)
    policy: PolicyName = "standard"
    policy_overrides: dict[str, object] = Field(default_factory=dict)
    targets: dict[TargetName, Target]
    schedule: Schedule = Field(default_factory=Schedule)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: dict[str, Target]) -> dict[str, Target]:
        if not value:
            raise ValueError("a client needs at least one target")
        return value


class DrillSettings(_Strict):
    confidence: float = Field(default=0.99, gt=0, lt=1)
    defect_rate: float = Field(default=0.01, gt=0, lt=1)
    max_sample_bytes: str = "2GiB"
    large_file_share: float = Field(default=0.1, ge=0, le=1)  # share of the sample drawn from the largest files
    open_timeout: str = "120s"  # opening the repository and listing snapshots
    min_throughput: str = "2MiB"  # per second; restore deadline = open_timeout + bytes / this
    integrity_timeout: str = "6h"  # deadline of one `check --read-data-subset` run, beyond opening
    entropy_threshold: float = Field(default=7.8, gt=0, le=8)  # bits per byte
    max_suspicious_files: int = Field(default=0, ge=0)

    @field_validator("max_sample_bytes", "min_throughput")
    @classmethod
    def _size(cls, value: str) -> str:
        parse_size(value)
        return value

    @field_validator("open_timeout", "integrity_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT, like 127.0.0.1:9464")
    return value


class DaemonSettings(_Strict):
    """How `preuve daemon` paces its work."""

    probe_every: str = "15m"  # snapshot refresh: records snapshot history for RPO
    policy_every: str = "1h"  # policy evaluation (alerts on verdict changes)
    jitter: str = "30m"  # drills due at the same time are spread over this, deterministically per target
    max_per_storage_host: int = Field(default=1, ge=1)  # concurrent drills against one NAS / endpoint
    misfire_grace: str = "6h"  # a drill missed while the daemon was down still runs if it is back within this
    lock_wait: str = "10m"  # how long `drill run` waits for a repository lock held by someone else
    lock_lease: str = "2m"  # a lock whose holder stops renewing it expires after this
    poll_every: str = "5s"  # how often the daemon looks for queued drills
    stop_timeout: str = "30s"  # SIGTERM: how long running drills get to be interrupted and cleaned

    @field_validator(
        "probe_every",
        "policy_every",
        "jitter",
        "misfire_grace",
        "lock_wait",
        "lock_lease",
        "poll_every",
        "stop_timeout",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class MetricsSettings(_Strict):
    enabled: bool = True
    listen: str = "127.0.0.1:9464"

    _listen = field_validator("listen")(classmethod(lambda cls, v: _listen(v)))


class AlertSettings(_Strict):
    email: list[str] = Field(default_factory=list)
    webhook: str | None = None  # JSON POST; its "text" field reads well in Slack and Teams
    reminder_after: str = "24h"  # a failure still unresolved after this is reminded once per period
    dead_man_url: str | None = None  # pinged (GET) after every successful scheduler cycle
    max_attempts: int = Field(default=8, ge=1)  # deliveries are retried with back-off, then recorded as failed

    @field_validator("reminder_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("webhook", "dead_man_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.match(r"^[^@\s]+@[^@\s]+$", address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class SmtpSettings(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False  # implicit TLS (port 465)
    sender: str = Field(default="preuve@localhost", alias="from")
    username: str = ""
    password_file: str = ""  # relative to the configuration folder; never the password itself
    timeout: str = "30s"

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class WebSettings(_Strict):
    """The web console (provider console and client portal), served by `preuve web` or by the daemon."""

    listen: str = "127.0.0.1:8080"  # keep it on loopback behind a TLS reverse proxy (deploy/nginx-preuve.conf)
    public_url: str | None = None  # the address users type, e.g. https://preuve.provider.example
    session_lifetime: str = "12h"  # a browser session ends this long after login
    max_failed_logins: int = Field(default=5, ge=1)  # wrong passwords in a row before the account locks
    lockout: str = "15m"  # how long a locked account refuses every password

    _listen = field_validator("listen")(classmethod(lambda cls, v: _listen(v)))

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s@]+(/\S*)?$", value):
            raise ValueError("must be the console's http:// or https:// address, like https://preuve.example.net")
        return value.rstrip("/") if value else value

    @field_validator("session_lifetime", "lockout")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS when users reach the console by an https:// address (behind a TLS proxy)."""
        return bool(self.public_url and self.public_url.startswith("https://"))


class Settings(_Strict):
    database: str = "sqlite:///preuve.db"
    sandbox: str = "sandbox"
    keys: str = "keys"
    restic: str = "restic"
    max_concurrent_drills: int = Field(default=2, ge=1)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    # None: no [web] section; `preuve web` then serves with the defaults and the daemon serves no console.
    web: WebSettings | None = None


def resolve(base: Path, value: str) -> Path:
    """A configured path: absolute as written, else relative to the configuration folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
