"""The example files at the top of the repository are documentation: they must load as they are."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from preuve.config.loader import load_config
from preuve.config.located import load_toml, load_yaml
from preuve.config.model import DaemonSettings, DrillSettings, S3Target, SftpTarget
from preuve.config.units import parse_duration, parse_percent

ROOT = Path(__file__).resolve().parents[2]
POLICY_KEYS = {"rpo", "rto", "drill", "integrity", "retention", "copies", "immutability", "anomalies"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "jobs", config / "jobs")
    shutil.copytree(ROOT / "policies", config / "policies")
    return config


def test_example_jobs_and_policies_load(folder: Path) -> None:
    config = load_config(folder)
    assert {"acme", "cabinet-dupont"} <= set(config.clients)
    refs = {target.ref for target in config.targets()}
    assert {"acme/nas", "acme/cloud", "acme/usb", "acme/vault"} <= refs
    assert {"cabinet-dupont/nas", "cabinet-dupont/offsite"} <= refs

    acme = config.clients["acme"].job
    assert acme.client == "ACME Bâtiment"
    assert acme.language == "fr"
    assert acme.policy == "standard"
    assert {spec.kind for spec in acme.targets.values()} == {"local", "sftp", "s3", "rest"}
    nas = config.target("acme/nas").spec
    assert isinstance(nas, SftpTarget)
    assert nas.canaries and all(len(canary.sha256) == 64 for canary in nas.canaries)

    dupont = config.clients["cabinet-dupont"].job
    assert dupont.language == "fr"
    assert dupont.policy == "health-data"
    assert isinstance(dupont.targets["nas"], SftpTarget)
    offsite = dupont.targets["offsite"]
    assert isinstance(offsite, S3Target)
    assert offsite.location == "offsite"
    assert any(target.canaries for target in dupont.targets.values())


def test_every_example_job_is_loaded(folder: Path) -> None:
    """A new example dropped in jobs/ is covered too: each file gives one client."""
    config = load_config(folder)
    assert set(config.clients) == {file.stem for file in (ROOT / "jobs").glob("*.yaml")}


@pytest.mark.parametrize("name", ["standard", "health-data"])
def test_example_policies_parse(name: str) -> None:
    doc = load_yaml(ROOT / "policies" / f"{name}.yaml")
    assert doc.problems == []
    policy = doc.data
    assert set(policy) == POLICY_KEYS
    for key in ("rpo", "rto"):
        parse_duration(policy[key])
    for key in ("every", "grace", "full_restore_every"):
        parse_duration(policy["drill"][key])
    parse_duration(policy["integrity"]["window"])
    parse_duration(policy["immutability"]["min_retention"])
    assert set(policy["retention"]) == {"daily", "weekly", "monthly"}
    assert set(policy["copies"]) == {"min", "media", "offsite", "immutable"}
    assert all(isinstance(value, int) and value >= 0 for value in policy["copies"].values())
    assert {key: parse_percent(value) for key, value in policy["anomalies"].items()} == {
        "max_size_drop": 0.3,
        "max_files_drop": 0.3,
        "max_changed": 0.5,
    }


def test_health_data_policy_values() -> None:
    policy = load_yaml(ROOT / "policies" / "health-data.yaml").data
    assert parse_duration(policy["rpo"]) == parse_duration("4h")
    assert parse_duration(policy["rto"]) == parse_duration("4h")
    assert parse_duration(policy["drill"]["every"]) == parse_duration("7d")
    assert parse_duration(policy["drill"]["grace"]) == parse_duration("1d")
    assert parse_duration(policy["drill"]["full_restore_every"]) == parse_duration("365d")
    assert parse_duration(policy["integrity"]["window"]) == parse_duration("30d")
    assert policy["retention"] == {"daily": 14, "weekly": 8, "monthly": 24}
    assert policy["copies"] == {"min": 3, "media": 2, "offsite": 1, "immutable": 1}
    assert parse_duration(policy["immutability"]["min_retention"]) == parse_duration("30d")


def test_example_preuve_toml_loads(folder: Path) -> None:
    shutil.copy(ROOT / "deploy" / "preuve.toml.example", folder / "preuve.toml")
    config = load_config(folder)
    settings = config.settings
    assert settings.max_concurrent_drills >= 1
    # every DrillSettings key is shown in the example
    assert set(load_toml(folder / "preuve.toml").data["drill"]) == set(DrillSettings.model_fields)
    assert settings.drill == DrillSettings()
    assert settings.metrics.listen == "127.0.0.1:9464"
    assert settings.web is not None and settings.web.listen == "127.0.0.1:8080"
    assert settings.alerts.email == ["support@provider.example"]
    assert settings.alerts.reminder_after == "24h"
    assert settings.smtp.sender == "Preuve <preuve@provider.example>"
    assert settings.smtp.starttls is True and settings.smtp.password_file == "secrets/smtp.pass"
    # every [daemon] key is shown in the example
    assert set(load_toml(folder / "preuve.toml").data["daemon"]) == set(DaemonSettings.model_fields)
    assert {target.ref for target in config.targets()} >= {"acme/nas", "cabinet-dupont/offsite"}
