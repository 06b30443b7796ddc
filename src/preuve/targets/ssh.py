"""One way to open an SSH connection to a NAS from Python: its configured key only, host keys pinned.

Used to read a live source over SFTP and to read storage facts (free space); restic itself goes through the
OpenSSH client (see :mod:`preuve.targets.access`). An unknown host key is refused, never added.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from preuve.config.model import LocalTarget, RestTarget, S3Target, SftpTarget, resolve
from preuve.errors import FailureClass, PreuveError
from preuve.targets.access import check_identity_file

if TYPE_CHECKING:
    import paramiko


def connect(spec: SftpTarget, base: Path, *, timeout_s: float) -> paramiko.SSHClient:
    """A connected client, or a PreuveError (auth or unreachable) saying what to check."""
    import paramiko  # here: a tenth of a second of start-up that only SFTP targets need

    identity = resolve(base, spec.identity_file)
    check_identity_file(identity)
    known_hosts = resolve(base, spec.known_hosts)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
    except OSError as exc:
        raise PreuveError(FailureClass.AUTH, f"Cannot read known_hosts {known_hosts}: {exc.strerror}.") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            spec.host,
            port=spec.port,
            username=spec.user,
            key_filename=str(identity),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout_s,
            banner_timeout=timeout_s,
            auth_timeout=timeout_s,
        )
    except paramiko.AuthenticationException:
        client.close()
        raise PreuveError(FailureClass.AUTH, f"The NAS {spec.host} refused the SSH key {identity}.") from None
    except paramiko.SSHException as exc:
        client.close()
        raise PreuveError(
            FailureClass.AUTH if "host key" in str(exc).lower() else FailureClass.UNREACHABLE,
            f"SSH to {spec.host}:{spec.port} failed: {exc}.",
        ) from None
    except OSError as exc:
        client.close()
        raise PreuveError(
            FailureClass.UNREACHABLE, f"Cannot connect to {spec.host}:{spec.port}: {exc.strerror or exc}."
        ) from None
    return client


def explain_sftp_failure(
    spec: LocalTarget | SftpTarget | S3Target | RestTarget, base: Path, error: PreuveError, *, timeout_s: float
) -> PreuveError:
    """A sharper error when restic could only say that its SFTP session did not start.

    restic 0.14 copies the ssh client's stderr through a goroutine and may exit before it has written it, so a
    refused key sometimes shows up as just ``unable to start the sftp session, error: EOF``: it would read as an
    unreachable NAS. One SSH connection of our own tells which it is: a refused key or unknown host key gives the
    ``auth`` error; anything else (other kinds of target included) keeps restic's account.
    """
    if (
        not isinstance(spec, SftpTarget)
        or error.failure_class is not FailureClass.UNREACHABLE
        or "sftp session" not in error.message
    ):
        return error
    try:
        client = connect(spec, base, timeout_s=timeout_s)
    except PreuveError as diagnosed:
        if diagnosed.failure_class is FailureClass.AUTH:
            return PreuveError(FailureClass.AUTH, f"{diagnosed.message} (restic: the SFTP session did not start)")
        return error
    client.close()
    return error
