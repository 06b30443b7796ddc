"""Alerts end to end on real receivers: e-mails caught by aiosmtpd, webhooks by a local HTTP server.

Drill outcomes and policy reports are built in the store by hand (no restic needed); every test that touches
the store runs on SQLite and on PostgreSQL. Time moves by injecting ``now``, never by sleeping.
"""

from __future__ import annotations

import json
import logging
import smtplib
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from preuve import redact
from preuve.alerts import (
    deliver_pending,
    get_flip,
    list_alerts,
    on_config_error,
    on_daemon_state,
    on_drill_finished,
    on_policy_report,
    ping_dead_man,
    remind,
    send_test,
)
from preuve.alerts.channels import ChannelError, send_email
from preuve.alerts.delivery import backoff
from preuve.alerts.flips import should_alert, webhook_display
from preuve.alerts.messages import trial_message
from preuve.config.loader import Config, load_config
from preuve.drills.result import DrillKind, DrillResult, DrillStatus, Finding
from preuve.errors import FailureClass
from preuve.policies.evaluate import PolicyReport
from preuve.policies.facts import RuleResult, Verdict
from preuve.policies.period import Period
from preuve.policies.rules._common import worst
from preuve.store.db import Store
from preuve.store.records import create_drill, finish_drill, mark_interrupted, sync_config
from tests.integration.drill_helpers import PREUVE
from tests.support.alert_sinks import LOOPBACK, Mail, SmtpSink, WebhookSink, free_port, tls_files

pytestmark = pytest.mark.integration

T = TypeVar("T")
SMTP_PASSWORD = "smtp-Pa55word-n0t-for-eyes"
REPO_SECRET = "repo-S3cret-2b7c1d9e"
WEBHOOK_TOKEN = "T0KEN-8f3a9c5d1e"
NOC = "noc@provider.example"
ONCALL = "oncall@provider.example"

JOB = """\
client: {name}
targets:
{targets}
"""
TARGET = """\
  {name}:
    kind: local
    path: /srv/restic/{client}/{name}
    password_file: secrets/{client}.pass
    location: onsite
    media: nas
"""


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks go straight to 127.0.0.1 whatever the environment says about proxies."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


ConfFactory = Callable[..., Config]


@pytest.fixture
def make_conf(tmp_path: Path, request: pytest.FixtureRequest) -> ConfFactory:
    """Write a configuration folder (preuve.toml on the test's database, two clients) and load it.

    The database is the ``store`` fixture's when the test uses it (SQLite and PostgreSQL), else a SQLite file:
    tests that never touch the store do not run twice.
    """
    if "store_url" in request.fixturenames:
        store_url = str(request.getfixturevalue("store_url"))
    else:
        store_url = f"sqlite:///{tmp_path / 'preuve.db'}"

    def make(
        *,
        smtp_port: int | None = None,
        webhook: str | None = None,
        email: tuple[str, ...] = (NOC, ONCALL),
        reminder_after: str = "24h",
        max_attempts: int = 4,
        dead_man_url: str | None = None,
        smtp_extra: str = "",
        folder: str = "conf",
    ) -> Config:
        conf = tmp_path / folder
        (conf / "jobs").mkdir(parents=True, exist_ok=True)
        (conf / "secrets").mkdir(exist_ok=True)
        (conf / "secrets" / "smtp.pass").write_text(SMTP_PASSWORD + "\n")
        alerts = [f"email = {json.dumps(list(email))}", f'reminder_after = "{reminder_after}"']
        alerts.append(f"max_attempts = {max_attempts}")
        if webhook:
            alerts.append(f'webhook = "{webhook}"')
        if dead_man_url:
            alerts.append(f'dead_man_url = "{dead_man_url}"')
        smtp = [
            f'host = "{LOOPBACK}"',
            f"port = {smtp_port or free_port()}",
            'from = "Preuve <preuve@provider.example>"',
        ]
        smtp.append('timeout = "5s"')
        (conf / "preuve.toml").write_text(
            f'database = "{store_url}"\n\n[alerts]\n'
            + "\n".join(alerts)
            + "\n\n[smtp]\n"
            + "\n".join(smtp)
            + "\n"
            + smtp_extra
        )
        jobs = {"acme": ("ACME", ["nas", "usb", "cloud"]), "beta": ("Beta SARL", ["rest"])}
        for client, (name, targets) in jobs.items():
            body = "".join(TARGET.format(client=client, name=t) for t in targets)
            (conf / "jobs" / f"{client}.yaml").write_text(JOB.format(name=name, targets=body))
        return load_config(conf)

    return make


@pytest.fixture
def hook_url(webhook_sink: WebhookSink) -> str:
    return f"{webhook_sink.url}/hooks/{WEBHOOK_TOKEN}"


@pytest.fixture
def conf(make_conf: ConfFactory, smtp_sink: SmtpSink, hook_url: str, store: Store) -> Config:
    config = make_conf(smtp_port=smtp_sink.port, webhook=hook_url)
    sync_config(store, config)
    return config


