"""What an alert says: an e-mail (subject and plain-text body) and a webhook's JSON, from one flip.

Rendered when sent, from what the flip recorded; every string is masked once more on the way out, so a secret
registered after the flip was recorded does not leak either.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import preuve
from preuve import redact
from preuve.alerts.flips import DAEMON_WIDE, FlipRecord, is_bad, when

PREFIX = "[Preuve]"


@dataclass(frozen=True)
class Message:
    subject: str  # the e-mail's subject
    body: str  # the e-mail's plain text
    payload: dict[str, Any]  # the webhook's JSON, its "text" one line for Slack and Teams


def _mask_all(value: Any) -> Any:
    if isinstance(value, str):
        return redact.mask(value)
    if isinstance(value, dict):
        return {str(k): _mask_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_all(v) for v in value]
    return value


def _headline(flip: FlipRecord) -> str:
    return f"{PREFIX} Reminder: {flip.summary}" if flip.reminder else f"{PREFIX} {flip.summary}"


def _command(flip: FlipRecord) -> str | None:
    """The command that shows more, for the one-line text and the body."""
    drill_id = flip.details.get("drill_id")
    if drill_id is not None:
        return f"preuve drill show {drill_id} --log"
    if flip.kind == "rule" and flip.client != DAEMON_WIDE:
        return f"preuve policy check {flip.client}"
    return None


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in str(text).strip().splitlines()) or prefix.rstrip()


def _moment(value: object) -> str:
    """An ISO instant from a flip's details, as the messages show times."""
    try:
        return when(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


def _previous(flip: FlipRecord, first: str) -> list[str]:
    if flip.reminder:
        return []  # a reminder's previous state is its own: nothing to say
    return [f"Previous:  {flip.previous or first}"]


def _drill_body(flip: FlipRecord) -> list[str]:
    d = flip.details
    client = f"{d['client_name']} ({flip.client})" if d.get("client_name") else flip.client
    lines = [
        f"Target:    {flip.target}",
        f"Client:    {client}",
        f"Result:    {str(d.get('status', flip.state)).upper()}"
        + (f" ({d['failure_class']})" if d.get("failure_class") else ""),
        f"When:      {when(flip.at)}",
        *_previous(flip, "none (first result)"),
        f"Drill:     {d.get('drill_id')} ({d.get('drill_kind')}, requested by {d.get('requested_by')})",
    ]
    if d.get("snapshot_id"):
        taken = f" of {_moment(d['snapshot_time'])}" if d.get("snapshot_time") else ""
        lines.append(f"Snapshot:  {str(d['snapshot_id'])[:8]}{taken}")
    if d.get("subset"):
        lines.append(f"Part read: {d['subset']}")
    if d.get("message"):
        lines += ["", "What happened:", _indent(str(d["message"]))]
    if d.get("advice"):
        lines += ["", "What to do:", _indent(str(d["advice"]))]
    findings = d.get("findings") or []
    if findings:
        count = int(d.get("findings_count") or len(findings))
        shown = f", the first {len(findings)} shown" if count > len(findings) else ""
        lines += ["", f"Findings ({count}{shown}):"]
        lines += [f"  {f.get('failure_class', '')}  {f.get('path', '')}: {f.get('detail', '')}" for f in findings]
    lines += ["", f"Restore log: {_command(flip)}"]
    return lines


def _rule_body(flip: FlipRecord) -> list[str]:
    d = flip.details
    lines = [
        f"Client:    {d.get('client_name') or flip.client} ({flip.client}), policy {d.get('policy')}",
        f"Rule:      {d.get('rule')}" + (f" on {flip.target}" if flip.target else " (client-wide)"),
        f"Verdict:   {flip.state}",
        f"When:      {when(flip.at)}",
        *_previous(flip, "none (first check)"),
        f"Measured:  {d.get('value')}",
        f"Threshold: {d.get('threshold')}",
    ]
    if d.get("reason"):
        lines += ["", "Why:", _indent(str(d["reason"]))]
    evidence = d.get("evidence") or {}
    if evidence:
        lines += ["", "Evidence:"] + [f"  {key}: {', '.join(map(str, value))}" for key, value in evidence.items()]
    lines += ["", f"Details: {_command(flip)}"]
    return lines


def _config_body(flip: FlipRecord) -> list[str]:
    problems = flip.details.get("problems") or []
    where = flip.details.get("directory")
    lines = [f"When:      {when(flip.at)}"] + ([f"Folder:    {where}"] if where else [])
    if problems:
        lines += ["", "Problems:"] + [f"  {p}" for p in problems]
        lines += [
            "",
            "Preuve keeps running with the last configuration that loaded. Fix the files above, then reload "
            "(systemctl reload preuve, or `preuve --config FOLDER targets list` to check them first).",
        ]
    else:
        lines += ["", "The configuration loads again; the daemon runs with it."]
    return lines


def _generic_body(flip: FlipRecord) -> list[str]:
    lines = [f"Subject:   {flip.subject}", f"State:     {flip.state}", f"When:      {when(flip.at)}"]
    lines += _previous(flip, "none")
    message = flip.details.get("message")
    if message:
        lines += ["", _indent(str(message))]
    return lines


def body_lines(flip: FlipRecord) -> list[str]:
    if flip.subject.startswith(("drill:", "integrity:")):
        return _drill_body(flip)
    if flip.kind == "rule":
        return _rule_body(flip)
    if flip.kind == "config":
        return _config_body(flip)
    return _generic_body(flip)


def render(flip: FlipRecord, *, host: str | None = None) -> Message:
    """The e-mail and the webhook payload for one flip (or reminder)."""
    host = host or socket.gethostname()
    headline = _headline(flip)
    lines = [flip.summary, ""]
    if flip.reminder:
        first = flip.details.get("reminder_of")
        lines = [
            f"Reminder: {flip.summary}.",
            f"It was first reported in alert {first}; Preuve reminds you while it lasts."
            if first
            else "Preuve reminds you while it lasts.",
            "",
        ]
    lines += body_lines(flip)
    lines += [
        "",
        "All alerts: preuve alerts list",
        "",
        "-- ",
        f"Preuve {preuve.__version__} on {host}, alert {flip.id}.",
    ]
    command = _command(flip)
    text = headline + (f" · {command}" if command and is_bad(flip.kind, flip.state) else "")
    payload: dict[str, Any] = {
        "text": text,
        "event": f"{flip.family}.{flip.state}",
        "reminder": flip.reminder,
        "flip_id": flip.id,
        "kind": flip.kind,
        "subject": flip.subject,
        "client": None if flip.client == DAEMON_WIDE else flip.client,
        "target": flip.target,
        "state": flip.state,
        "previous": flip.previous,
        "at": flip.at.astimezone(UTC).isoformat(),
        "summary": flip.summary,
        "drill_id": flip.details.get("drill_id"),
        "failure_class": flip.details.get("failure_class"),
        "rule": flip.details.get("rule"),
        "details": flip.details,
        "host": host,
    }
    return Message(subject=redact.mask(headline), body=redact.mask("\n".join(lines) + "\n"), payload=_mask_all(payload))


def trial_message(*, host: str | None = None, now: datetime | None = None) -> Message:
    """What `preuve alerts test` sends through every channel."""
    host = host or socket.gethostname()
    moment = now or datetime.now(UTC)
    subject = f"{PREFIX} Test alert from Preuve on {host}"
    body = (
        f"This is a test alert sent by `preuve alerts test` on {host} at {when(moment)}.\n"
        "If you read it, Preuve's alerts reach you on this channel.\n\n"
        f"-- \nPreuve {preuve.__version__} on {host}.\n"
    )
    payload = {
        "text": subject,
        "event": "test",
        "reminder": False,
        "flip_id": None,
        "kind": "test",
        "subject": "test",
        "client": None,
        "target": None,
        "state": "test",
        "previous": None,
        "at": moment.astimezone(UTC).isoformat(),
        "summary": "test alert",
        "drill_id": None,
        "host": host,
    }
    return Message(subject=redact.mask(subject), body=redact.mask(body), payload=_mask_all(payload))
