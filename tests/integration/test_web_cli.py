"""`preuve users ...` as a subprocess: passwords come from the standard input (never argv), tokens are shown once
and stored hashed, bad requests exit 2 with a sentence naming the problem; `preuve web` refuses a busy address."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from preuve.store.db import Store
from tests.integration.drill_helpers import PREUVE
from tests.support.web import PASSWORD, write_client

pytestmark = pytest.mark.integration


def _preuve(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
    return subprocess.run(
        [*PREUVE, "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "preuve.toml").write_text('database = "sqlite:///preuve.db"\nsandbox = "sandbox"\n')
    write_client(folder, "acme", "ACME", {"nas": {"path": "/srv/nas"}})
    return folder


def test_users_lifecycle(config: Path) -> None:
    added = _preuve(config, "users", "add", "alice", "--role", "technician", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "alice added (technician)" in added.stdout
    client = _preuve(config, "users", "add", "bob", "--role", "client", "--client", "acme", stdin=PASSWORD + "\n")
    assert client.returncode == 0 and "client acme" in client.stdout
    token = _preuve(config, "users", "token", "alice")
    assert token.returncode == 0 and token.stdout.strip().startswith("preuve_") and "not shown again" in token.stderr
    listed = json.loads(_preuve(config, "users", "list", "--json").stdout)["users"]
    assert [(u["name"], u["role"], u["client"], u["tokens"]) for u in listed] == [
        ("alice", "technician", None, 1),
        ("bob", "client", "acme", 0),
    ]
    with Store.open(f"sqlite:///{config / 'preuve.db'}") as store, store.connection() as connection:
        hashes = [row[0] for row in connection.execute(text("SELECT password_hash FROM webuser"))]
        tokens = [row[0] for row in connection.execute(text("SELECT token_hash FROM apitoken"))]
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert tokens == [hashlib.sha256(token.stdout.strip().encode()).hexdigest()]
    reset = _preuve(config, "users", "reset", "alice", stdin="another long password\n")
    assert reset.returncode == 0 and "unlocked" in reset.stdout
    revoked = _preuve(config, "users", "token", "alice", "--revoke")
    assert "1 API token(s) of alice revoked" in revoked.stdout
    removed = _preuve(config, "users", "remove", "bob")
    assert removed.returncode == 0
    assert [u["name"] for u in json.loads(_preuve(config, "users", "list", "--json").stdout)["users"]] == ["alice"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "carol", "--role", "client"], PASSWORD, "needs --client CLIENT"),
        (["add", "carol", "--role", "client", "--client", "zulu"], PASSWORD, "unknown client 'zulu' (known: acme)"),
        (["add", "carol", "--role", "boss"], PASSWORD, "unknown role 'boss'"),
        (["add", "carol", "--role", "admin", "--client", "acme"], PASSWORD, "--client only applies to client users"),
        (["add", "carol", "--role", "admin"], "short", "too short"),
        (["add", "carol", "--role", "admin"], "", "no password on the standard input"),
        (["add", "bad name", "--role", "admin"], PASSWORD, "is not a user name"),
        (["reset", "nobody"], PASSWORD, "no user named 'nobody'"),
        (["remove", "nobody"], "", "no user named 'nobody'"),
        (["token", "nobody"], "", "no user named 'nobody'"),
    ],
)
def test_users_errors(config: Path, args: list[str], stdin: str, message: str) -> None:
    done = _preuve(config, "users", *args, stdin=stdin + "\n" if stdin else "")
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert PASSWORD not in done.stderr


def test_duplicate_user_is_refused(config: Path) -> None:
    assert _preuve(config, "users", "add", "alice", "--role", "admin", stdin=PASSWORD + "\n").returncode == 0
    again = _preuve(config, "users", "add", "alice", "--role", "admin", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_web_refuses_an_address_in_use(config: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = _preuve(config, "web", "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 3
    assert f"cannot serve the console on 127.0.0.1:{port} ([web] listen in preuve.toml)" in done.stderr
