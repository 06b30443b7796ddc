"""How restic reaches each kind of target: repository string, ``-o`` options and environment.

Secrets are read here only to register them for masking; they reach restic through RESTIC_PASSWORD_FILE and the
child environment, never argv. Problems with the secret files themselves are ``auth`` failures that name the file.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from preuve import redact
from preuve.config.model import LocalTarget, RestTarget, S3Target, SftpTarget, Target, resolve
from preuve.errors import FailureClass, PreuveError

ENV_SECRET_KEYS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "RESTIC_REST_PASSWORD")
S3_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class RepoAccess:
    repository: str  # RESTIC_REPOSITORY; may carry REST credentials, so it is masked and never put in argv
    display: str  # safe to show and store
    options: tuple[str, ...] = ()  # restic -o key=value
    env: dict[str, str] = field(default_factory=dict)


def read_secret_file(path: Path, what: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PreuveError(FailureClass.AUTH, f"The {what} {path} does not exist.") from None
    except PermissionError:
        raise PreuveError(FailureClass.AUTH, f"The {what} {path} cannot be read by this user.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PreuveError(FailureClass.AUTH, f"The {what} {path} cannot be read ({type(exc).__name__}).") from None
    if not value:
        raise PreuveError(FailureClass.AUTH, f"The {what} {path} is empty.")
    redact.register(value)
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``export`` and quotes allowed, # comments); every value of a secret key is registered."""
    text = read_secret_file(path, "credentials file")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            # never echo the line itself: it may be a secret with a typo
            raise PreuveError(FailureClass.AUTH, f"{path}:{number}: expected KEY=VALUE.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
        if key in ENV_SECRET_KEYS or "SECRET" in key or "PASSWORD" in key or "TOKEN" in key:
            redact.register(value)
    return values


def _password_env(spec: Target, base: Path) -> dict[str, str]:
    path = resolve(base, spec.password_file)
    read_secret_file(path, "repository password file")
    return {"RESTIC_PASSWORD_FILE": str(path)}


def repo_access(spec: Target, base: Path) -> RepoAccess:
    """The restic access for a configured target; ``base`` is the configuration folder."""
    if isinstance(spec, LocalTarget):
        path = str(resolve(base, spec.path))
        return RepoAccess(path, path, env={"RESTIC_REPOSITORY": path, **_password_env(spec, base)})
    if isinstance(spec, SftpTarget):
        return _sftp(spec, base)
    if isinstance(spec, S3Target):
        return _s3(spec, base)
    if isinstance(spec, RestTarget):
        return _rest(spec, base)
    raise AssertionError(f"unknown target kind {spec!r}")


def _quote(value: str) -> str:
    # restic splits sftp.command with shell-like rules: quote what has spaces or quotes
    return shlex.quote(value) if any(c in value for c in " \t'\"\\") else value


def ssh_command(spec: SftpTarget, base: Path) -> list[str]:
    """The ssh command for a NAS: no user config, pinned host keys, the configured key only, never a prompt."""
    identity = resolve(base, spec.identity_file)
    known_hosts = resolve(base, spec.known_hosts)
    check_identity_file(identity)
    if not known_hosts.is_file():
        raise PreuveError(
            FailureClass.AUTH,
            f"The known_hosts file {known_hosts} does not exist: Preuve refuses unknown NAS host keys. "
            f"Add the NAS's key after checking its fingerprint (ssh-keyscan -p {spec.port} {spec.host}).",
        )
    return [
        "ssh", "-F", "none",
        "-p", str(spec.port),
        "-i", str(identity),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=30",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        "-l", spec.user,
        spec.host,
    ]  # fmt: skip


def check_identity_file(identity: Path) -> None:
    try:
        mode = identity.stat().st_mode
    except FileNotFoundError:
        raise PreuveError(FailureClass.AUTH, f"The SSH key {identity} does not exist.") from None
    except PermissionError:
        raise PreuveError(FailureClass.AUTH, f"The SSH key {identity} cannot be read by this user.") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PreuveError(
            FailureClass.AUTH,
            f"The SSH key {identity} is readable by other users, so ssh refuses it: chmod 600 {identity}.",
        )
    if not os.access(identity, os.R_OK):
        raise PreuveError(FailureClass.AUTH, f"The SSH key {identity} cannot be read by this user.")


def _sftp(spec: SftpTarget, base: Path) -> RepoAccess:
    command = " ".join(_quote(part) for part in [*ssh_command(spec, base), "-s", "sftp"])
    # With sftp.command set, restic ignores the URL's host: only the path counts (RESTIC.md section 3).
    repository = f"sftp:{spec.host}:{spec.path}"
    display = f"sftp:{spec.user}@{spec.host}:{spec.port}{spec.path}"
    return RepoAccess(
        repository,
        display,
        options=(f"sftp.command={command}",),
        env={"RESTIC_REPOSITORY": repository, **_password_env(spec, base)},
    )


def _s3(spec: S3Target, base: Path) -> RepoAccess:
    values = read_env_file(resolve(base, spec.env_file))
    missing = [key for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not values.get(key)]
    if missing:
        raise PreuveError(
            FailureClass.AUTH, f"The credentials file {resolve(base, spec.env_file)} lacks {', '.join(missing)}."
        )
    prefix = spec.prefix.strip("/")
    repository = f"s3:{spec.endpoint}/{spec.bucket}" + (f"/{prefix}" if prefix else "")
    env = {key: values[key] for key in S3_ENV_KEYS if values.get(key)}
    if spec.region:
        env["AWS_DEFAULT_REGION"] = spec.region
    return RepoAccess(repository, repository, env={"RESTIC_REPOSITORY": repository, **env, **_password_env(spec, base)})


def _rest(spec: RestTarget, base: Path) -> RepoAccess:
    url = spec.url if spec.url.endswith("/") else spec.url + "/"  # the trailing slash matters to restic
    display = f"rest:{url}"
    repository = display
    if spec.env_file:
        values = read_env_file(resolve(base, spec.env_file))
        user, password = values.get("RESTIC_REST_USERNAME", ""), values.get("RESTIC_REST_PASSWORD", "")
        if user or password:
            # restic 0.14 only takes REST credentials in the URL; it travels in the environment, masked
            parts = urlsplit(url)
            netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
            redact.register(quote(password, safe=""))
            repository = "rest:" + urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return RepoAccess(repository, display, env={"RESTIC_REPOSITORY": repository, **_password_env(spec, base)})
