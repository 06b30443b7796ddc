"""Probe a target without restoring: reachable? credentials right? repository opens? newest snapshot and its age?

Plus what only the storage itself can say: for S3 (boto3) whether the bucket exists and its versioning and Object
Lock settings, read from the bucket and never trusted from configuration; for SFTP (paramiko) and local disks the
free space where the repository lives.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import socket
import tempfile
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import paramiko

from preuve import __version__, redact
from preuve.config.loader import Config, TargetRef
from preuve.config.model import LocalTarget, S3Target, SftpTarget, resolve
from preuve.config.units import parse_duration
from preuve.drills.result import CommandLog
from preuve.drills.sandbox import remove_tree
from preuve.errors import FailureClass, PreuveError
from preuve.restic.runner import Restic
from preuve.targets import ssh
from preuve.targets.access import read_env_file, repo_access
from preuve.targets.facts import ProbeResult
from preuve.targets.snapshot_stats import SnapshotStats, measure

logger = logging.getLogger(__name__)

MEASURE_PER_PROBE = 3  # snapshots measured (stats + diff, about 1 s of restic each) per probe at most


def probe_target(
    config: Config,
    target: TargetRef,
    wanted: list[str] | None = None,
    *,
    known: Collection[str] | None = None,
) -> tuple[ProbeResult, list[CommandLog]]:
    """Probe ``target``; when it succeeds, also measure up to :data:`MEASURE_PER_PROBE` snapshots, newest first.

    Measured are the listed snapshots whose id is in ``wanted`` (those the store has no stats for, see
    :func:`preuve.store.records.snapshots_without_stats`) and, when ``known`` is given (every snapshot id the
    store has for the target), the listed snapshots not in it: new since the last listing, unmeasured too.
    With neither, nothing is measured. The results are in ``ProbeResult.snapshot_stats``.
    """
    spec = target.spec
    open_timeout_s = parse_duration(spec.timeout or config.settings.drill.open_timeout).total_seconds()
    result = ProbeResult(
        ok=False,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        host=socket.gethostname(),
        preuve_version=__version__,
    )
    log: list[CommandLog] = []
    # restic needs a HOME and TMPDIR; the probe keeps them (and a fresh cache) in a throw-away folder
    config.sandbox_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="preuve-probe-", dir=config.sandbox_root))
    try:
        result.facts = _storage_facts(config, target, open_timeout_s)
        access = repo_access(spec, config.directory)
        for folder in ("home", "tmp"):
            (scratch / folder).mkdir()
        restic = Restic(
            config.settings.restic,
            access,
            label=target.ref,
            home=scratch / "home",
            tmpdir=scratch / "tmp",
            cache_dir=None,
            open_timeout_s=open_timeout_s,
        )
        try:
            result.restic_version = str(restic.version)
            result.snapshots = restic.snapshots()
            result.reachable = result.credentials_ok = result.repository_opens = True
            result.repository_id = restic.repository_id()
            result.ok = True
            result.snapshot_stats = _measure(restic, result, wanted, known, deadline_s=open_timeout_s)
        finally:
            log = restic.log
    except PreuveError as exc:
        exc = ssh.explain_sftp_failure(spec, config.directory, exc, timeout_s=open_timeout_s)
        result.failure_class = exc.failure_class
        result.message = redact.mask(exc.full_message)
        _infer_reachability(result, exc.failure_class)
    finally:
        remove_tree(scratch)
        result.finished_at = datetime.now(UTC)
    if result.ok:
        newest = result.newest
        if newest is None:
            result.message = "The repository opens but holds no snapshot."
        else:
            age = result.finished_at - newest.time
            result.message = (
                f"The repository opens; {len(result.snapshots)} snapshots, the newest {newest.short_id} "
                f"of {newest.time:%Y-%m-%d %H:%M} UTC ({_age(age.total_seconds())} old)."
            )
    return result, log


def _measure(
    restic: Restic,
    result: ProbeResult,
    wanted: list[str] | None,
    known: Collection[str] | None,
    *,
    deadline_s: float,
) -> list[SnapshotStats]:
    if wanted is None and known is None:
        return []
    asked = set(wanted or ())
    chosen = [
        s.id
        for s in sorted(result.snapshots, key=lambda s: (s.time, s.id), reverse=True)
        if s.id in asked or (known is not None and s.id not in known)
    ][:MEASURE_PER_PROBE]
    if not chosen:
        return []
    try:
        return measure(restic, result.snapshots, chosen, deadline_s=deadline_s)
    except Exception:  # sizes are extras: a bug measuring them must not fail the probe
        logger.exception("measuring snapshots of %s failed", restic.label)
        return []


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _infer_reachability(result: ProbeResult, failure_class: FailureClass) -> None:
    if failure_class in (FailureClass.UNREACHABLE, FailureClass.TIMEOUT):
        result.reachable = False
    elif failure_class is FailureClass.AUTH:
        result.reachable, result.credentials_ok = True, False
    elif failure_class in (FailureClass.REPO_MISSING, FailureClass.REPO_LOCKED, FailureClass.CORRUPT_DATA):
        result.reachable, result.credentials_ok, result.repository_opens = True, True, False


def _storage_facts(config: Config, target: TargetRef, timeout_s: float) -> dict[str, Any]:
    spec = target.spec
    try:
        if isinstance(spec, S3Target):
            return {"s3": s3_facts(spec, config.directory, timeout_s)}
        if isinstance(spec, SftpTarget):
            return {"sftp": sftp_facts(spec, config.directory, timeout_s)}
        if isinstance(spec, LocalTarget):
            path = resolve(config.directory, spec.path)
            if path.exists():
                usage = shutil.disk_usage(path)
                return {"local": {"free_bytes": usage.free, "total_bytes": usage.total}}
            return {"local": {"exists": False}}
    except PreuveError:
        raise
    except Exception as exc:  # the storage facts are extras: a failure here is recorded, not fatal
        return {"error": redact.mask(f"{type(exc).__name__}: {exc}")}
    return {}


def s3_client(spec: S3Target, base: Path, timeout_s: float) -> Any:
    values = read_env_file(resolve(base, spec.env_file))
    return boto3.client(
        "s3",
        endpoint_url=spec.endpoint,
        aws_access_key_id=values.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=values.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=values.get("AWS_SESSION_TOKEN") or None,
        region_name=spec.region or values.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=botocore.config.Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2}),
    )


def s3_facts(spec: S3Target, base: Path, timeout_s: float) -> dict[str, Any]:
    """Bucket existence, versioning and Object Lock as the bucket reports them."""
    client = s3_client(spec, base, timeout_s)
    facts: dict[str, Any] = {"bucket": spec.bucket}
    try:
        client.head_bucket(Bucket=spec.bucket)
        facts["bucket_exists"] = True
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        facts["bucket_exists"] = False if code in ("404", "NoSuchBucket", "NotFound") else None
        facts["error"] = code
        return facts
    except botocore.exceptions.EndpointConnectionError:
        facts["reachable"] = False
        return facts
    versioning = client.get_bucket_versioning(Bucket=spec.bucket)
    facts["versioning"] = versioning.get("Status", "Disabled")
    try:
        lock = client.get_object_lock_configuration(Bucket=spec.bucket)["ObjectLockConfiguration"]
        facts["object_lock"] = lock.get("ObjectLockEnabled") == "Enabled"
        retention = lock.get("Rule", {}).get("DefaultRetention")
        if retention:
            days = retention.get("Days") or (retention.get("Years", 0) * 365)
            facts["default_retention"] = {"mode": retention.get("Mode"), "days": int(days)}
        else:
            facts["default_retention"] = None
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"):
            facts["object_lock"] = False
            facts["default_retention"] = None
        else:
            facts["object_lock"] = None
            facts["object_lock_error"] = code
    return facts


def sftp_facts(spec: SftpTarget, base: Path, timeout_s: float) -> dict[str, Any]:
    """Free space where the repository lives (statvfs@openssh.com), with pinned host keys."""
    try:
        client = ssh.connect(spec, base, timeout_s=timeout_s)
    except PreuveError as exc:
        return {"connected": False, "error": exc.failure_class.value}
    try:
        sftp = client.open_sftp()
        facts: dict[str, Any] = {"connected": True}
        try:
            facts["repository_exists"] = bool(sftp.stat(spec.path))
        except OSError:
            facts["repository_exists"] = False
        free = _statvfs(client, spec.path if facts["repository_exists"] else "/")
        facts.update(free)
        sftp.close()
        return facts
    finally:
        client.close()


def _statvfs(client: paramiko.SSHClient, path: str) -> dict[str, Any]:
    """paramiko has no statvfs; OpenSSH's sftp server answers `df` through the exec channel as a fallback."""
    try:
        _, stdout, _ = client.exec_command(f"df -Pk -- {shlex.quote(path)}", timeout=30)
        lines = stdout.read().decode("utf-8", "replace").splitlines()
        fields = lines[-1].split()
        return {"total_bytes": int(fields[1]) * 1024, "free_bytes": int(fields[3]) * 1024}
    except (paramiko.SSHException, OSError, IndexError, ValueError):
        return {"free_bytes": None}