# ---------------------------------------------------------------------------------------------------- helpers


def drill(
    store: Store,
    ref: str,
    status: DrillStatus,
    failure_class: FailureClass | None = None,
    *,
    kind: DrillKind = DrillKind.SAMPLE,
    message: str = "",
    findings: tuple[Finding, ...] = (),
) -> int:
    """A drill recorded as the engine would, finished with ``status``."""
    drill_id = create_drill(store, ref, kind, "tester@preuve-1")
    result = DrillResult(
        status=status,
        kind=kind,
        failure_class=failure_class,
        message=message or f"{status.value} drill of {ref}",
        findings=list(findings),
        files_checked=23,
    )
    finish_drill(store, drill_id, result)
    return drill_id


def report(
    client: str, verdicts: dict[tuple[str, str | None], Verdict], at: datetime, reason: str = ""
) -> PolicyReport:
    rules = tuple(
        RuleResult(
            rule=rule,
            target=target,
            verdict=verdict,
            value=3,
            threshold=1,
            reason=reason or f"{rule} is {verdict.value}",
            evidence={"drills": [1, 2]},
        )
        for (rule, target), verdict in verdicts.items()
    )
    return PolicyReport(
        client=client,
        name=client.upper(),
        policy="standard",
        period=Period.ending(at),
        verdict=worst(r.verdict for r in rules),
        rules=rules,
    )


def webhooks(sink: WebhookSink) -> list[dict[str, Any]]:
    return [r.json() for r in sink.received("POST")]


def delivered(smtp: SmtpSink, hooks: WebhookSink) -> tuple[list[Mail], list[dict[str, Any]]]:
    return smtp.received(), webhooks(hooks)


def flip_ids_of(mails: list[Mail]) -> list[int]:
    return [int(str(m.message["X-Preuve-Alert"])) for m in mails]


