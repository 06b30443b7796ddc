"""deploy/: the systemd unit's hardening, and that the unit, INSTALL.md and the README tell the same story."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from preuve.config.model import DaemonSettings, MetricsSettings
from preuve.config.units import parse_duration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "preuve.service"
INSTALL = DEPLOY / "INSTALL.md"
README = ROOT / "README.md"
ENV = DEPLOY / "preuve.env.example"

EXEC_START = "/opt/preuve/.venv/bin/preuve --config /etc/preuve daemon"
STATE = "/var/lib/preuve"


class _Unit(configparser.RawConfigParser):
    """systemd's syntax: case-sensitive keys, repeated keys (the last wins here), no interpolation ($MAINPID)."""

    def __init__(self) -> None:
        super().__init__(strict=False, interpolation=None, empty_lines_in_values=False)

    def optionxform(self, optionstr: str) -> str:
        return optionstr


@pytest.fixture(scope="module")
def unit() -> _Unit:
    parsed = _Unit()
    parsed.read_string(UNIT.read_text(encoding="utf-8"))
    return parsed


def _all(key: str, section: str = "Service") -> list[str]:
    """Every value a repeated key takes (configparser keeps only the last)."""
    values, current = [], None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.startswith(f"{key}="):
            values.append(line.split("=", 1)[1])
    return values


def test_runs_the_daemon_as_its_own_user(unit: _Unit) -> None:
    service = unit["Service"]
    assert service["User"] == "preuve" and service["Group"] == "preuve"
    assert service["ExecStart"] == EXEC_START
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["EnvironmentFile"] == "-/etc/default/preuve"
    assert service["Restart"] == "on-failure"
    assert parse_duration(service["RestartSec"]).total_seconds() >= 1
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),  # restic (Go) and CPython need no writable+executable memory
        ("KillMode", "mixed"),
    ],
)
def test_hardening(unit: _Unit, key: str, value: str) -> None:
    assert unit["Service"][key] == value


def test_writable_paths(unit: _Unit) -> None:
    writable = unit["Service"]["ReadWritePaths"].split()
    assert writable == [STATE]
    # With PrivateTmp=yes the host's /tmp and /var/tmp are hidden: a path there fails the start (226/NAMESPACE)
    assert not [p for p in writable if p.lstrip("-").startswith(("/tmp", "/var/tmp"))]
    assert unit["Service"]["StateDirectory"] == "preuve"
    assert "/etc/preuve" not in writable  # the configuration stays read-only to the daemon


def test_stop_timeout_leaves_the_daemon_time_to_interrupt_drills(unit: _Unit) -> None:
    stop = parse_duration(unit["Service"]["TimeoutStopSec"])
    assert stop >= 2 * parse_duration(DaemonSettings().stop_timeout)
    assert unit["Service"]["KillSignal"] == "SIGTERM"


def test_system_call_filter(unit: _Unit) -> None:
    assert _all("SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert unit["Service"]["SystemCallArchitectures"] == "native"
    assert "RestrictSUIDSGID" not in unit["Service"]  # restic restores set-user-ID bits with chmod


def test_install_and_readme_match_the_unit(unit: _Unit) -> None:
    install = INSTALL.read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    section = readme.split("## Running it as a service", 1)[1]
    for text in (install, section):
        assert EXEC_START in text
        assert "deploy/preuve.service /etc/systemd/system/" in text
        assert "deploy/preuve.env.example /etc/default/preuve" in text
        assert "systemctl enable --now preuve" in text
        assert "useradd --system" in text and " preuve\n" in text
        assert "targets probe" in text
        assert f"curl -s {MetricsSettings().listen}/metrics" in text
    assert "deploy/INSTALL.md" in section
    assert "journalctl -u preuve" in install
    # the settings INSTALL.md writes into preuve.toml land where the unit lets the daemon write
    database = re.search(r'database = "sqlite:///(/[^"]+)"', install)
    keys = re.search(r'keys = "(/[^"]+)"', install)
    sandbox = re.search(r'sandbox = "(/[^"]+)"', install)
    assert database and keys and sandbox
    for path in (database.group(1), keys.group(1)):
        assert path.startswith(STATE + "/")
    assert sandbox.group(1).startswith("/var/tmp/")  # the private /var/tmp of PrivateTmp=yes
    assert unit["Service"]["EnvironmentFile"].lstrip("-") in install


def test_readme_opening_is_untouched() -> None:
    assert README.read_text(encoding="utf-8").startswith("# Preuve\n\n```sh\nmake demo")


def test_environment_example_has_no_secrets() -> None:
    lines = [line for line in ENV.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert settings["PREUVE_CONFIG"] == "/etc/preuve"
    assert settings["PREUVE_LOG_FORMAT"] in ("json", "text")
    for key in settings:
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), key
        assert not re.search(r"PASS|SECRET|TOKEN|KEY", key), key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's preuve for the check only
    preuve = shutil.which("preuve") or str(ROOT / ".venv" / "bin" / "preuve")
    if not Path(preuve).exists():
        pytest.skip("no preuve executable to stand in for /opt/preuve/.venv/bin/preuve")
    copy = tmp_path / "preuve.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/preuve/.venv/bin/preuve", preuve))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "preuve.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
