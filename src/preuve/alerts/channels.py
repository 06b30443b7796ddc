"""The ways an alert leaves Preuve: e-mail through SMTP, a webhook's JSON POST, and the dead man's switch.

Each send either returns or raises :class:`ChannelError` with a sentence that says what went wrong, secrets
masked; the SMTP password is read from its file for each connection (registered for masking) and never logged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import preuve
from preuve import redact
from preuve.alerts.flips import EMAIL, WEBHOOK, webhook_display
from preuve.alerts.messages import Message, trial_message
from preuve.alerts.secrets import register_secrets, smtp_password
from preuve.config.loader import Config
from preuve.config.units import parse_duration
from preuve.errors import PreuveError

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10.0
DEAD_MAN_TIMEOUT_S = 10.0
_POLICY = email_policy.default.clone(max_line_length=998)
_BODY_SNIPPET = 200  # characters of an HTTP error body kept in last_error


class ChannelError(Exception):
    """A message could not be handed over; the text is safe to store and show."""

    def __init__(self, message: str) -> None:
        super().__init__(redact.mask(message))


def smtp_timeout(config: Config) -> float:
    return parse_duration(config.settings.smtp.timeout).total_seconds()


def tls_context() -> ssl.SSLContext:
    """Certificates checked against the system's authorities (or SSL_CERT_FILE's, when set)."""
    return ssl.create_default_context()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_password(config: Config) -> str | None:
    try:
        return smtp_password(config)
    except PreuveError as exc:
        raise ChannelError(exc.message) from None


def email_message(config: Config, message: Message, recipients: list[str]) -> EmailMessage:
    smtp = config.settings.smtp
    domain = parseaddr(smtp.sender)[1].rpartition("@")[2] or "localhost"
    # Long subjects stay on one line (RFC 5322 allows 998 characters): the standard 78 makes Python fold them
    # right after "Subject:", which some clients show with a leading blank.
    email = EmailMessage(policy=_POLICY)
    email["Subject"] = message.subject
    email["From"] = smtp.sender
    email["To"] = ", ".join(recipients)
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = make_msgid("preuve", domain=domain)
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    email["X-Preuve-Event"] = str(message.payload.get("event", ""))
    if message.payload.get("flip_id") is not None:
        email["X-Preuve-Alert"] = str(message.payload["flip_id"])  # one flip, one message: receivers can dedupe
    email.set_content(message.body, cte="quoted-printable")  # 7-bit safe for any relay, readable as source
    return email


def send_email(config: Config, message: Message, recipients: list[str] | None = None) -> str:
    """Send ``message`` to ``recipients`` (default: alerts.email); returns a note on recipients refused, or ""."""
    to = list(recipients if recipients is not None else config.settings.alerts.email)
    if not to:
        raise ChannelError("no e-mail recipient: alerts.email in preuve.toml is empty")
    return smtp_send(config, email_message(config, message, to), to)


def smtp_send(config: Config, email: EmailMessage, to: list[str]) -> str:
    """Hand a composed message to the configured SMTP server (alerts and attestations share this path); returns a
    note on recipients refused, or "". Raises :class:`ChannelError` with a sentence for every failure."""
    smtp = config.settings.smtp
    password = _smtp_password(config)
    if smtp.username and password is None:
        raise ChannelError("smtp.username is set but smtp.password_file is not: Preuve cannot log in")
    encrypted = smtp.ssl or smtp.starttls
    if smtp.username and not encrypted and not _loopback(smtp.host):
        raise ChannelError(
            f"Preuve refuses to send the SMTP password to {smtp.host} unencrypted: set smtp.starttls = true "
            "(port 587) or smtp.ssl = true (port 465)"
        )
    timeout = smtp_timeout(config)
    server = f"{smtp.host}:{smtp.port}"
    try:
        client: smtplib.SMTP
        if smtp.ssl:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=tls_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            client.ehlo()
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=tls_context())
                client.ehlo()
            if smtp.username and password is not None:
                client.login(smtp.username, password)
            refused = client.send_message(email, to_addrs=to)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ChannelError(f"the SMTP server {server} refused every recipient: {_refused(exc.recipients)}") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError(
            f"the SMTP server {server} refused the login as {smtp.username!r} ({_reply(exc)}): check "
            "smtp.username and the password in smtp.password_file"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ChannelError(f"the SMTP server {server} does not support what Preuve asked ({exc})") from None
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"the SMTP server {server} answered {_reply(exc)}") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise ChannelError(f"the SMTP server {server} closed the connection ({exc or 'no reason given'})") from None
    except smtplib.SMTPException as exc:
        raise ChannelError(f"sending through the SMTP server {server} failed: {exc}") from None
    except ssl.SSLError as exc:
        raise ChannelError(f"TLS with the SMTP server {server} failed: {exc.reason or exc}") from None
    except TimeoutError:
        raise ChannelError(f"the SMTP server {server} did not answer within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ChannelError(
            f"cannot connect to the SMTP server {server}: connection refused (is it running? check smtp.host "
            "and smtp.port in preuve.toml)"
        ) from None
    except OSError as exc:
        raise ChannelError(f"cannot reach the SMTP server {server}: {exc.strerror or exc}") from None
    if refused:
        return f"refused by the SMTP server: {_refused(refused)}"
    return ""


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {text}".strip()


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} ({code} {reply.decode('utf-8', 'replace')})" for address, (code, reply) in recipients.items()
    )


def post_webhook(url: str, payload: dict[str, Any], timeout: float = WEBHOOK_TIMEOUT_S) -> None:
    """POST ``payload`` as JSON; any answer other than 2xx is a :class:`ChannelError`."""
    shown = webhook_display(url)
    data = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked when the settings are loaded
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": f"preuve/{preuve.__version__}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - as above
            response.read(4096)
    except urllib.error.HTTPError as exc:
        body = _snippet(exc)
        raise ChannelError(
            f"the webhook {shown} answered HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
        ) from None
    except urllib.error.URLError as exc:
        raise ChannelError(f"cannot reach the webhook {shown}: {_reason(exc.reason)}") from None
    except TimeoutError:
        raise ChannelError(f"the webhook {shown} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ChannelError(f"cannot reach the webhook {shown}: {_reason(exc)}") from None


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read(_BODY_SNIPPET * 4)
    except OSError:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    text = " ".join(text.split())
    return text[:_BODY_SNIPPET] + ("..." if len(text) > _BODY_SNIPPET else "")


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def ping_dead_man(config: Config) -> bool:
    """GET ``alerts.dead_man_url`` (after a successful scheduler cycle). True when it answered 2xx; False when it
    is not configured or the ping failed (logged as a warning, never raised: Preuve goes on working)."""
    url = config.settings.alerts.dead_man_url
    if not url:
        return False
    shown = webhook_display(url)
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked when the settings are loaded
        url, method="GET", headers={"User-Agent": f"preuve/{preuve.__version__}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=DEAD_MAN_TIMEOUT_S) as response:  # noqa: S310 - as above
            response.read(1024)
        return True
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = _reason(exc.reason)
    except Exception as exc:  # never let the switch take the scheduler down
        reason = _reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
    log.warning(
        redact.mask(f"dead man's switch {shown} not pinged: {reason}"),
        extra={"event": "alert.dead_man_failed", "url": shown},
    )
    return False


@dataclass(frozen=True)
class ChannelOutcome:
    channel: str  # email | webhook
    destination: str
    ok: bool
    error: str = ""  # why it failed, or a note (recipients refused) when it went out


def send_message(config: Config, channel: str, message: Message) -> str:
    """Send through one configured channel; a note ("" usually) or :class:`ChannelError`."""
    alerts = config.settings.alerts
    if channel == EMAIL:
        if not alerts.email:
            raise ChannelError("the email channel is no longer configured (alerts.email is empty)")
        return send_email(config, message)
    if channel == WEBHOOK:
        if not alerts.webhook:
            raise ChannelError("the webhook channel is no longer configured (alerts.webhook is not set)")
        post_webhook(alerts.webhook, message.payload)
        return ""
    raise ChannelError(f"unknown alert channel {channel!r}")


def send_test(config: Config) -> list[ChannelOutcome]:
    """Send a test message through every configured channel; one outcome per channel (none configured: [])."""
    alerts = config.settings.alerts
    register_secrets(config)
    message = trial_message()
    outcomes: list[ChannelOutcome] = []
    targets = [(EMAIL, ", ".join(alerts.email))] if alerts.email else []
    if alerts.webhook:
        targets.append((WEBHOOK, webhook_display(alerts.webhook)))
    for channel, destination in targets:
        try:
            note = send_message(config, channel, message)
        except ChannelError as exc:
            outcomes.append(ChannelOutcome(channel, destination, ok=False, error=str(exc)))
        else:
            outcomes.append(ChannelOutcome(channel, destination, ok=True, error=note))
    return outcomes