def race(count: int, action: Callable[[int], T]) -> list[T]:
    """Run ``action(i)`` in ``count`` threads released together; their results, or the first error."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            value = action(index)
            with lock:
                results.append(value)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def _preuve(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREUVE, "--config", str(config.directory), *args], capture_output=True, text=True, timeout=120, check=False
    )


# ---------------------------------------------------------------------------------------- the rules, in units


@pytest.mark.parametrize(
    ("kind", "old", "new", "alerted"),
    [
        ("drill", None, "passed", False),
        ("drill", None, "failed", True),
        ("drill", None, "error", True),
        ("drill", "passed", "failed", True),
        ("drill", "failed", "passed", True),
        ("drill", "failed", "error", True),
        ("drill", "passed", "passed", False),
        ("drill", "failed", "failed", False),
        ("rule", None, "met", False),
        ("rule", None, "unknown", False),
        ("rule", None, "violated", True),
        ("rule", "met", "violated", True),
        ("rule", "violated", "met", True),
        ("rule", "met", "unknown", False),
        ("rule", "unknown", "met", False),
        ("rule", "unknown", "violated", True),
        ("rule", "violated", "unknown", True),
        ("config", None, "error", True),
        ("config", "error", "ok", True),
    ],
)
def test_which_changes_are_alerted(kind: str, old: str | None, new: str, alerted: bool) -> None:
    assert should_alert(kind, old, new) is alerted


def test_backoff_doubles_from_a_minute_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(7) == timedelta(hours=1)
    assert backoff(10_000) == timedelta(hours=1)


def test_webhook_urls_are_shown_without_their_secret_path() -> None:
    assert webhook_display("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/***"
    assert webhook_display("https://user:pw@chat.example:8443/hook?token=abc") == "https://chat.example:8443/***"
    assert webhook_display("https://chat.example") == "https://chat.example"


# ----------------------------------------------------------------------------------------------- drill flips


def test_a_flip_sends_one_message_per_channel_and_repeats_send_nothing(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    first = drill(store, "acme/nas", DrillStatus.PASSED)
    recorded = on_drill_finished(conf, store, first)
    assert len(recorded) == 1, "the first result ever is recorded"
    assert get_flip(store, recorded[0]) is not None
    assert get_flip(store, recorded[0]).deliveries == ()  # type: ignore[union-attr]
    assert deliver_pending(conf, store) == 0
    assert delivered(smtp_sink, webhook_sink) == ([], [])

    broken = drill(
        store,
        "acme/nas",
        DrillStatus.FAILED,
        FailureClass.CORRUPT_DATA,
        message="2 of 23 restored files do not match their snapshot",
        findings=(Finding("/srv/data/ledger.xlsx", FailureClass.CORRUPT_DATA, "sha256 differs"),),
    )
    [failure] = on_drill_finished(conf, store, broken)
    assert deliver_pending(conf, store) == 2
    mails, hooks = delivered(smtp_sink, webhook_sink)
    assert len(mails) == 1 and len(hooks) == 1

    mail = mails[0]
    assert mail.subject == "[Preuve] acme/nas: drill FAILED (corrupt-data)"
    assert sorted(mail.rcpt_tos) == sorted([NOC, ONCALL])
    assert mail.message["To"] == f"{NOC}, {ONCALL}"
    assert mail.message["From"] == "Preuve <preuve@provider.example>"
    assert flip_ids_of(mails) == [failure]
    body = mail.body
    assert "2 of 23 restored files do not match their snapshot" in body
    assert FailureClass.CORRUPT_DATA.advice in body
    assert f"preuve drill show {broken} --log" in body
    assert "/srv/data/ledger.xlsx" in body
    assert "Previous:  passed" in body
    assert "Client:    ACME (acme)" in body

    hook = hooks[0]
    assert hook["text"] == f"[Preuve] acme/nas: drill FAILED (corrupt-data) · preuve drill show {broken} --log"
    assert hook["event"] == "drill.failed"
    assert (hook["client"], hook["target"], hook["state"], hook["previous"]) == ("acme", "acme/nas", "failed", "passed")
    assert hook["drill_id"] == broken and hook["flip_id"] == failure and hook["reminder"] is False
    assert hook["failure_class"] == "corrupt-data"
    assert hook["summary"] == "acme/nas: drill FAILED (corrupt-data)"
    assert datetime.fromisoformat(hook["at"]).tzinfo is not None
    post = webhook_sink.received("POST")[0]
    assert post.path == f"/hooks/{WEBHOOK_TOKEN}"
    assert post.headers["Content-Type"].startswith("application/json")

    # Failing night after night: no new flip, no new message (a full drill shares the subject).
    for _ in range(3):
        assert (
            on_drill_finished(conf, store, drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.CORRUPT_DATA))
            == []
        )
    assert (
        on_drill_finished(
            conf, store, drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.CORRUPT_DATA, kind=DrillKind.FULL)
        )
        == []
    )
    assert deliver_pending(conf, store) == 0
    assert len(smtp_sink.received()) == 1 and len(webhooks(webhook_sink)) == 1

    # Recovery: one message per channel.
    [recovery] = on_drill_finished(conf, store, drill(store, "acme/nas", DrillStatus.PASSED))
    assert deliver_pending(conf, store) == 2
    assert deliver_pending(conf, store) == 0
    mails, hooks = delivered(smtp_sink, webhook_sink)
    assert [m.subject for m in mails] == [
        "[Preuve] acme/nas: drill FAILED (corrupt-data)",
        "[Preuve] acme/nas: drill PASSED again (was failed)",
    ]
    assert [h["event"] for h in hooks] == ["drill.failed", "drill.passed"]
    assert hooks[1]["text"] == "[Preuve] acme/nas: drill PASSED again (was failed)"
    assert flip_ids_of(mails) == [failure, recovery]

    listed = list_alerts(store)
    assert [f.id for f in listed] == [recovery, failure, first]
    assert all(d.status == "sent" and d.attempts == 1 and d.sent_at for d in listed[0].deliveries)
    assert {d.channel: d.destination for d in listed[0].deliveries} == {
        "email": f"{NOC}, {ONCALL}",
        "webhook": f"{webhook_sink.url}/***",
    }


def test_first_result_failing_is_alerted_and_each_subject_has_its_own_state(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    assert on_drill_finished(conf, store, drill(store, "acme/usb", DrillStatus.ERROR, FailureClass.UNREACHABLE))
    # an integrity run is a subject of its own: its failure is news even though drills of the target pass
    assert on_drill_finished(conf, store, drill(store, "acme/nas", DrillStatus.PASSED))
    integrity = drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.CORRUPT_DATA, kind=DrillKind.INTEGRITY)
    assert on_drill_finished(conf, store, integrity)
    # failed -> error is a change of meaning: alerted
    assert on_drill_finished(conf, store, drill(store, "acme/usb", DrillStatus.FAILED, FailureClass.REPO_MISSING))
    # interrupted drills say nothing about the backup
    interrupted = create_drill(store, "acme/usb", DrillKind.SAMPLE, "tester")
    mark_interrupted(store, [interrupted])
    assert on_drill_finished(conf, store, interrupted) == []
    assert on_drill_finished(conf, store, create_drill(store, "acme/usb", DrillKind.SAMPLE, "tester")) == []

    assert deliver_pending(conf, store) == 6
    subjects = [m.subject for m in smtp_sink.received()]
    assert subjects == [
        "[Preuve] acme/usb: drill ERROR (unreachable)",
        "[Preuve] acme/nas: integrity check FAILED (corrupt-data)",
        "[Preuve] acme/usb: drill FAILED (repo-missing)",
    ]
    assert [h["event"] for h in webhooks(webhook_sink)] == ["drill.error", "integrity.failed", "drill.failed"]
    assert {f.subject for f in list_alerts(store)} == {"drill:acme/usb", "drill:acme/nas", "integrity:acme/nas"}
    with pytest.raises(LookupError):
        on_drill_finished(conf, store, 999_999)


def test_a_result_reported_late_does_not_undo_a_newer_one(store: Store, conf: Config) -> None:
    older = drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.CORRUPT_DATA)
    newer = drill(store, "acme/nas", DrillStatus.PASSED)
    assert on_drill_finished(conf, store, newer)
    assert on_drill_finished(conf, store, older) == []
    assert [f.state for f in list_alerts(store)] == ["passed"]


def test_two_processes_reporting_the_same_failure_record_one_flip(store_url: str, conf: Config, store: Store) -> None:
    broken = drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.AUTH)

    def report_it(_: int) -> list[int]:
        with Store.open(store_url) as own:
            return on_drill_finished(conf, own, broken)

    results = race(4, report_it)
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert len(list_alerts(store)) == 1


# ------------------------------------------------------------------------------------------- policy and config


def test_policy_verdicts_flip_per_client_rule_and_target(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    t0 = datetime.now(UTC)
    rpo, copies = ("rpo", "acme/nas"), ("copies", None)

    def check(minutes: int, rpo_verdict: Verdict, copies_verdict: Verdict) -> list[int]:
        return on_policy_report(
            conf, store, report("acme", {rpo: rpo_verdict, copies: copies_verdict}, t0 + timedelta(minutes=minutes))
        )

    assert len(check(0, Verdict.MET, Verdict.UNKNOWN)) == 2  # first verdicts: recorded, not alerted
    assert check(1, Verdict.MET, Verdict.UNKNOWN) == []
    assert len(check(2, Verdict.VIOLATED, Verdict.UNKNOWN)) == 1  # met -> violated: alerted
    assert check(3, Verdict.VIOLATED, Verdict.UNKNOWN) == []
    assert len(check(4, Verdict.UNKNOWN, Verdict.MET)) == 2  # violated -> unknown alerted; unknown -> met not
    assert len(check(5, Verdict.MET, Verdict.UNKNOWN)) == 2  # neither: between met and unknown
    assert len(check(6, Verdict.MET, Verdict.VIOLATED)) == 1  # unknown -> violated: alerted
    assert len(check(7, Verdict.MET, Verdict.MET)) == 1  # violated -> met: alerted

    assert deliver_pending(conf, store) == 8
    assert [m.subject for m in smtp_sink.received()] == [
        "[Preuve] acme/nas: rule rpo VIOLATED",
        "[Preuve] acme/nas: rule rpo can no longer be measured (was violated)",
        "[Preuve] acme: rule copies VIOLATED",
        "[Preuve] acme: rule copies met again (was violated)",
    ]
    first = smtp_sink.received()[0]
    assert "Measured:  3" in first.body and "Threshold: 1" in first.body and "preuve policy check acme" in first.body
    hooks = webhooks(webhook_sink)
    assert [(h["event"], h["rule"], h["target"]) for h in hooks] == [
        ("rule.violated", "rpo", "acme/nas"),
        ("rule.unknown", "rpo", "acme/nas"),
        ("rule.violated", "copies", None),
        ("rule.met", "copies", None),
    ]
    subjects = {f.subject for f in list_alerts(store)}
    assert subjects == {"rule:acme:rpo:acme/nas", "rule:acme:copies"}


def test_configuration_errors_flip_once_per_distinct_set_and_back(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    assert on_config_error(conf, store, []) is None  # it always loaded: nothing to say
    one = ["jobs/acme.yaml:6: targets.usb.pasword_file: unknown key"]
    two = [*one, "preuve.toml:3: alerts.webhook: must be an http:// or https:// URL"]
    first = on_config_error(conf, store, one)
    assert first is not None
    assert on_config_error(conf, store, one) is None  # the same mistake, reloaded again
    second = on_config_error(conf, store, list(reversed(two)))
    assert second is not None
    assert on_config_error(conf, store, two) is None  # order does not make a new set
    back = on_config_error(conf, store, [])
    assert back is not None
    assert on_config_error(conf, store, []) is None

    assert deliver_pending(conf, store) == 6
    mails = smtp_sink.received()
    assert [m.subject for m in mails] == [
        "[Preuve] configuration refused: 1 problem (the last good one keeps running)",
        "[Preuve] configuration refused: 2 problems (the last good one keeps running)",
        "[Preuve] configuration loads again",
    ]
    assert "preuve.toml:3: alerts.webhook" in mails[1].body
    hooks = webhooks(webhook_sink)
    assert [h["event"] for h in hooks] == ["config.error", "config.error", "config.ok"]
    assert hooks[0]["client"] is None and hooks[0]["target"] is None
    assert [f.client for f in list_alerts(store)] == ["*", "*", "*"]


def test_the_daemons_own_health_flips_once_per_episode(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    assert on_daemon_state(conf, store, "scheduler", None) is None  # never wrong: nothing to say
    assert on_daemon_state(conf, store, "scheduler", "the database did not answer for 5 min") is not None
    assert on_daemon_state(conf, store, "scheduler", "the database did not answer for 10 min") is None
    assert on_daemon_state(conf, store, "scheduler", None) is not None
    assert on_daemon_state(conf, store, "scheduler", None) is None
    assert deliver_pending(conf, store) == 4
    assert [m.subject for m in smtp_sink.received()] == [
        "[Preuve] Preuve scheduler: the database did not answer for 5 min",
        "[Preuve] Preuve scheduler is back to normal",
    ]
    assert [h["event"] for h in webhooks(webhook_sink)] == ["daemon.error", "daemon.ok"]


# ------------------------------------------------------------------------------------------------- reminders


def test_a_lasting_failure_is_reminded_once_per_period_until_it_recovers(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    broken = drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.CORRUPT_DATA)
    [failure] = on_drill_finished(conf, store, broken)
    on_policy_report(conf, store, report("acme", {("rpo", "acme/nas"): Verdict.MET}, datetime.now(UTC)))
    at = get_flip(store, failure).at  # type: ignore[union-attr]

    assert remind(conf, store, now=at + timedelta(hours=23)) == []
    [first] = remind(conf, store, now=at + timedelta(hours=24, minutes=1))
    assert remind(conf, store, now=at + timedelta(hours=30)) == []  # one per period
    assert remind(conf, store, now=at + timedelta(hours=47)) == []
    # the daemon was away for days: still one reminder, not one per missed period
    [second] = remind(conf, store, now=at + timedelta(hours=120))
    assert remind(conf, store, now=at + timedelta(hours=121)) == []

    reminder = get_flip(store, second)
    assert reminder is not None and reminder.reminder
    assert (reminder.previous, reminder.state) == ("failed", "failed")
    assert reminder.details["reminder_of"] == failure and reminder.details["reminder_count"] == 2
    assert reminder.details["drill_id"] == broken

    assert deliver_pending(conf, store) == 6
    subjects = [m.subject for m in smtp_sink.received()]
    since = f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    assert subjects == [
        "[Preuve] acme/nas: drill FAILED (corrupt-data)",
        f"[Preuve] Reminder: acme/nas: drill FAILED (corrupt-data), unresolved since {since}",
        f"[Preuve] Reminder: acme/nas: drill FAILED (corrupt-data), unresolved since {since}",
    ]
    assert f"preuve drill show {broken} --log" in smtp_sink.received()[2].body
    hooks = webhooks(webhook_sink)
    assert [h["reminder"] for h in hooks] == [False, True, True]
    assert [h["flip_id"] for h in hooks] == [failure, first, second]

    # recovered: no more reminders, ever
    assert on_drill_finished(conf, store, drill(store, "acme/nas", DrillStatus.PASSED))
    assert remind(conf, store, now=at + timedelta(days=30)) == []


def test_no_reminders_for_a_target_removed_from_the_configuration(
    store: Store, make_conf: ConfFactory, smtp_sink: SmtpSink
) -> None:
    config = make_conf(smtp_port=smtp_sink.port)
    sync_config(store, config)
    assert on_drill_finished(config, store, drill(store, "beta/rest", DrillStatus.FAILED, FailureClass.AUTH))
    (config.directory / "jobs" / "beta.yaml").unlink()
    reloaded = load_config(config.directory)
    assert remind(reloaded, store, now=datetime.now(UTC) + timedelta(days=2)) == []
    assert remind(config, store, now=datetime.now(UTC) + timedelta(days=2))


# ----------------------------------------------------------------------------------------- failing channels


def test_a_failing_webhook_is_retried_with_backoff_then_failed_and_kept(
    store: Store, make_conf: ConfFactory, smtp_sink: SmtpSink, webhook_sink: WebhookSink, hook_url: str
) -> None:
    config = make_conf(smtp_port=smtp_sink.port, webhook=hook_url, max_attempts=3)
    sync_config(store, config)
    webhook_sink.status = 500
    [flip] = on_drill_finished(config, store, drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.TIMEOUT))
    t0 = datetime.now(UTC) + timedelta(seconds=5)

    assert deliver_pending(config, store, now=t0) == 1  # the e-mail
    assert len(webhook_sink.received()) == 1
    [hook] = [d for d in get_flip(store, flip).deliveries if d.channel == "webhook"]  # type: ignore[union-attr]
    assert (hook.status, hook.attempts, hook.next_attempt_at) == ("pending", 1, t0 + timedelta(minutes=1))
    assert "HTTP 500" in hook.last_error and "upstream exploded" in hook.last_error

    assert deliver_pending(config, store, now=t0 + timedelta(seconds=59)) == 0
    assert len(webhook_sink.received()) == 1, "not before its back-off"
    assert deliver_pending(config, store, now=t0 + timedelta(minutes=1)) == 0
    assert len(webhook_sink.received()) == 2
    t2 = t0 + timedelta(minutes=1)
    assert deliver_pending(config, store, now=t2 + timedelta(minutes=1, seconds=59)) == 0
    assert len(webhook_sink.received()) == 2, "the second wait is twice as long"
    assert deliver_pending(config, store, now=t2 + timedelta(minutes=2)) == 0
    assert len(webhook_sink.received()) == 3

    [hook] = [d for d in get_flip(store, flip).deliveries if d.channel == "webhook"]  # type: ignore[union-attr]
    assert (hook.status, hook.attempts, hook.next_attempt_at) == ("failed", 3, None)
    assert hook.last_error.startswith(f"the webhook {webhook_sink.url}/*** answered HTTP 500")
    assert deliver_pending(config, store, now=t0 + timedelta(days=1)) == 0
    assert len(webhook_sink.received()) == 3, "a failed delivery is not retried again"
    assert len(smtp_sink.received()) == 1, "the e-mail went out once, whatever the webhook did"

    # a webhook that recovers takes the next flips
    webhook_sink.status = 204
    on_drill_finished(config, store, drill(store, "acme/nas", DrillStatus.PASSED))
    assert deliver_pending(config, store) == 2


def test_a_channel_that_fails_is_tried_once_per_call_and_catches_up_when_back(
    store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    webhook_sink.status = 503
    for ref in ("acme/nas", "acme/usb", "beta/rest"):
        on_drill_finished(conf, store, drill(store, ref, DrillStatus.FAILED, FailureClass.UNREACHABLE))
    t0 = datetime.now(UTC) + timedelta(seconds=5)
    assert deliver_pending(conf, store, now=t0) == 3  # the e-mails
    assert len(webhook_sink.received()) == 1, "the other webhooks wait: one timeout per call, not one per message"
    attempts = sorted(d.attempts for f in list_alerts(store) for d in f.deliveries if d.channel == "webhook")
    assert attempts == [0, 0, 1]
    webhook_sink.status = 200
    assert deliver_pending(conf, store, now=t0 + timedelta(minutes=1)) == 3
    assert len(webhooks(webhook_sink)) == 4 and len(smtp_sink.received()) == 3


def test_smtp_down_is_retried_then_failed_and_shown_by_alerts_list(
    store: Store, make_conf: ConfFactory, webhook_sink: WebhookSink, hook_url: str
) -> None:
    config = make_conf(smtp_port=free_port(), webhook=hook_url, max_attempts=2)  # nothing listens there
    sync_config(store, config)
    [flip] = on_drill_finished(config, store, drill(store, "acme/cloud", DrillStatus.ERROR, FailureClass.AUTH))
    t0 = datetime.now(UTC) + timedelta(seconds=5)
    assert deliver_pending(config, store, now=t0) == 1  # the webhook only
    assert deliver_pending(config, store, now=t0 + timedelta(minutes=1)) == 0
    [mail] = [d for d in get_flip(store, flip).deliveries if d.channel == "email"]  # type: ignore[union-attr]
    assert (mail.status, mail.attempts) == ("failed", 2)
    assert "connection refused" in mail.last_error and f"{LOOPBACK}:{config.settings.smtp.port}" in mail.last_error

    listed = _preuve(config, "alerts", "list")
    assert listed.returncode == 0, listed.stderr
    assert "acme/cloud: drill ERROR (auth)" in listed.stdout
    assert f"email   {NOC}, {ONCALL}: FAILED after 2 attempts: cannot connect to the SMTP server" in listed.stdout
    assert "webhook" in listed.stdout and ": sent " in listed.stdout
    shown = json.loads(_preuve(config, "alerts", "list", "--failed", "--json").stdout)
    [alert] = shown["alerts"]
    assert alert["id"] == flip and alert["state"] == "error"
    assert {d["channel"]: d["status"] for d in alert["deliveries"]} == {"email": "failed", "webhook": "sent"}

    on_drill_finished(config, store, drill(store, "acme/cloud", DrillStatus.PASSED))
    assert [a["id"] for a in json.loads(_preuve(config, "alerts", "list", "--failed", "--json").stdout)["alerts"]] == [
        flip
    ]
    assert len(json.loads(_preuve(config, "alerts", "list", "--json").stdout)["alerts"]) == 2


def test_a_channel_removed_from_the_configuration_fails_its_pending_deliveries(
    store: Store, conf: Config, make_conf: ConfFactory, smtp_sink: SmtpSink
) -> None:
    [flip] = on_drill_finished(conf, store, drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.AUTH))
    without_webhook = make_conf(smtp_port=smtp_sink.port)
    assert deliver_pending(without_webhook, store) == 1
    states = {d.channel: (d.status, d.last_error) for d in get_flip(store, flip).deliveries}  # type: ignore[union-attr]
    assert states["email"][0] == "sent"
    assert states["webhook"] == ("failed", "the webhook channel is no longer configured (alerts.webhook is not set)")


def test_two_daemons_delivering_at_once_send_each_message_once(
    store_url: str, store: Store, conf: Config, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    webhook_sink.delay_s = 0.05  # keep both senders busy at the same time
    flips = []
    for ref in ("acme/nas", "acme/usb", "acme/cloud", "beta/rest"):
        flips += on_drill_finished(conf, store, drill(store, ref, DrillStatus.FAILED, FailureClass.UNREACHABLE))
    flips += on_policy_report(
        conf,
        store,
        report("acme", {("rpo", "acme/nas"): Verdict.VIOLATED, ("copies", None): Verdict.VIOLATED}, datetime.now(UTC)),
    )
    assert len(flips) == 6

    def daemon(_: int) -> int:
        with Store.open(store_url) as own:
            return sum(deliver_pending(conf, own) for _ in range(3))

    assert sum(race(2, daemon)) == 12
    assert sorted(flip_ids_of(smtp_sink.received())) == sorted(flips)
    assert sorted(h["flip_id"] for h in webhooks(webhook_sink)) == sorted(flips)
    assert all(d.status == "sent" and d.attempts == 1 for f in list_alerts(store) for d in f.deliveries)


# ---------------------------------------------------------------------------------------------- TLS and login


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    files = tls_files(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))  # the client trusts the test authority, and only it
    return files


def test_starttls_and_login_then_the_password_is_nowhere(
    store: Store, make_conf: ConfFactory, tls: Any, webhook_sink: WebhookSink, hook_url: str
) -> None:
    sink = SmtpSink.start(starttls=tls.server_context(), credentials=("preuve", SMTP_PASSWORD))
    try:
        config = make_conf(
            smtp_port=sink.port,
            webhook=hook_url,
            smtp_extra='starttls = true\nusername = "preuve"\npassword_file = "secrets/smtp.pass"\n',
        )
        sync_config(store, config)
        [flip] = on_drill_finished(config, store, drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.AUTH))
        assert deliver_pending(config, store) == 2
        [mail] = sink.received()
        assert mail.tls and mail.login == "preuve"
        assert SMTP_PASSWORD.encode() not in mail.raw
        assert get_flip(store, flip).deliveries[0].status == "sent"  # type: ignore[union-attr]
    finally:
        sink.stop()


def test_implicit_tls(make_conf: ConfFactory, tls: Any) -> None:
    sink = SmtpSink.start(implicit_tls=tls.server_context(), credentials=("preuve", SMTP_PASSWORD))
    try:
        config = make_conf(
            smtp_port=sink.port,
            smtp_extra='ssl = true\nusername = "preuve"\npassword_file = "secrets/smtp.pass"\n',
        )
        send_email(config, trial_message())
        [mail] = sink.received()
        assert mail.tls and mail.login == "preuve"
    finally:
        sink.stop()


def test_a_server_whose_certificate_is_not_trusted_is_refused(
    make_conf: ConfFactory, tls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = SmtpSink.start(starttls=tls.server_context())
    try:
        monkeypatch.delenv("SSL_CERT_FILE")
        config = make_conf(smtp_port=sink.port, smtp_extra="starttls = true\n")
        with pytest.raises(ChannelError, match="TLS with the SMTP server"):
            send_email(config, trial_message())
        assert sink.received() == []
    finally:
        sink.stop()


def test_starttls_is_asked_for_and_the_password_is_never_sent_in_clear(
    make_conf: ConfFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit level: what the client asks of smtplib, without a server."""
    calls: list[tuple[str, Any]] = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            calls.append(("connect", (host, port, timeout)))

        def __enter__(self) -> FakeSMTP:
            return self

        def __exit__(self, *args: object) -> None:
            calls.append(("quit", None))

        def ehlo(self) -> None:
            calls.append(("ehlo", None))

        def starttls(self, context: Any) -> None:
            calls.append(("starttls", context is not None))

        def login(self, user: str, password: str) -> None:
            calls.append(("login", (user, password == SMTP_PASSWORD)))

        def send_message(self, message: Any, to_addrs: list[str]) -> dict[str, Any]:
            calls.append(("send", to_addrs))
            return {}

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    login = 'username = "preuve"\npassword_file = "secrets/smtp.pass"\n'
    config = make_conf(smtp_port=587, smtp_extra="starttls = true\n" + login)
    send_email(config, trial_message())
    assert [name for name, _ in calls] == ["connect", "ehlo", "starttls", "ehlo", "login", "send", "quit"]
    assert ("login", ("preuve", True)) in calls and ("starttls", True) in calls

    # a login without TLS to anything but this machine is refused before connecting
    calls.clear()
    plain = make_conf(smtp_extra=login, folder="plain")
    remote = plain.settings.model_copy(
        update={"smtp": plain.settings.smtp.model_copy(update={"host": "smtp.provider.example"})}
    )
    with pytest.raises(ChannelError, match="unencrypted"):
        send_email(Config(directory=plain.directory, settings=remote), trial_message())
    assert calls == []


