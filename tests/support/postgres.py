"""A throw-away PostgreSQL server on 127.0.0.1 for the store tests.

Plain Python, no pytest: :mod:`tests.support.fixtures_store` wraps it, and a developer can start one by hand
from a REPL. The server runs as the ``postgres`` user when we are root (PostgreSQL refuses root), in a
temporary folder owned by that user; ``stop()`` signals exactly the postmaster we started (the child of
``Popen``, still unreaped, so its PID cannot have been reused), never a process name.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"
SERVICE_USER = "postgres"  # the OS account the server runs as when the tests run as root
BINARY_GLOB = "/usr/lib/postgresql/*/bin/postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class PostgresError(RuntimeError):
    """The server did not come up; the message carries its log tail."""


def find_postgres() -> Path | None:
    """The newest installed ``postgres`` server binary, or None."""
    candidates = [Path(p) for p in Path("/").glob(BINARY_GLOB.lstrip("/"))]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))

    candidates = [c for c in candidates if os.access(c, os.X_OK)]
    return max(candidates, key=version) if candidates else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop to the service account when we are root (no-op otherwise).

    Popen's own setuid in the child keeps the postmaster as our direct child, unlike `runuser`, which stays
    in between as a watching parent that turns our fast-shutdown SIGINT into SIGTERM then SIGKILL.
    """
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam(SERVICE_USER)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVICE_USER)
        os.chown(path, account.pw_uid, account.pw_gid)


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # temporary folder holding data/, sock/ and server.log
    port: int
    process: subprocess.Popen[bytes]
    host: str = LOOPBACK

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (trust authentication on loopback: no password)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", timeout: float = 5.0) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
        )

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = name or f"preuve_test_{uuid.uuid4().hex[:12]}"
        with self.connect() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as connection:
            # FORCE: a test that failed may have left a pooled connection open.
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def shutdown(self) -> None:
        """Fast shutdown (SIGINT: abort transactions, exit cleanly) of our postmaster; SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)

    def start(self) -> None:
        """Start the server again after :meth:`shutdown`: same data, same port (a restart under a client)."""
        if self.process.poll() is None:
            return
        self.process = _start(self.bin_dir, self.root, self.port, _server_env(self.bin_dir, self.root)).process

    def stop(self) -> None:
        """Shut the server down, then remove its folder."""
        try:
            self.shutdown()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _server_env(bin_dir: Path, root: Path) -> dict[str, str]:
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "HOME": str(root), "TZ": "UTC"}


def start_postgres(binary: Path | None = None, attempts: int = 3) -> PostgresServer:
    """initdb in a fresh temporary folder, then start ``postgres`` on a free port of 127.0.0.1."""
    binary = binary or find_postgres()
    if binary is None:
        raise PostgresError(f"no PostgreSQL server binary matches {BINARY_GLOB}")
    bin_dir = binary.parent
    # Not pytest's tmp_path: it lives under a 0700 folder of root's that the postgres user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="preuve-pg-"))
    try:
        _chown(root)
        socket_dir = root / "sock"
        socket_dir.mkdir()
        _chown(socket_dir)
        env = _server_env(bin_dir, root)
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # a test cluster needs no durability
            ],
            cwd=root,
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
            **_run_as(),
        )
        if initdb.returncode != 0:
            output = (initdb.stdout + initdb.stderr).decode(errors="replace")
            raise PostgresError(f"initdb failed ({initdb.returncode}):\n{output[-3000:]}")
        last_error: PostgresError | None = None
        for _ in range(attempts):  # the free port may be taken between our probe and the server's bind
            try:
                return _start(bin_dir, root, free_port(), env)
            except PostgresError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start(bin_dir: Path, root: Path, port: int, env: dict[str, str]) -> PostgresServer:
    log = (root / "server.log").open("ab")
    try:
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(root / "data"),
                "-h",
                LOOPBACK,
                "-p",
                str(port),
                "-k",
                str(root / "sock"),
                # Speed over durability: the cluster is deleted after the session.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal must not reach it before our own shutdown
            **_run_as(),
        )
    finally:
        log.close()
    server = PostgresServer(bin_dir=bin_dir, root=root, port=port, process=process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise PostgresError(f"postgres exited with {process.returncode} on port {port}:\n{server.log_tail()}")
        try:
            with server.connect(timeout=1) as connection:
                connection.execute("SELECT 1")
            return server
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            server.shutdown()
            raise PostgresError(
                f"postgres did not accept connections within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}"
            )
        time.sleep(0.1)
