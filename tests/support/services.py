"""Real servers on 127.0.0.1 for integration tests: OpenSSH sshd, moto (S3), rclone's restic REST server.

Plain Python, no pytest: the fixtures in :mod:`tests.support.fixtures_services` wrap these, and a developer can start
them by hand from a REPL. Every server is a child process started in a session of its own; ``stop()`` signals exactly
that process group (whose id is the PID we started, still unreaped, so it cannot have been reused), never a name.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
RCLONE = "/usr/bin/rclone"

__all__ = [
    "LOOPBACK",
    "Blackhole",
    "RestServer",
    "S3Server",
    "Service",
    "ServiceError",
    "SshServer",
    "descendants",
    "free_port",
    "pid_alive",
    "port_open",
    "process_group_members",
    "remove_tree",
    "start_blackhole",
    "start_moto",
    "start_rest",
    "start_sshd",
]


class ServiceError(RuntimeError):
    """A server did not come up (it died, or its port never opened); the message carries its log tail."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it; a tiny race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def process_group_members(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is the state, fields[2] the process group.
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent PID, start time in clock ticks) of a process, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # After the command: state(0) ppid(1) pgrp(2) session(3) ... starttime is field 22 of the line, index 19 here.
    return fields[0], int(fields[1]), int(fields[19])


def descendants(pid: int) -> list[tuple[int, int]]:
    """(PID, start time) of every live descendant of ``pid``, found through /proc parent links.

    The start time lets a later signal check that a PID still names the same process.
    """
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        info = _proc_stat(int(entry.name))
        if info is None or info[0] == "Z":
            continue
        children.setdefault(info[1], []).append(int(entry.name))
        starts[int(entry.name)] = info[2]
    found: list[tuple[int, int]] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, starts[child]))
        todo.extend(children.get(child, []))
    return found


def _same_process_alive(pid: int, start: int) -> bool:
    info = _proc_stat(pid)
    return info is not None and info[0] != "Z" and info[2] == start


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Service:
    """One server process: started with Popen in its own session, ready when a TCP port on 127.0.0.1 accepts."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._stopped = False
        self._paused = False
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        self.pid = self.process.pid
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServiceError(
                    f"{self.name} exited with code {code} before port {self.port} opened; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if port_open(self.port, timeout=0.2):
                return
            time.sleep(0.05)
        raise ServiceError(
            f"{self.name} did not open port {self.port} within {timeout:.0f} s; "
            f"log {self.log_path}:\n{_tail(self.log_path)}"
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal_group(self, sig: int) -> None:
        # The group id is our child's PID. While the child is unreaped, or while any member of its group lives,
        # that number cannot be handed to another process, so this reaches only what we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def pause(self) -> None:
        """SIGSTOP the server: its port still accepts TCP connections (the kernel answers) but nothing replies."""
        if self.running:
            os.kill(self.pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self.running:
            os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """``with server.paused(): ...`` hangs the server for the block and always resumes it."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def descendants(self) -> list[tuple[int, int]]:
        """(PID, start time) of the processes the server forked (e.g. sshd's per-connection children)."""
        return descendants(self.pid) if self.running else []

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server, wait up to ``grace`` seconds, then SIGKILL.

        Also ends what it forked: members of its process group, and descendants that left the group (sshd's
        per-connection children call setsid() and outlive the listener), each checked by PID and start time.
        """
        if self._stopped:
            return
        self._stopped = True
        forked = self.descendants()
        if self.running:
            if self._paused:
                os.kill(self.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace)
        else:
            self.process.wait(timeout=grace)
        deadline = time.monotonic() + grace
        if process_group_members(self.pid):
            self._signal_group(signal.SIGTERM)
            while process_group_members(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if process_group_members(self.pid):
                self._signal_group(signal.SIGKILL)
        self._end_forked(forked, deadline)

    @staticmethod
    def _end_forked(forked: list[tuple[int, int]], deadline: float) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [(pid, start) for pid, start in forked if _same_process_alive(pid, start)]
            for pid, _ in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            while alive and time.monotonic() < deadline:
                time.sleep(0.05)
                alive = [(pid, start) for pid, start in alive if _same_process_alive(pid, start)]
            if not alive:
                return
            deadline = time.monotonic() + 5

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} port={self.port}>"


def _start_on_free_port(start: Callable[[int], Service], attempts: int = 3) -> Service:
    """Call ``start(port)`` with a fresh free port, again if the server died (another process took the port)."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except ServiceError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------------- sshd / SFTP