# ------------------------------------------------------------------------------------------------- secrets


def test_secrets_never_reach_emails_webhooks_or_the_alerts_table(
    store: Store, make_conf: ConfFactory, tls: Any, webhook_sink: WebhookSink, hook_url: str
) -> None:
    sink = SmtpSink.start(starttls=tls.server_context(), credentials=("preuve", SMTP_PASSWORD))
    try:
        config = make_conf(
            smtp_port=sink.port,
            webhook=hook_url,
            smtp_extra='starttls = true\nusername = "preuve"\npassword_file = "secrets/smtp.pass"\n',
        )
        sync_config(store, config)
        redact.register(REPO_SECRET)
        # Secrets where careless code could put them: a drill's message and findings, a rule's reason, and
        # configuration problems quoting a value (recorded before anything connected to the SMTP server).
        leaky = f"restic said: wrong password {REPO_SECRET} (smtp {SMTP_PASSWORD})"
        on_config_error(config, store, [f"preuve.toml:9: smtp.password: unknown key (value {SMTP_PASSWORD})", leaky])
        finding = Finding(f"/x/{REPO_SECRET}", FailureClass.AUTH, leaky)
        broken = drill(store, "acme/nas", DrillStatus.FAILED, FailureClass.AUTH, message=leaky, findings=(finding,))
        on_drill_finished(config, store, broken)
        verdicts: dict[tuple[str, str | None], Verdict] = {("secrets", "acme/nas"): Verdict.VIOLATED}
        on_policy_report(config, store, report("acme", verdicts, datetime.now(UTC), reason=leaky))
        remind(config, store, now=datetime.now(UTC) + timedelta(days=2))
        assert deliver_pending(config, store) == 12
        assert send_test(config)[0].ok
        mails = sink.received()
        assert len(mails) == 7 and all(m.login == "preuve" for m in mails)
    finally:
        sink.stop()

    seen: list[str] = []
    for mail in mails:
        seen += [mail.raw.decode("utf-8", "replace"), mail.subject, mail.body]
    seen += [r.body.decode("utf-8") for r in webhook_sink.received()]
    seen += [json.dumps(h, ensure_ascii=False) for h in webhooks(webhook_sink)]
    with store.engine.connect() as connection:
        for table in ("flip", "alertdelivery"):
            seen += [repr(tuple(row)) for row in connection.execute(text(f"SELECT * FROM {table}"))]  # noqa: S608
    seen += [_preuve(config, "alerts", "list", "--json").stdout, _preuve(config, "alerts", "list").stdout]
    joined = "\n".join(seen)
    assert "***" in joined and "/x/***" in joined, "the secrets were there, masked"
    assert REPO_SECRET not in joined
    assert SMTP_PASSWORD not in joined
    assert WEBHOOK_TOKEN not in joined


