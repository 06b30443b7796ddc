"""Continuity-plan policy checks end to end, on real repositories: S3 with and without Object Lock, the same source
on several media, a stale target, integrity rotations that reach 100 % and one that does not."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from preuve.demo import make_dataset
from tests.integration.drill_helpers import PREUVE
from tests.support import faults
from tests.support.datasets import init_and_backup, restic_env, write_password_file
from tests.support.services import S3Server

pytestmark = pytest.mark.integration


def _preuve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREUVE, "--config", str(config), *args], capture_output=True, text=True, timeout=300, check=False
    )


def _rules(report: dict[str, Any], rule: str) -> dict[str | None, dict[str, Any]]:
    return {r["target"]: r for r in report["rules"] if r["rule"] == rule}


@pytest.fixture
def estate(tmp_path: Path, moto_server: S3Server) -> tuple[Path, str]:
    """A client whose office share is backed up to a USB disk, a locked S3 bucket and a plain S3 bucket, plus an
    old laptop backup nobody has run for a month."""
    source = tmp_path / "share"
    make_dataset(source, files=80)
    config = tmp_path / "config"
    (config / "jobs").mkdir(parents=True)
    (config / "secrets").mkdir(mode=0o700)
    password = config / "secrets" / "acme.pass"
    write_password_file(password)
    env_file = config / "secrets" / "s3.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in moto_server.env().items()))
    env_file.chmod(0o600)

    locked = moto_server.create_bucket("acme-locked", object_lock=True, versioning=True)
    moto_server.client().put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
        },
    )
    plain = moto_server.create_bucket("acme-plain")
    init_and_backup(str(tmp_path / "usb"), password, source)
    for bucket in (locked, plain):
        init_and_backup(f"s3:{moto_server.endpoint}/{bucket}/restic", password, source, moto_server.env())
    laptop_source = tmp_path / "laptop"
    make_dataset(laptop_source, files=20, seed=3)
    init_and_backup(str(tmp_path / "laptop-repo"), password, laptop_source)
    faults.make_stale(restic_env(str(tmp_path / "laptop-repo"), password), laptop_source, ages_days=(40, 30))

    common = {"password_file": "secrets/acme.pass"}
    s3 = {"kind": "s3", "endpoint": moto_server.endpoint, "prefix": "restic", "env_file": "secrets/s3.env",
          "location": "offsite", "media": "object-storage", **common}  # fmt: skip
    job = {
        "client": "ACME",
        "policy": "standard",
        "policy_overrides": {"copies": {"min": 2, "media": 2, "offsite": 1, "immutable": 1}},
        "targets": {
            "usb": {"kind": "local", "path": str(tmp_path / "usb"), "location": "onsite", "media": "disk", **common},
            "locked": {**s3, "bucket": locked},
            "plain": {**s3, "bucket": plain},
            "laptop": {
                "kind": "local",
                "path": str(tmp_path / "laptop-repo"),
                "location": "onsite",
                "media": "disk",
                **common,
            },
        },
    }
    (config / "jobs" / "acme.yaml").write_text(yaml.safe_dump(job))
    (config / "preuve.toml").write_text(f'sandbox = "{tmp_path / "sandbox"}"\n')
    for target in ("usb", "locked", "plain", "laptop"):
        done = _preuve(config, "targets", "probe", f"acme/{target}", "--json")
        assert json.loads(done.stdout)["ok"], done.stdout
    # the period under review starts once Preuve has listed every repository: history before it is unknown
    start = datetime.now(UTC).isoformat()
    for target in ("usb", "locked", "plain", "laptop"):
        done = _preuve(config, "drill", "run", f"acme/{target}", "--json")
        assert done.returncode == 0, done.stdout
    return config, start


def test_policy_check_on_a_real_estate(estate: tuple[Path, str]) -> None:
    estate, start = estate
    # four integrity runs read all four parts of the USB repository; the plain bucket gets one
    for _ in range(4):
        assert _preuve(estate, "drill", "run", "acme/usb", "--integrity").returncode == 0
    assert _preuve(estate, "drill", "run", "acme/plain", "--integrity").returncode == 0

    done = _preuve(estate, "policy", "check", "acme", "--from", start, "--json")
    report = json.loads(done.stdout)
    assert report["client"] == "acme"
    assert report["verdict"] == "violated"
    assert done.returncode == 1

    rpo = _rules(report, "rpo")
    assert rpo["acme/usb"]["verdict"] == "met"
    assert rpo["acme/laptop"]["verdict"] == "violated"  # newest snapshot 30 days old
    assert rpo["acme/laptop"]["value"]["age_s"] > 29 * 86400

    immutability = _rules(report, "immutability")
    assert immutability["acme/locked"]["verdict"] == "met", immutability["acme/locked"]
    assert immutability["acme/plain"]["verdict"] == "violated", immutability["acme/plain"]

    integrity = _rules(report, "integrity-coverage")
    assert integrity["acme/usb"]["verdict"] == "met"
    assert integrity["acme/usb"]["value"]["share"] == pytest.approx(1.0)
    assert integrity["acme/plain"]["value"]["share"] == pytest.approx(0.25)
    assert integrity["acme/plain"]["verdict"] in ("violated", "unknown")
    assert integrity["acme/locked"]["verdict"] in ("violated", "unknown")

    # the share has three copies (disk, two buckets, one locked); the laptop only one: the client falls short
    copies = _rules(report, "copies")[None]
    assert copies["verdict"] == "violated"
    by_source = {tuple(s["targets"]): s for s in copies["value"]["sources"]}
    assert by_source[("acme/locked", "acme/plain", "acme/usb")]["copies"] == 3
    assert by_source[("acme/laptop",)]["copies"] == 1

    for rule in report["rules"]:
        assert rule["references"], rule
        assert set(rule) >= {"rule", "target", "verdict", "value", "threshold", "evidence", "references"}

    table = _preuve(estate, "policy", "check", "acme", "--from", start)
    assert table.returncode == 1
    assert "acme/laptop" in table.stdout and "violated" in table.stdout
