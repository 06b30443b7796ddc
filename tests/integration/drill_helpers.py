"""Shared helpers for drill tests: a configuration folder around a real repository, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from preuve.config.loader import load_config
from preuve.restic.runner import Restic
from preuve.targets.access import repo_access
from tests.support.fixtures_services import TargetRepo

PREUVE = [sys.executable, "-m", "preuve"]


@dataclass
class Setup:
    config: Path
    sandbox: Path
    repo: TargetRepo
    spec: dict[str, Any]

    @property
    def ref(self) -> str:
        return "acme/main"

    def write_job(self, **overrides: Any) -> None:
        spec = {**self.spec, **overrides}
        spec = {k: v for k, v in spec.items() if v is not None}
        job = {
            "client": "ACME Bâtiment",
            "language": "fr",
            "contacts": ["direction@acme.example"],
            "policy": "standard",
            "targets": {"main": spec},
        }
        (self.config / "jobs").mkdir(parents=True, exist_ok=True)
        (self.config / "jobs" / "acme.yaml").write_text(yaml.safe_dump(job, allow_unicode=True), encoding="utf-8")

    def write_settings(self, extra: str = "") -> None:
        (self.config / "preuve.toml").write_text(
            f'database = "sqlite:///preuve.db"\nsandbox = "{self.sandbox}"\n{extra}', encoding="utf-8"
        )

    def sandboxes(self) -> list[Path]:
        return sorted(self.sandbox.glob("preuve-drill-*")) if self.sandbox.exists() else []

    def preuve(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
        return subprocess.run(
            [*PREUVE, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def drill(self, *args: str, timeout: float = 300) -> tuple[int, dict[str, Any]]:
        done = self.preuve("drill", "run", self.ref, "--json", *args, timeout=timeout)
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not JSON (rc {done.returncode}):\n{done.stdout}\n{done.stderr}") from exc
        return done.returncode, data


def make_setup(tmp_path: Path, repo: TargetRepo, *, canary: bool = True) -> Setup:
    config = tmp_path / "config"
    spec = repo.write_config(config)
    if canary:
        spec["canaries"] = [{"path": repo.manifest.canary_abs, "sha256": repo.manifest.canary_sha256}]
    setup = Setup(config=config, sandbox=tmp_path / "sandbox", repo=repo, spec=spec)
    setup.write_settings()
    setup.write_job()
    return setup


def make_restic(tmp_path: Path, repo: TargetRepo) -> Restic:
    """Preuve's restic wrapper bound to ``repo``, as a drill builds it (its own home, tmp and fresh cache)."""
    setup = make_setup(tmp_path, repo)
    config = load_config(setup.config)
    target = config.target(setup.ref)
    folders = {name: tmp_path / name for name in ("home", "tmp", "cache")}
    for folder in folders.values():
        folder.mkdir()
    return Restic(
        config.settings.restic,
        repo_access(target.spec, config.directory),
        label=setup.ref,
        home=folders["home"],
        tmpdir=folders["tmp"],
        cache_dir=folders["cache"],
        open_timeout_s=60,
    )