@dataclass
class SshServer:
    """OpenSSH sshd on 127.0.0.1 with key-only login for the current user, and the files a client needs."""

    service: Service
    workdir: Path
    host: str
    port: int
    user: str
    identity_file: Path
    refused_identity_file: Path
    known_hosts: Path
    host_public_key: str

    @property
    def pid(self) -> int:
        return self.service.pid

    def ssh_command(self, identity_file: Path | None = None) -> str:
        """The value for restic's ``-o sftp.command=...`` (restic splits it on spaces, so paths must have none)."""
        return " ".join([*self.ssh_argv(identity_file), "-s", "sftp"])

    def ssh_argv(self, identity_file: Path | None = None) -> list[str]:
        key = identity_file or self.identity_file
        return [
            "ssh", "-F", "none", "-p", str(self.port), "-i", str(key),
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-l", self.user, self.host,
        ]  # fmt: skip

    def stop(self) -> None:
        self.service.stop()

    def pause(self) -> None:
        self.service.pause()

    def resume(self) -> None:
        self.service.resume()


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    path.chmod(0o600)


def start_sshd(workdir: Path, *, ready_timeout: float = 30.0) -> SshServer:
    """Start /usr/sbin/sshd -D -e with its own config and keys under ``workdir`` (created if missing).

    ``workdir`` must not contain spaces: restic splits ``sftp.command`` on whitespace.
    """
    workdir = Path(workdir).resolve()
    if any(ch.isspace() for ch in str(workdir)):
        raise ValueError(f"sshd workdir {workdir} must not contain whitespace (restic splits sftp.command)")
    workdir.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    user = getpass.getuser()

    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "client_ed25519"
    refused_key = workdir / "refused_ed25519"
    for key, comment in ((host_key, "preuve-test-host"), (client_key, "preuve-test-client"),
                         (refused_key, "preuve-test-refused")):  # fmt: skip
        if not key.exists():
            _keygen(key, comment)
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)

    config = workdir / "sshd_config"

    def launch(port: int) -> Service:
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    f"ListenAddress {LOOPBACK}",
                    f"HostKey {host_key}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    f"AllowUsers {user}",
                    "Subsystem sftp internal-sftp",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        return Service(
            "sshd",
            [SSHD, "-D", "-e", "-f", str(config)],
            port=port,
            log_dir=workdir,
            ready_timeout=ready_timeout,
        )

    service = _start_on_free_port(launch)
    port = service.port
    host_public_key = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[{LOOPBACK}]:{port} {host_public_key}\n")
    return SshServer(
        service=service,
        workdir=workdir,
        host=LOOPBACK,
        port=port,
        user=user,
        identity_file=client_key,
        refused_identity_file=refused_key,
        known_hosts=known_hosts,
        host_public_key=host_public_key,
    )


# ----------------------------------------------------------------------------------------------------- moto / S3


def _access_key_id() -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def _secret_access_key() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


