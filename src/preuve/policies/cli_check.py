"""`preuve policy check [CLIENT] [--at TIME] [--from DATE --to DATE] [--json]`: every rule of each client's policy.

Exit codes: 0 every rule met, 1 a rule violated, 3 a fact could not be measured (unknown, none violated),
2 bad usage; without CLIENT, the worst over every client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from preuve import redact
from preuve.config.loader import Config
from preuve.errors import ConfigurationError
from preuve.policies.evaluate import PolicyReport, evaluate, report_json
from preuve.policies.facts import RuleResult, Verdict
from preuve.policies.gather import gather
from preuve.policies.period import DEFAULT_SPAN, Period
from preuve.policies.rules._common import span, worst
from preuve.store.db import Store

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_CODES = {Verdict.MET: EXIT_OK, Verdict.VIOLATED: EXIT_VIOLATED, Verdict.UNKNOWN: EXIT_UNKNOWN}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SHARES = ("share", "size_drop", "files_drop", "changed", "max_size_drop", "max_files_drop", "max_changed")
_WIDTH = 44  # value and threshold columns: the reason line below carries the full sentence

Echo = Callable[[str], None]


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; without an offset it is UTC. A bare date is that day's midnight, or with
    ``end_of_day`` the midnight that ends it, so that ``--to 2024-05-31`` includes the 31st."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time; write it like 2024-05-31 or 2024-05-31T18:00+02:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end_of_day and _DATE.match(text):
        moment += timedelta(days=1)
    return moment


def check_period(at: str | None, date_from: str | None, date_to: str | None, now: datetime | None = None) -> Period:
    """The period checked: --from/--to when given, else the 30 days up to --at (default now)."""
    when = parse_moment(at, end_of_day=True) if at else None
    end = parse_moment(date_to, end_of_day=True) if date_to else None
    if when is not None and end is not None and when != end:
        raise ValueError("--at and --to both set the end of the period: give only one")
    end = end or when or now or datetime.now(UTC)
    start = parse_moment(date_from) if date_from else end - DEFAULT_SPAN
    return Period(start, end)


def exit_code(verdicts: list[Verdict]) -> int:
    return EXIT_CODES[worst(verdicts)]


def check_command(
    config: Config,
    store: Store,
    client: str | None,
    *,
    at: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    as_json: bool = False,
    echo: Echo | None = None,
    echo_err: Echo | None = None,
) -> int:
    """Evaluate, print, and return the exit code."""
    out: Echo = echo or _print
    err: Echo = echo_err or _print_err
    try:
        period = check_period(at, date_from, date_to)
    except ValueError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    clients = [client] if client is not None else sorted(config.clients)
    reports: list[PolicyReport] = []
    for client_id in clients:
        try:
            config.client(client_id)
            policy = config.client_policy(client_id)
        except ConfigurationError as exc:
            err("error: " + "\n".join(exc.problems))
            return EXIT_USAGE
        facts = gather(config, store, client_id, until=period.end)
        reports.append(evaluate(policy, facts, period))
    if as_json:
        doc = report_json(reports[0]) if client is not None else {"clients": [report_json(r) for r in reports]}
        out(redact.mask(json.dumps(doc, ensure_ascii=False)))
    elif not reports:
        out(f"No clients configured in {config.directory}: add a job file under jobs/.")
    else:
        out("\n\n".join(render(r) for r in reports))
    return exit_code([r.verdict for r in reports])


def _print(text: str) -> None:
    import typer

    typer.echo(text)


def _print_err(text: str) -> None:
    import typer

    typer.echo(redact.mask(text), err=True)


# --- text ---------------------------------------------------------------------------------------------------------


def render(report: PolicyReport) -> str:
    """The rules by target (client-wide ones first): verdict, value, threshold, then why and on what evidence."""
    period = f"{report.period.start:%Y-%m-%d %H:%M} to {report.period.end:%Y-%m-%d %H:%M %Z}"
    lines = [f"{report.client} ({report.name}), policy {report.policy}, {period}: {report.verdict.value.upper()}"]
    lines.append(f"  {'TARGET':<24} {'RULE':<19} {'VERDICT':<9} {'VALUE':<{_WIDTH}} THRESHOLD")
    shown_target: str | None = None
    for r in sorted(report.rules, key=lambda r: (r.target or "", r.rule)):
        target = r.target or "(client)"
        target, shown_target = ("" if target == shown_target else target), target  # each target named once
        lines.append(
            f"  {target:<24} {r.rule:<19} {r.verdict.value:<9} {show(r.value):<{_WIDTH}} {show(r.threshold)}".rstrip()
        )
        lines.append(f"  {'':<24} {r.reason}")
        evidence = show_evidence(r)
        if evidence:
            lines.append(f"  {'':<24} evidence: {evidence}")
    return "\n".join(redact.mask(line) for line in lines)


def show(value: Any, key: str = "") -> str:
    """A compact rendering of a rule's value or threshold: durations and shares in human units, cut to fit."""
    text = _show(value, key)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _show(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and key.endswith("_s"):
        return span(float(value))
    if isinstance(value, int | float) and key in _SHARES:
        return f"{value * 100:.1f} %"
    if isinstance(value, dict):
        shown = [f"{k.removesuffix('_s')} {_show(v, k)}" for k, v in value.items() if v not in (None, [], {})]
        return ", ".join(shown) or "-"
    if isinstance(value, list | tuple):
        return "/".join(_show(v, key) for v in value) if len(value) <= 3 else f"{len(value)} items"
    return str(value)


def show_evidence(result: RuleResult) -> str:
    parts = []
    for kind, ids in result.evidence.items():
        shown = [str(i)[:8] if kind == "snapshots" else str(i) for i in ids[:6]]
        more = f" (+{len(ids) - 6})" if len(ids) > 6 else ""
        parts.append(f"{kind} {', '.join(shown)}{more}")
    return "; ".join(parts)
