"""The command line as a technician meets it: init, demo, configuration errors and exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.drill_helpers import PREUVE

pytestmark = pytest.mark.integration


def _preuve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PREUVE, *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    done = _preuve("demo", "--dir", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verdict: PASSED" in done.stdout
    config = tmp_path / "demo" / "config"
    assert f"preuve --config {config} drill show 1 --log" in done.stdout
    shown = json.loads(_preuve("--config", str(config), "drill", "show", "1", "--json").stdout)
    assert shown["status"] == "passed"
    assert 0 < shown["files_checked"] < shown["files_in_snapshot"], "the demo snapshot is larger than one sample"
    assert shown["canaries_checked"] == 1

    # 5. the signed attestation of the month so far (its real content: the drill above), and how to verify it
    line = next(x for x in done.stdout.splitlines() if x.startswith("Verify it:"))
    command = line.split(":", 1)[1].split()
    assert command[:2] == ["preuve", "verify"] and "--key" in command
    pdf = Path(command[2])
    assert pdf.parent == config / "attestations" / "demo" and pdf.with_name(pdf.stem + ".statement.json").is_file()
    verified = _preuve(*command[1:])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PDF signature (PAdES): valid" in verified.stdout and "partial: true" in verified.stdout
    first = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    words = " ".join(first.stdout.replace("\u00a0", " ").split())
    for phrase in (
        "Cabinet Démo",
        "(mois en cours)",
        "Mois en cours : cette attestation ne couvre que le début du mois",
        "Oui",  # the one backup was restored in the demo's drill
        "Chaque sauvegarde a été restaurée avec succès lors d'au moins un test ce mois-ci.",
        "Sauvegardes testées avec succès ce mois-ci : 1 sur 1.",
    ):
        assert phrase in words, phrase


def test_init_scaffolds_a_configuration(tmp_path: Path) -> None:
    target = tmp_path / "etc-preuve"
    done = _preuve("init", str(target))
    assert done.returncode == 0, done.stderr
    assert (target / "preuve.toml").is_file()
    assert (target / "secrets").stat().st_mode & 0o077 == 0
    listed = _preuve("--config", str(target), "targets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"targets": []}
    again = _preuve("init", str(target))
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_configuration_errors_are_located_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "acme.yaml").write_text(
        "client: ACME\ntargets:\n  usb:\n    kind: local\n    path: /x\n    pasword_file: p\n"
        "    location: onsite\n    media: disk\n"
    )
    (tmp_path / "jobs" / "other.yaml").write_text("client: [unclosed\n")
    done = _preuve("--config", str(tmp_path), "targets", "list")
    assert done.returncode == 2
    assert f"{tmp_path / 'jobs' / 'acme.yaml'}:6: targets.usb.pasword_file" in done.stderr
    assert f"{tmp_path / 'jobs' / 'acme.yaml'}:3: targets.usb.password_file: required key is missing" in done.stderr
    assert str(tmp_path / "jobs" / "other.yaml") in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_target_exit_2(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "acme.yaml").write_text(
        "client: ACME\ntargets:\n  usb:\n    kind: local\n    path: /x\n    password_file: p\n"
        "    location: onsite\n    media: disk\n"
    )
    done = _preuve("--config", str(tmp_path), "drill", "run", "acme/nas")
    assert done.returncode == 2
    assert "has no target 'nas'" in done.stderr and "usb" in done.stderr
    done = _preuve("--config", str(tmp_path), "drill", "run", "nobody/usb")
    assert done.returncode == 2
    assert "unknown client 'nobody'" in done.stderr
    done = _preuve("--config", str(tmp_path), "drill", "show", "42")
    assert done.returncode == 2
    assert "no drill 42" in done.stderr


def test_missing_password_file_is_an_auth_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "acme.yaml").write_text(
        f"client: ACME\ntargets:\n  usb:\n    kind: local\n    path: {tmp_path / 'repo'}\n"
        "    password_file: secrets/missing.pass\n    location: onsite\n    media: disk\n"
    )
    done = _preuve("--config", str(tmp_path), "drill", "run", "acme/usb", "--json")
    assert done.returncode == 3
    result = json.loads(done.stdout)
    assert result["failure_class"] == "auth"
    assert str(tmp_path / "secrets" / "missing.pass") in result["message"]