@dataclass
class S3Server:
    """moto's S3 server on 127.0.0.1. Everything lives in its memory: a restart loses every bucket.

    moto accepts any credentials unless started with ``enforce_auth``; the keys below are then the only ones it
    accepts. Otherwise they are random but real-looking (AKIA..., 40-character secret), so that tests can grep logs
    for the secret.
    """

    service: Service
    endpoint: str
    port: int
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    _client: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.service.pid

    def client(self) -> Any:
        """A boto3 S3 client for this server (created once)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                region_name=self.region,
                config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}),
            )
        return self._client

    def env(self) -> dict[str, str]:
        """The environment restic needs for this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}

    def create_bucket(self, name: str, *, object_lock: bool = False, versioning: bool = False) -> str:
        client = self.client()
        if object_lock:
            client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            client.create_bucket(Bucket=name)
        if versioning and not object_lock:  # object lock turns versioning on by itself
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def delete_bucket(self, name: str) -> None:
        """Remove every object version and the bucket itself (ignores a bucket that is already gone)."""
        client = self.client()
        try:
            paginator = client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=name):
                items = [
                    {"Key": item["Key"], "VersionId": item["VersionId"]}
                    for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
                for start in range(0, len(items), 1000):
                    client.delete_objects(Bucket=name, Delete={"Objects": items[start : start + 1000]})
            client.delete_bucket(Bucket=name)
        except client.exceptions.NoSuchBucket:
            return

    def stop(self) -> None:
        self.service.stop()

    def pause(self) -> None:
        self.service.pause()

    def resume(self) -> None:
        self.service.resume()


def start_moto(workdir: Path, *, enforce_auth: bool = False, ready_timeout: float = 60.0) -> S3Server:
    """Start ``python -m moto.server -H 127.0.0.1 -p PORT`` with this interpreter; logs go to ``workdir``.

    By default moto accepts any credentials and the server's keys are random look-alikes. With ``enforce_auth``
    moto checks them (``INITIAL_NO_AUTH_ACTION_COUNT``): the first three requests create an IAM user with an
    allow-all policy and an access key, which become the server's keys; any other key is then refused
    (``The AWS Access Key Id you provided does not exist in our records.``).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "INITIAL_NO_AUTH"))}
    # Keep moto's own state and any config lookups inside the work folder.
    env["HOME"] = str(workdir)
    env["PYTHONUNBUFFERED"] = "1"
    if enforce_auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    service = _start_on_free_port(
        lambda port: Service(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            port=port,
            log_dir=workdir,
            env=env,
            cwd=workdir,
            ready_timeout=ready_timeout,
        )
    )
    port = service.port
    endpoint = f"http://{LOOPBACK}:{port}"
    access_key_id, secret_access_key = _access_key_id(), _secret_access_key()
    if enforce_auth:
        try:
            access_key_id, secret_access_key = _moto_iam_key(endpoint, access_key_id, secret_access_key)
        except BaseException:
            service.stop()
            raise
    return S3Server(
        service=service,
        endpoint=endpoint,
        port=port,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )


def _moto_iam_key(endpoint: str, key_id: str, secret: str) -> tuple[str, str]:
    """Create, in moto's IAM, a user allowed everything and an access key for it (three unauthenticated calls)."""
    import boto3

    iam = boto3.client(
        "iam", endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="us-east-1"
    )
    iam.create_user(UserName="preuve-test")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="preuve-test", PolicyName="allow-all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="preuve-test")["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


# ------------------------------------------------------------------------------------------ rclone REST server


@dataclass
class RestServer:
    """``rclone serve restic`` on 127.0.0.1: one server, one repository per sub-folder of ``root``."""

    service: Service
    url: str
    port: int
    root: Path

    @property
    def pid(self) -> int:
        return self.service.pid

    def repo_url(self, name: str) -> str:
        """``http://127.0.0.1:PORT/<name>/`` (the trailing slash matters to restic)."""
        return f"{self.url}{name}/"

    def repo_dir(self, name: str) -> Path:
        return self.root / name

    def stop(self) -> None:
        self.service.stop()

    def pause(self) -> None:
        self.service.pause()

    def resume(self) -> None:
        self.service.resume()


def start_rest(workdir: Path, *, ready_timeout: float = 30.0) -> RestServer:
    """Start ``rclone serve restic`` serving ``workdir/root``, with an empty rclone config of its own."""
    workdir = Path(workdir).resolve()
    root = workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    config = workdir / "rclone.conf"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env["HOME"] = str(workdir)
    env["XDG_CACHE_HOME"] = str(workdir / "cache")
    service = _start_on_free_port(
        lambda port: Service(
            "rclone",
            [RCLONE, "--config", str(config), "serve", "restic", "--addr", f"{LOOPBACK}:{port}", str(root)],
            port=port,
            log_dir=workdir,
            env=env,
            cwd=workdir,
            ready_timeout=ready_timeout,
        )
    )
    port = service.port
    return RestServer(service=service, url=f"http://{LOOPBACK}:{port}/", port=port, root=root)


# ------------------------------------------------------------------------------------------------- blackhole


class Blackhole:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte (a hung server).

    A thread in this process accepts and holds the sockets; ``stop()`` closes them all, so clients then see EOF.
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.host = LOOPBACK
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"blackhole-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.EINVAL) or self._stop.is_set():
                    return
                continue
            with self._lock:
                self._held.append(conn)
                self.accepted += 1

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for conn in self._held:
                with contextlib.suppress(OSError):
                    conn.close()
            self._held.clear()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_blackhole() -> Blackhole:
    return Blackhole()


def remove_tree(path: Path) -> None:
    """rmtree that also copes with read-only entries (restic writes packs and folders with restrictive modes)."""

    def _onerror(func: Any, target: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            Path(target).parent.chmod(0o700)
            Path(target).chmod(0o700)
        func(target)

    if Path(path).exists():
        shutil.rmtree(path, onerror=_onerror)
