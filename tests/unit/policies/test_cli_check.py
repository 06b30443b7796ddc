"""`preuve policy check`: the period from the options, the exit codes, the text and JSON output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from preuve.config.loader import Client, Config
from preuve.config.model import JobFile, Settings
from preuve.policies import cli_check
from preuve.policies.evaluate import evaluate
from preuve.policies.facts import ClientFacts, Verdict
from preuve.policies.period import Period

from .factories import HOUR, client, day, period, policy, probe, snap, target


def test_moments() -> None:
    assert cli_check.parse_moment("2024-05-31") == datetime(2024, 5, 31, tzinfo=UTC)
    assert cli_check.parse_moment("2024-05-31", end_of_day=True) == datetime(2024, 6, 1, tzinfo=UTC)
    assert cli_check.parse_moment("2024-05-31T18:00", end_of_day=True) == datetime(2024, 5, 31, 18, tzinfo=UTC)
    paris = timezone(timedelta(hours=2))
    assert cli_check.parse_moment("2024-05-31T18:00+02:00") == datetime(2024, 5, 31, 18, tzinfo=paris)
    with pytest.raises(ValueError, match="not a date"):
        cli_check.parse_moment("yesterday")


def test_periods() -> None:
    now = datetime(2024, 6, 15, 12, tzinfo=UTC)
    assert cli_check.check_period(None, None, None, now) == Period(now - timedelta(days=30), now)
    at = datetime(2024, 6, 1, tzinfo=UTC)
    assert cli_check.check_period("2024-05-31", None, None, now) == Period(at - timedelta(days=30), at)
    assert cli_check.check_period(None, "2024-05-01", "2024-05-31", now) == Period(datetime(2024, 5, 1, tzinfo=UTC), at)
    assert cli_check.check_period(None, "2024-05-01", None, now).end == now
    with pytest.raises(ValueError, match="only one"):
        cli_check.check_period("2024-05-30", None, "2024-05-31", now)
    with pytest.raises(ValueError, match="after it ends"):
        cli_check.check_period(None, "2024-06-02", "2024-05-31", now)


def test_exit_codes() -> None:
    assert cli_check.exit_code([Verdict.MET, Verdict.MET]) == 0
    assert cli_check.exit_code([Verdict.MET, Verdict.UNKNOWN]) == 3
    assert cli_check.exit_code([Verdict.UNKNOWN, Verdict.VIOLATED]) == 1
    assert cli_check.exit_code([]) == 0


def test_values_shown_in_human_units() -> None:
    assert cli_check.show({"age_s": 7200, "share": 0.25, "newest_snapshot": None}) == "age 2 h 00 min, share 25.0 %"
    assert cli_check.show({"mode": "0644", "path": "/x"}) == "mode 0644, path /x"
    assert cli_check.show(None) == "-"
    assert cli_check.show("x" * 100).endswith("…")


def _facts() -> ClientFacts:
    snaps = [snap(f"snapshot{k}", day(k) + HOUR) for k in range(-1, 10)]
    return client(target("nas", snapshots=snaps, probes=[probe(day(10))]))


def test_render_lists_rules_by_target() -> None:
    report = evaluate(policy(rpo="1d"), _facts(), period(0, 10))
    text = cli_check.render(report)
    first, header, *rows = text.splitlines()
    assert first.startswith("acme (Acme SARL), policy standard, 2024-05-01 00:00 to 2024-05-11 00:00 UTC: ")
    assert header.split() == ["TARGET", "RULE", "VERDICT", "VALUE", "THRESHOLD"]
    named = [row.split()[:3] for row in rows if row.startswith("  acme/nas ") or row.startswith("  (client) ")]
    assert named == [["(client)", "copies", "violated"], ["acme/nas", "anomalies", "unknown"]]  # each target once
    assert any(row.split()[:2] == ["rpo", "met"] for row in rows)
    assert any("evidence: snapshots snapshot" in row for row in rows)


def _config(tmp_path: Path) -> Config:
    job = JobFile.model_validate(
        {
            "client": "Acme SARL",
            "targets": {
                "nas": {
                    "kind": "local",
                    "path": "/srv/repo",
                    "password_file": "p",
                    "location": "onsite",
                    "media": "disk",
                }
            },
        }
    )
    config = Config(
        directory=tmp_path, settings=Settings(), clients={"acme": Client("acme", job, tmp_path / "acme.yaml")}
    )
    config.client_policies["acme"] = policy(rpo="1d")
    return config


@pytest.fixture
def gathered(monkeypatch: pytest.MonkeyPatch) -> list[datetime | None]:
    calls: list[datetime | None] = []

    def fake(config: Config, store: Any, client_id: str, *, until: datetime | None = None) -> ClientFacts:
        calls.append(until)
        return _facts()

    monkeypatch.setattr(cli_check, "gather", fake)
    return calls


def run(tmp_path: Path, client_id: str | None, **options: Any) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    store: Any = None  # never opened: gather is replaced
    code = cli_check.check_command(_config(tmp_path), store, client_id, echo=out.append, echo_err=err.append, **options)
    return code, out, err


def test_one_client_as_json(tmp_path: Path, gathered: list[datetime | None]) -> None:
    code, out, _ = run(tmp_path, "acme", date_from="2024-05-01", date_to="2024-05-10", as_json=True)
    doc = json.loads(out[0])
    assert set(doc) == {"client", "verdict", "rules"}
    assert gathered == [day(10)]  # facts as they stood at the end of the period
    assert code == {"met": 0, "violated": 1, "unknown": 3}[doc["verdict"]]
    assert code == 1  # no drill at all


def test_every_client_as_json(tmp_path: Path, gathered: list[datetime | None]) -> None:
    code, out, _ = run(tmp_path, None, at="2024-05-10T12:00Z", as_json=True)
    doc = json.loads(out[0])
    assert [c["client"] for c in doc["clients"]] == ["acme"]
    assert gathered == [datetime(2024, 5, 10, 12, tzinfo=UTC)]
    assert code == 1


def test_usage_errors(tmp_path: Path, gathered: list[datetime | None]) -> None:
    code, _, err = run(tmp_path, "nobody")
    assert code == 2
    assert "unknown client 'nobody'" in err[0]
    code, _, err = run(tmp_path, "acme", at="soon")
    assert code == 2
    assert gathered == []
