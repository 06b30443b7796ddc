"""Secrets never leak: not in restic's argv, logs, command output, the database or error messages.

A drill runs against real S3 and SFTP targets with a restic wrapper that records the exact argv restic received;
then every output, the verbose log, the restore log and a dump of every database row are searched for each secret.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.drill_helpers import Setup, make_setup
from tests.support.fixtures_services import TargetRepo

pytestmark = pytest.mark.integration


def _secrets(setup: Setup) -> list[str]:
    found = [setup.repo.password]
    found += [v for k, v in setup.repo.extra_env.items() if k.startswith("AWS_")]
    if setup.repo.kind == "sftp":
        key = (setup.config / setup.spec["identity_file"]).read_text()
        # the body of the private key, line by line (any line of it is secret material)
        found += [line for line in key.splitlines() if line and not line.startswith("-----")]
    assert all(len(s) >= 8 for s in found)
    return found


def _argv_recorder(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "argv.log"
    wrapper = tmp_path / "restic-recorder"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec /usr/bin/restic "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


@pytest.mark.parametrize("target_repo", ["s3", "sftp"], indirect=True)
def test_no_secret_anywhere(tmp_path: Path, target_repo: TargetRepo) -> None:
    setup = make_setup(tmp_path, target_repo)
    wrapper, argv_log = _argv_recorder(tmp_path)
    setup.write_settings(f'restic = "{wrapper}"\n')
    secrets = _secrets(setup)

    outputs: list[str] = []
    for args in (
        ("--verbose", "drill", "run", setup.ref, "--json"),
        ("--verbose", "drill", "run", setup.ref),
        ("--verbose", "targets", "probe", setup.ref, "--json"),
        ("drill", "show", "1", "--log"),
        ("drill", "show", "1", "--log", "--json"),
        ("drill", "list", "--json"),
        ("targets", "list", "--json"),
    ):
        done = setup.preuve(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        outputs += [done.stdout, done.stderr]

    # a failing drill too: a wrong password goes through the error paths and their messages
    password_file = setup.config / setup.spec["password_file"]
    password_file.write_text(setup.repo.password + "-wrong\n")
    secrets.append(setup.repo.password + "-wrong")
    done = setup.preuve("--verbose", "drill", "run", setup.ref, "--json")
    assert done.returncode == 3
    outputs += [done.stdout, done.stderr]
    done = setup.preuve("drill", "show", "3", "--log", "--json")
    outputs += [done.stdout, done.stderr]
    assert '"failure_class": "auth"' in done.stdout

    database = setup.config / "preuve.db"
    with sqlite3.connect(database) as db:
        dump = "\n".join(db.iterdump())
    db.close()
    assert "restic" in dump and "snapshots" in dump, "the dump should hold the restore log"

    argv_text = argv_log.read_text()
    assert "restore" in argv_text
    places = {"argv": argv_text, "database": dump, **{f"output {i}": text for i, text in enumerate(outputs)}}
    for other in setup.config.rglob("*"):
        if other.is_file() and "secrets" not in other.parts and other.suffix not in (".db", ".db-wal", ".db-shm"):
            places[str(other)] = other.read_text(errors="replace")
    for secret in secrets:
        for where, text in places.items():
            assert secret not in text, f"a secret leaked into {where}"
