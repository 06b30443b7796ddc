"""`preuve policy show`: the effective policy in human units, as commented YAML or JSON; usage errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

PREUVE = [sys.executable, "-m", "preuve"]
JOB = """\
client: ACME
policy: {policy}
targets:
  usb:
    kind: local
    path: /mnt/usb/restic/acme
    password_file: secrets/acme.pass
    location: onsite
    media: disk
"""


def _preuve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREUVE, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = (tmp_path / "config").resolve()
    (folder / "jobs").mkdir(parents=True)
    (folder / "jobs" / "acme.yaml").write_text(
        JOB.format(policy="standard") + "policy_overrides:\n  rpo: 2h\n  copies: {min: 3, immutable: 1}\n",
        encoding="utf-8",
    )
    (folder / "jobs" / "dupont.yaml").write_text(JOB.format(policy="health-data"), encoding="utf-8")
    return folder


def test_show_builtin_policy_as_commented_yaml(config: Path) -> None:
    done = _preuve(config, "policy", "show", "standard")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# policy standard: built in (")
    assert "rpo: 24h" in done.stdout
    assert "# newest snapshot younger than this" in done.stdout
    assert "  every: 7d" in done.stdout
    assert "  max_changed: 50%" in done.stdout
    data = yaml.safe_load(done.stdout)  # the text is itself a policy file
    assert data["rpo"] == "24h"
    assert data["copies"] == {"min": 2, "media": 2, "offsite": 1, "immutable": 0}
    assert "overridden" not in done.stdout


def test_show_with_a_clients_overrides(config: Path, tmp_path: Path) -> None:
    done = _preuve(config, "policy", "show", "standard", "--client", "acme")
    assert done.returncode == 0, done.stderr
    assert f"# client acme: overrides from {config / 'jobs' / 'acme.yaml'}: rpo, copies.min, copies.immutable" in (
        done.stdout
    )
    data = yaml.safe_load(done.stdout)
    assert data["rpo"] == "2h"
    assert data["rto"] == "8h"
    assert data["copies"] == {"min": 3, "media": 2, "offsite": 1, "immutable": 1}
    assert "overridden for this client" in next(line for line in done.stdout.splitlines() if line.startswith("rpo:"))
    # saved as a policy file of its own, it loads and shows the same
    (config / "policies").mkdir()
    (config / "policies" / "acme-plan.yaml").write_text(done.stdout, encoding="utf-8")
    again = _preuve(config, "policy", "show", "acme-plan", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rules"]["rpo_s"] == 7200


def test_show_as_json(config: Path) -> None:
    done = _preuve(config, "policy", "show", "health-data", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["policy"] == "health-data"
    assert data["builtin"] is True
    assert data["client"] is None
    assert data["overrides"] == []
    rules = data["rules"]
    assert rules["rpo"] == "4h"
    assert rules["rpo_s"] == 4 * 3600
    assert rules["drill"]["full_restore_every"] == "365d"
    assert rules["drill"]["full_restore_every_s"] == 365 * 86400
    assert rules["copies"]["immutable"] == 1
    assert rules["anomalies"]["max_size_drop"] == "30%"
    assert rules["anomalies"]["max_size_drop_ratio"] == 0.3


def test_show_json_with_client(config: Path) -> None:
    done = _preuve(config, "policy", "show", "standard", "--client", "acme", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["client"] == "acme"
    assert data["job_file"] == str(config / "jobs" / "acme.yaml")
    assert data["overrides"] == ["rpo", "copies.min", "copies.immutable"]
    assert data["rules"]["rpo"] == "2h"
    assert data["rules"]["rpo_s"] == 7200


def test_config_policy_replaces_the_builtin(config: Path) -> None:
    (config / "policies").mkdir()
    (config / "policies" / "standard.yaml").write_text("rpo: 12h\n", encoding="utf-8")
    done = _preuve(config, "policy", "show", "standard", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["builtin"] is False
    assert data["source"] == str(config / "policies" / "standard.yaml")
    assert data["rules"]["rpo_s"] == 12 * 3600


def test_unknown_policy_exits_2_naming_the_available_ones(config: Path) -> None:
    done = _preuve(config, "policy", "show", "gold")
    assert done.returncode == 2
    assert "no policy 'gold'" in done.stderr
    assert "available: health-data, standard" in done.stderr
    assert done.stdout == ""


def test_client_held_to_another_policy_exits_2(config: Path) -> None:
    done = _preuve(config, "policy", "show", "standard", "--client", "dupont")
    assert done.returncode == 2
    assert "client 'dupont' is held to policy 'health-data', not 'standard'" in done.stderr
    done = _preuve(config, "policy", "show", "standard", "--client", "nobody")
    assert done.returncode == 2
    assert "unknown client 'nobody'" in done.stderr


def test_policy_errors_are_located_and_exit_2(config: Path) -> None:
    (config / "policies").mkdir()
    (config / "policies" / "gold.yaml").write_text("rpo: 0h\n", encoding="utf-8")
    (config / "policies" / "silver.yaml").write_text("copies:\n  min: 2\n  media: 3\n", encoding="utf-8")
    (config / "jobs" / "acme.yaml").write_text(
        JOB.format(policy="standard") + "policy_overrides:\n  anomalies: {max_changed: 120%}\n", encoding="utf-8"
    )
    done = _preuve(config, "policy", "show", "standard")
    assert done.returncode == 2
    gold = config / "policies" / "gold.yaml"
    assert f"{gold}:1: rpo: '0h' must be longer than zero" in done.stderr
    assert (
        f"{config / 'policies' / 'silver.yaml'}:3: copies.media: 3 kinds of media need at least 3 copies" in done.stderr
    )
    assert f"{config / 'jobs' / 'acme.yaml'}:11: policy_overrides.anomalies.max_changed: '120%' is more than 100%" in (
        done.stderr
    )
    assert "has 3 problems" in done.stderr
    assert "Traceback" not in done.stderr
