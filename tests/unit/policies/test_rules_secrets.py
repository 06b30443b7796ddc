"""Secrets hygiene: repository password files readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preuve.policies.facts import Verdict
from preuve.policies.rules import secrets

from .factories import period, policy, target

P = policy()


def password(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "repo.pass"
    path.write_text("secret\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_is_met(tmp_path: Path, mode: int) -> None:
    r = secrets.check_target(P, target(password_file=password(tmp_path, mode)), period(0, 1))
    assert r.verdict is Verdict.MET
    assert r.value["mode"] == f"{mode:04o}"
    assert r.threshold == {"mode": "0600"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_readable_by_others_is_violated(tmp_path: Path, mode: int) -> None:
    r = secrets.check_target(P, target(password_file=password(tmp_path, mode)), period(0, 1))
    assert r.verdict is Verdict.VIOLATED
    assert "chmod 600" in r.reason


def test_missing_file_is_violated(tmp_path: Path) -> None:
    r = secrets.check_target(P, target(password_file=tmp_path / "absent"), period(0, 1))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["mode"] is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_is_unknown(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    path = password(locked, 0o600)
    locked.chmod(0o000)
    try:
        r = secrets.check_target(P, target(password_file=path), period(0, 1))
    finally:
        locked.chmod(0o700)
    assert r.verdict is Verdict.UNKNOWN


def test_path_through_a_file_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    r = secrets.check_target(P, target(password_file=tmp_path / "file" / "repo.pass"), period(0, 1))
    assert r.verdict is Verdict.UNKNOWN
    assert "could not be examined" in r.reason


def test_no_file_known_is_unknown() -> None:
    assert secrets.check_target(P, target(password_file=None), period(0, 1)).verdict is Verdict.UNKNOWN