# ------------------------------------------------------------------------------------- dead man and test command


def test_dead_man_switch_is_pinged_and_its_failures_are_logged_never_raised(
    make_conf: ConfFactory, webhook_sink: WebhookSink, caplog: pytest.LogCaptureFixture
) -> None:
    assert ping_dead_man(make_conf()) is False  # not configured
    assert ping_dead_man(make_conf(dead_man_url=f"{webhook_sink.url}/ping/abc")) is True
    [ping] = webhook_sink.received()
    assert (ping.method, ping.path) == ("GET", "/ping/abc")

    webhook_sink.status = 503
    with caplog.at_level(logging.WARNING, logger="preuve.alerts"):
        assert ping_dead_man(make_conf(dead_man_url=f"{webhook_sink.url}/ping/abc")) is False
        assert ping_dead_man(make_conf(dead_man_url=f"http://{LOOPBACK}:{free_port()}/ping")) is False
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP 503" in m for m in messages)
    assert any("not pinged" in m and "/abc" not in m for m in messages)


def test_alerts_test_command_reports_each_channel(
    make_conf: ConfFactory, smtp_sink: SmtpSink, webhook_sink: WebhookSink, hook_url: str
) -> None:
    config = make_conf(smtp_port=smtp_sink.port, webhook=hook_url)
    done = _preuve(config, "alerts", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"email   {NOC}, {ONCALL}: sent" in done.stdout
    assert f"webhook {webhook_sink.url}/***: sent" in done.stdout
    [mail] = smtp_sink.received()
    assert mail.subject.startswith("[Preuve] Test alert from Preuve on ")
    assert webhooks(webhook_sink)[0]["event"] == "test"

    webhook_sink.status = 404
    failing = _preuve(config, "alerts", "test", "--json")
    assert failing.returncode == 3
    outcomes = {o["channel"]: o for o in json.loads(failing.stdout)["channels"]}
    assert outcomes["email"]["ok"] is True
    assert outcomes["webhook"]["ok"] is False and "HTTP 404" in outcomes["webhook"]["error"]

    none = make_conf(email=(), folder="silent")
    assert _preuve(none, "alerts", "test").returncode == 2
