"""E-mailing an issued attestation to its client: the signed PDF, the statement and the public key attached.

Sent through the alerts' SMTP settings (:func:`preuve.alerts.channels.smtp_send`). Each send is claimed on the
attestation's row so that two schedulers never both send it, and its outcome is recorded there:

- ``email_error == ""`` and ``emailed_at`` null: never tried;
- ``email_error`` starting with :data:`CLAIM_PREFIX`: a process is sending it (a claim older than
  :data:`CLAIM_LEASE` belongs to a process that died, and may be taken over);
- ``emailed_at`` set: sent; any other ``email_error``: the last failure, retried on the next run.

A claim is a conditional UPDATE that only the process that saw the row's current ``email_error`` can win.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from sqlalchemy import Table, update

from preuve import redact
from preuve.alerts.channels import ChannelError, smtp_send
from preuve.config.loader import Config
from preuve.reports import catalogue as cat
from preuve.reports.catalogue import text
from preuve.reports.formats import format_month, language
from preuve.reports.issue import public_key_name
from preuve.store.db import Store
from preuve.store.models import Attestation, metadata

log = logging.getLogger(__name__)

CLAIM_PREFIX = "sending since "
CLAIM_LEASE = timedelta(minutes=15)  # longer than any SMTP exchange (timeouts are seconds to a minute)
_TABLE: Table = metadata.tables["attestation"]


class MailError(Exception):
    """The attestation's message could not be put together (a file is missing); recorded like a send failure."""


def claim_token(now: datetime) -> str:
    return f"{CLAIM_PREFIX}{now.astimezone(UTC).isoformat()} by {socket.gethostname()}:{os.getpid()}"


def claim_is_stale(email_error: str, now: datetime) -> bool:
    """Whether ``email_error`` is a claim older than the lease (or one whose time cannot be read)."""
    if not email_error.startswith(CLAIM_PREFIX):
        return False
    stamp = email_error[len(CLAIM_PREFIX) :].split(" by ", 1)[0]
    try:
        claimed = datetime.fromisoformat(stamp)
    except ValueError:
        return True
    return claimed.tzinfo is None or now - claimed > CLAIM_LEASE


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MailError(f"{path}: cannot read the attestation's {what} ({exc.strerror}); issue it again") from None


def compose(config: Config, row: Attestation, recipients: list[str]) -> EmailMessage:
    """The message: a plain-text summary, the HTML page as its alternative, the PDF, statement and key attached."""
    lang = language(row.language)
    client = config.client(row.client_id)
    month = format_month(row.month, lang)
    pdf_name, statement_name = Path(row.pdf_path).name, Path(row.statement_path).name
    pdf = _read(row.pdf_path, "PDF")
    statement = _read(row.statement_path, "statement")
    html = _read(row.html_path, "HTML page").decode("utf-8")
    key_file = Path(row.pdf_path).with_name(public_key_name(row.keyid))
    plan_answer = {"met": "yes", "not-met": "no"}.get(row.verdict, row.verdict)
    body = text(
        lang,
        "mail.body",
        client=client.name,
        month=month,
        statement=statement_name,
        q_restorable=text(lang, "q_restorable"),
        restorable=f"{cat.word(cat.ANSWERS, row.restorable, lang)}. {text(lang, f'restorable.{row.restorable}')}",
        q_plan=text(lang, "q_plan"),
        plan=f"{cat.word(cat.ANSWERS, plan_answer, lang)}. {text(lang, f'plan.{row.verdict}')}",
        pdf=pdf_name,
        keyid=row.keyid,
    )
    smtp = config.settings.smtp
    domain = parseaddr(smtp.sender)[1].rpartition("@")[2] or "localhost"
    email = EmailMessage()
    email["Subject"] = text(lang, "mail.subject", month=month, client=client.name)
    email["From"] = smtp.sender
    email["To"] = ", ".join(recipients)
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = make_msgid("preuve-attestation", domain=domain)
    email["Auto-Submitted"] = "auto-generated"
    email["X-Preuve-Event"] = "attestation"
    email["X-Preuve-Attestation"] = f"{row.client_id}/{row.month}/v{row.version}"
    email.set_content(body, cte="quoted-printable")
    email.add_alternative(html, subtype="html")
    email.add_attachment(pdf, maintype="application", subtype="pdf", filename=pdf_name)
    email.add_attachment(statement, maintype="application", subtype="json", filename=statement_name)
    if key_file.is_file():
        email.add_attachment(
            key_file.read_bytes(), maintype="application", subtype="x-pem-file", filename=key_file.name
        )
    return email


def _set(store: Store, row_id: int, seen: str, **values: object) -> bool:
    statement = (
        update(_TABLE)
        .where(_TABLE.c.id == row_id, _TABLE.c.emailed_at.is_(None), _TABLE.c.email_error == seen)
        .values(**values)
    )
    with store.connection(write=True) as connection:
        return connection.execute(statement).rowcount == 1


def send_attestation(config: Config, store: Store, row: Attestation, now: datetime | None = None) -> tuple[bool, str]:
    """E-mail ``row``'s attestation to its client's contacts: ``(True, "")`` when this call sent it,
    ``(False, "")`` when another process has it, ``(False, error)`` when it failed (the error is recorded on the
    row and the next run retries). Never raises for a mail problem; database errors propagate."""
    assert row.id is not None
    moment = now or datetime.now(UTC)
    seen = row.email_error
    if seen.startswith(CLAIM_PREFIX) and not claim_is_stale(seen, moment):
        return False, ""  # another process is sending it right now
    token = claim_token(moment)
    if not _set(store, row.id, seen, email_error=token):
        return False, ""  # someone else claimed or sent it since we read the row
    error = ""
    try:
        contacts = list(config.client(row.client_id).job.contacts)
        if not contacts:
            raise MailError(
                f"{config.client(row.client_id).file}: no contacts: add `contacts: [address@example]` to send the "
                "monthly attestation"
            )
        note = smtp_send(config, compose(config, row, contacts), contacts)
        if note:  # some recipients refused, the others got it: sent, and the refusal is logged
            log.warning(
                redact.mask(f"attestation {row.client_id} {row.month} v{row.version}: {note}"),
                extra={"event": "attest.email_refused", "client": row.client_id},
            )
    except (ChannelError, MailError) as exc:
        error = str(exc)
    except Exception as exc:  # a fault in Preuve must not leave the claim in place until the lease ends
        error = f"internal error while sending: {type(exc).__name__}: {exc}"
    if error:
        error = redact.mask(error)[:2000]
        _set(store, row.id, token, email_error=error)
        return False, error
    _set(store, row.id, token, email_error="", emailed_at=datetime.now(UTC))
    return True, ""
