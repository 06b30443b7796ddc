"""The attestation run: every client's attestation for the month that ended, e-mailed through a real SMTP server
(aiosmtpd on 127.0.0.1); idempotent; a failed e-mail is kept on the row and sent by a later run; the month is the
last one over in the daemon's time zone. The content is the real builder's over results recorded through Preuve's
own paths (tests/integration/month_records.py)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from preuve.config.loader import Config
from preuve.reports.mail import CLAIM_LEASE, claim_token, send_attestation
from preuve.reports.monthly import month_just_ended, monthly_run, run_monthly
from preuve.store.db import Store
from preuve.store.ledger import month_bounds
from preuve.store.models import Attestation
from preuve.store.records import sync_config
from tests.integration.attest_helpers import write_config
from tests.integration.month_records import OCT, Clock, build_month, install_clock
from tests.support.alert_sinks import SmtpSink, free_port

pytestmark = pytest.mark.integration

NOVEMBER_1ST = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink.start()
    yield sink
    sink.stop()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return install_clock(monkeypatch)


def _record(config: Config, clock: Clock, start: datetime = OCT) -> None:
    """acme's month from ``start`` (drills, a failure with a note, probes); beta: nothing."""
    with _store(config) as store:
        sync_config(store, config)
        build_month(store, clock, "acme", start, usb=False)
    clock.at = datetime.now(UTC)


def _rows(store: Store) -> list[Attestation]:
    with store.session() as session:
        return list(session.exec(select(Attestation).order_by(Attestation.id)))  # type: ignore[arg-type]


def _store(config: Config) -> Store:
    return Store.open(config.database_url)


def test_the_month_that_just_ended_is_the_last_complete_utc_month() -> None:
    assert month_just_ended(datetime(2026, 11, 1, 0, 0, tzinfo=UTC)) == "2026-10"
    assert month_just_ended(datetime(2026, 1, 1, 6, 0, tzinfo=UTC)) == "2025-12"
    assert month_just_ended(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == "2026-02"
    with pytest.raises(ValueError, match="aware"):
        month_just_ended(datetime(2026, 11, 1))  # noqa: DTZ001 - the naive value under test


def test_run_monthly_attests_every_client_and_mails_the_signed_files(
    tmp_path: Path, smtp_sink: SmtpSink, clock: Clock
) -> None:
    config = write_config(tmp_path / "conf", f"sqlite:///{tmp_path / 'preuve.db'}", smtp_port=smtp_sink.port)
    month = month_just_ended(datetime.now(UTC))
    _record(config, clock, month_bounds(month)[0])
    report = run_monthly(str(config.directory), "UTC")  # the scheduler's entry point, on today's date
    assert report.month == month and report.issued == ["acme v1", "beta v1"] and not report.waiting
    with _store(config) as store:
        acme, beta = _rows(store)
    assert (acme.restorable, beta.restorable) == ("partly", "unknown")  # acme/nas tested, offsite not; beta: nothing
    assert (acme.client_id, acme.month, acme.version) == ("acme", month, 1)
    assert acme.emailed_at is not None and acme.email_error == ""
    assert beta.emailed_at is None and "no contacts" in beta.email_error and "beta.yaml" in beta.email_error

    (mail,) = smtp_sink.received()
    assert mail.rcpt_tos == ["direction@acme.example"]
    message = mail.message
    assert message["Subject"].startswith("Attestation de continuité") and "ACME Bâtiment" in message["Subject"]
    assert message["X-Preuve-Attestation"] == f"acme/{month}/v1"
    assert "Vos sauvegardes ont-elles été restaurées" in mail.body and "preuve verify" in mail.body
    assert "Certaines sauvegardes ont été restaurées avec succès, d'autres non" in mail.body
    html = message.get_body(("html",))
    assert html is not None and '<html lang="fr">' in html.get_content()
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    pdf_name, statement_name = f"acme-{month}.pdf", f"acme-{month}.statement.json"
    assert set(attachments) == {pdf_name, statement_name, f"preuve-key-{acme.keyid[:16]}.pem"}
    pdf = attachments[pdf_name]
    assert pdf == Path(acme.pdf_path).read_bytes() and hashlib.sha256(pdf).hexdigest() == acme.pdf_sha256
    statement_text = attachments[statement_name]
    envelope = json.loads(statement_text if isinstance(statement_text, str) else statement_text.decode())
    subject = json.loads(base64.b64decode(envelope["payload"]))["subject"][0]
    assert subject == {"name": pdf_name, "digest": {"sha256": acme.pdf_sha256}}

    # again: nothing issued twice, nothing sent twice; beta's missing contact is still reported
    run_monthly(str(config.directory))
    assert len(smtp_sink.received()) == 1
    with _store(config) as store:
        assert [(r.client_id, r.version) for r in _rows(store)] == [("acme", 1), ("beta", 1)]


def test_a_failed_e_mail_loses_nothing_and_is_sent_by_a_later_run(tmp_path: Path, clock: Clock) -> None:
    nobody = free_port()
    config = write_config(tmp_path / "conf", f"sqlite:///{tmp_path / 'preuve.db'}", smtp_port=nobody)
    _record(config, clock)
    with _store(config) as store:
        report = monthly_run(config, store, NOVEMBER_1ST)
        assert report.issued == ["acme v1", "beta v1"]
        assert "connection refused" in report.email_failed["acme 2026-10 v1"]
        (acme, _) = _rows(store)
        assert acme.emailed_at is None and "connection refused" in acme.email_error
        assert Path(acme.pdf_path).is_file()

    sink = SmtpSink.start()
    try:
        config = write_config(tmp_path / "conf", f"sqlite:///{tmp_path / 'preuve.db'}", smtp_port=sink.port)
        with _store(config) as store:
            report = monthly_run(config, store, NOVEMBER_1ST + timedelta(days=1))  # the next morning's run
            assert report.month == "2026-10" and report.issued == [] and report.skipped == ["acme", "beta"]
            assert report.emailed == ["acme 2026-10 v1"]  # caught up the next day, not a month later
            report = monthly_run(config, store, NOVEMBER_1ST + timedelta(days=30))  # December's run
            assert report.month == "2026-11" and report.issued == ["acme v1", "beta v1"]
            assert report.emailed == ["acme 2026-11 v1"]
            rows = {(r.client_id, r.month): r for r in _rows(store)}
        assert rows["acme", "2026-10"].emailed_at is not None and rows["acme", "2026-10"].email_error == ""
        assert sorted(m.message["X-Preuve-Attestation"] for m in sink.received()) == [
            "acme/2026-10/v1",
            "acme/2026-11/v1",
        ]
    finally:
        sink.stop()


def test_an_attestation_being_sent_by_another_process_is_left_alone_until_its_claim_expires(
    tmp_path: Path, smtp_sink: SmtpSink, clock: Clock
) -> None:
    config = write_config(tmp_path / "conf", f"sqlite:///{tmp_path / 'preuve.db'}", smtp_port=smtp_sink.port)
    _record(config, clock)
    with _store(config) as store:
        from preuve.reports.issue import issue_attestation

        issue_attestation(config, store, "acme", "2026-10")
        (row,) = _rows(store)
        claimed = claim_token(NOVEMBER_1ST)
        with store.session() as session:
            session.get(Attestation, row.id).email_error = claimed  # type: ignore[union-attr]
        (row,) = _rows(store)
        assert send_attestation(config, store, row, NOVEMBER_1ST + timedelta(minutes=1)) == (False, "")
        assert smtp_sink.received() == []
        later = NOVEMBER_1ST + CLAIM_LEASE + timedelta(minutes=1)  # the other process died while sending
        assert send_attestation(config, store, row, later) == (True, "")
        assert len(smtp_sink.received()) == 1
        (row,) = _rows(store)
        assert row.emailed_at is not None and row.email_error == ""
        assert send_attestation(config, store, row, later) == (False, "")  # already sent: not again
        assert len(smtp_sink.received()) == 1


def test_the_month_attested_is_the_last_one_over_in_the_daemons_time_zone(tmp_path: Path, clock: Clock) -> None:
    """Tokyo, 1 November 06:00 (31 October 21:00 UTC): October is over there, not yet in UTC; it is attested by
    the next morning's run, never as September and never before its last UTC second. New York's 1 November 06:00
    is after midnight UTC: October at once."""
    config = write_config(tmp_path / "conf", f"sqlite:///{tmp_path / 'preuve.db'}")
    _record(config, clock)
    tokyo, new_york = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    with _store(config) as store:
        first = monthly_run(config, store, datetime(2026, 11, 1, 6, 0, tzinfo=tokyo), tokyo)
        assert first.month == "2026-10" and first.waiting and first.issued == [] and first.failed == {}
        assert _rows(store) == []
        later = monthly_run(config, store, datetime(2026, 11, 2, 6, 0, tzinfo=tokyo), tokyo)
        assert later.month == "2026-10" and not later.waiting and later.issued == ["acme v1", "beta v1"]
        statement = json.loads(
            base64.b64decode(json.loads(Path(_rows(store)[0].statement_path).read_text())["payload"])
        )
        assert statement["predicate"]["period"]["end"] == "2026-11-01T00:00:00Z"
        assert statement["predicate"]["partial"] is False

    config = write_config(tmp_path / "ny", f"sqlite:///{tmp_path / 'ny.db'}")
    with _store(config) as store:
        report = monthly_run(config, store, datetime(2026, 11, 1, 6, 0, tzinfo=new_york), new_york)
        assert report.month == "2026-10" and report.issued == ["acme v1", "beta v1"]
        assert monthly_run(config, store, datetime(2026, 10, 31, 6, 0, tzinfo=new_york), new_york).month == "2026-09"
