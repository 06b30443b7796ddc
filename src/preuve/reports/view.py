"""From the predicate to what the page says: every value formatted, every word translated, nothing decided here.

The predicate (layout: tests/data/predicate-example.json) is the single source of the page; this module only turns
its values into text for one language. Honesty rules live here because this is where a value becomes a word:
a target is "tested" only when the predicate says so *and* names a passing drill; ``None`` reads "unknown", never
zero or "met"; an unknown vocabulary word is shown as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from preuve.reports import catalogue as cat
from preuve.reports.catalogue import text, word
from preuve.reports.chart import freshness_svg
from preuve.reports.formats import (
    Lang,
    format_bytes,
    format_date,
    format_datetime,
    format_decimal,
    format_duration,
    format_month,
    format_number,
    format_percent,
    parse_instant,
)

_RESTORABLE = {"yes", "partly", "no", "unknown"}
_HEX_ID = re.compile(r"[0-9a-f]{16,}…?")  # with the engine's own "…" when it already cut one
# The plan's verdict, in the attestation table's vocabulary; the builder may answer yes/no like the headline.
_PLAN = {"met": "met", "yes": "met", "partly": "partly", "not-met": "not-met", "no": "not-met", "unknown": "unknown"}


def restorable_answer(headline: dict[str, Any]) -> str:
    value = headline.get("restorable")
    return value if isinstance(value, str) and value in _RESTORABLE else "unknown"


def plan_verdict(headline: dict[str, Any]) -> str:
    """``met | partly | not-met | unknown`` (anything else the builder wrote is not trusted to mean "met")."""
    value = headline.get("plan")
    return _PLAN.get(value, "unknown") if isinstance(value, str) else "unknown"


@dataclass(frozen=True)
class Files:
    """Names printed on the page (never paths: the page travels)."""

    pdf: str
    statement: str
    public_key: str


@dataclass(frozen=True)
class Detail:
    label: str
    value: str
    status: str | None = None  # met | violated | unknown | not-applicable, shown as a tag
    status_text: str = ""
    mono: bool = False  # an identifier, in a fixed-width font


@dataclass
class TargetView:
    name: str
    ref: str
    kind: str
    where: str
    enabled: bool
    tested: bool
    tested_text: str
    drills_short: str
    rpo_short: str
    rpo_status: str
    rto_short: str
    rto_status: str
    details: list[Detail] = field(default_factory=list)
    chart: str | None = None
    chart_caption: str = ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _Fmt:
    """Formatters bound to one language, each turning ``None`` into "unknown"."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self.unknown = text(lang, "unknown")

    def duration(self, value: Any) -> str:
        number = _number(value)
        return self.unknown if number is None else format_duration(number, self.lang)

    def percent(self, value: Any) -> str:
        number = _number(value)
        return self.unknown if number is None else format_percent(number, self.lang)

    def count(self, value: Any) -> str:
        number = _number(value)
        return self.unknown if number is None else format_number(number, self.lang)

    def size(self, value: Any) -> str:
        number = _number(value)
        return self.unknown if number is None or number < 0 else format_bytes(number, self.lang)

    def when(self, value: Any) -> str:
        if not isinstance(value, str):
            return self.unknown
        try:
            return format_datetime(value, self.lang)
        except ValueError:
            return value

    def day(self, value: Any) -> str:
        if not isinstance(value, str):
            return self.unknown
        try:
            return format_date(value, self.lang)
        except ValueError:
            return value

    def status(self, value: Any) -> str:
        return word(cat.STATUSES, value if isinstance(value, str) else None, self.lang)

    def detail(self, label: str, value: str, status: Any) -> Detail:
        return Detail(label, value, _status_class(status), self.status(status))

    def value(self, value: Any) -> str:
        """A rule's measured value or threshold: any JSON value, numbers in the locale's style."""
        if value is None or value == "-":  # the engine's display writes "-" for a value it does not have
            return self.unknown
        if isinstance(value, bool):
            return word(cat.ANSWERS, "yes" if value else "no", self.lang)
        if isinstance(value, int | float):
            return format_decimal(value, self.lang, 2)
        if isinstance(value, list):
            return ", ".join(self.value(v) for v in value) if value else "[]"
        if isinstance(value, dict):
            return ", ".join(f"{k}: {self.value(v)}" for k, v in value.items()) if value else "{}"
        shown = word(cat.VALUE_WORDS, value, self.lang)
        # Snapshot and pack ids: 12 digits identify them, 64 only fill the page.
        return _HEX_ID.sub(lambda m: m.group(0)[:12] + "…", shown)

    def ids(self, value: Any) -> str:
        """A list of drill ids: "8, 9"."""
        items = value if isinstance(value, list) else []
        return ", ".join(str(i) for i in items) if items else text(self.lang, "none")


def _status_class(status: Any) -> str:
    return status if status in ("met", "violated", "not-applicable") else "unknown"


def _target_label(ref: Any, names: dict[str, str], lang: Lang) -> str:
    if not isinstance(ref, str) or not ref:
        return text(lang, "all_targets")
    return names.get(ref, ref)


def _target_view(raw: dict[str, Any], lang: Lang, f: _Fmt, start: datetime, end: datetime) -> TargetView:
    drills = _dict(raw.get("drills"))
    last = _dict(raw.get("last_passed_drill"))
    # "tested" needs both the builder's flag and a passing drill it can name: a flag alone proves nothing.
    tested = raw.get("tested") is True and bool(last) and (_number(drills.get("passed")) or 0) > 0
    rpo, rto = _dict(raw.get("rpo")), _dict(raw.get("rto"))
    integrity, immutability = _dict(raw.get("integrity")), _dict(raw.get("immutability"))
    location = word(cat.LOCATIONS, raw.get("location"), lang)
    media = word(cat.MEDIA, raw.get("media"), lang)

    details: list[Detail] = [
        Detail(
            text(lang, "d.drills"),
            text(
                lang,
                "d.drills_value",
                passed=f.count(drills.get("passed")),
                failed=f.count(drills.get("failed")),
                errors=f.count(drills.get("errors")),
                interrupted=f.count(drills.get("interrupted", 0)),
            ),
        )
    ]
    if raw.get("enabled") is False:
        details.insert(0, Detail(text(lang, "d.disabled"), text(lang, "d.disabled_value")))
    by_kind = _dict(drills.get("by_kind"))
    if by_kind:
        details.append(
            Detail(
                text(lang, "d.by_kind"),
                " · ".join(f"{word(cat.DRILL_KINDS, k, lang)} : {f.count(v)}" if lang == "fr"
                           else f"{word(cat.DRILL_KINDS, k, lang)}: {f.count(v)}"
                           for k, v in sorted(by_kind.items())),
            )
        )  # fmt: skip
    details.append(
        Detail(
            text(lang, "d.verified"),
            text(
                lang,
                "d.verified_value",
                files=f.count(raw.get("files_verified")),
                bytes=f.size(raw.get("bytes_verified")),
            ),
        )
    )
    if tested:
        last_text = text(
            lang,
            "d.last_passed_value",
            when=f.when(last.get("at")),
            drill=last.get("drill", f.unknown),
            kind=word(cat.DRILL_KINDS, last.get("kind"), lang),
            snapshot=last.get("snapshot_id") or f.unknown,
        )
    elif last.get("at"):  # passed before the period: said, but never as "tested"
        last_text = text(lang, "d.last_passed_before", when=f.day(last.get("at")), drill=last.get("drill", f.unknown))
    else:
        last_text = text(lang, "d.last_passed_none")
    details.append(Detail(text(lang, "d.last_passed"), last_text))
    if last.get("snapshot"):
        details.append(Detail(text(lang, "d.snapshot"), str(last["snapshot"]), mono=True))
    rpo_measured = any(
        _number(rpo.get(k)) is not None for k in ("compliance_pct", "longest_gap_s", "newest_age_at_end_s")
    )
    details.append(
        f.detail(
            text(lang, "d.rpo", threshold=f.duration(rpo.get("threshold_s"))),
            text(
                lang,
                "d.rpo_value" if _number(rpo.get("compliance_pct")) is not None else "d.rpo_value_unobserved",
                compliance=f.percent(rpo.get("compliance_pct")),
                gap=f.duration(rpo.get("longest_gap_s")),
                age=f.duration(rpo.get("newest_age_at_end_s")),
                observed=f.percent(rpo.get("observed_pct")),
            )
            if rpo_measured
            else text(lang, "d.rpo_unknown"),
            rpo.get("status"),
        )
    )
    full = _dict(rto.get("last_full_restore"))
    confirmed = (
        text(
            lang,
            "d.rto_confirmed",
            when=f.day(full.get("at")),
            duration=f.duration(full.get("duration_s")),
            drill=full.get("drill", f.unknown),
        )
        if full
        else text(lang, "d.rto_unconfirmed")
    )
    estimate = f.duration(rto.get("estimated_full_restore_s"))
    by_drill = rto.get("estimated_by_drill")
    rto_text = (
        text(lang, "d.rto_by_drill", estimate=estimate, drill=by_drill)
        if isinstance(by_drill, int) and _number(rto.get("estimated_full_restore_s")) is not None
        else text(lang, "d.rto_value", estimate=estimate)
    )
    rto_text += f" · {confirmed}"
    if _number(rto.get("full_restore_every_s")) is not None:
        rto_text += " · " + text(lang, "d.rto_every", every=f.duration(rto.get("full_restore_every_s")))
    details.append(
        f.detail(text(lang, "d.rto", threshold=f.duration(rto.get("threshold_s"))), rto_text, rto.get("status"))
    )
    coverage = _number(integrity.get("coverage_pct"))
    threshold = f.percent(integrity.get("threshold_pct"))
    window = f.duration(integrity.get("window_s"))
    integrity_text = (
        text(lang, "d.integrity_value", coverage=f.percent(coverage), threshold=threshold, window=window)
        if coverage is not None
        else text(lang, "d.integrity_unknown", threshold=threshold, window=window)
    )
    if integrity.get("failed_runs"):
        integrity_text += " · " + text(lang, "d.integrity_failed", drills=f.ids(integrity.get("failed_runs")))
    details.append(f.detail(text(lang, "d.integrity"), integrity_text, integrity.get("status")))
    lock = immutability.get("object_lock")
    if lock is True:
        measured = text(
            lang,
            "immutability.on",
            mode=immutability.get("mode") or f.unknown,
            days=f.count(immutability.get("retention_days")),
        )
    elif lock is False:
        measured = text(lang, "immutability.off")
    else:
        measured = f.unknown
    required = immutability.get("required")
    need = (
        text(lang, "immutability.required")
        if required is True
        else text(lang, "immutability.optional")
        if required is False
        else f.unknown
    )
    extra = []
    if isinstance(immutability.get("versioning"), str):
        extra.append(text(lang, "immutability.versioning", state=immutability["versioning"]))
    if immutability.get("append_only_declared") is True:
        extra.append(text(lang, "immutability.append_only"))
    shown = " · ".join([measured, *extra, need])
    details.append(f.detail(text(lang, "d.immutability"), shown, immutability.get("status")))
    if isinstance(raw.get("entries_in_period"), int):
        details.append(
            Detail(text(lang, "d.entries"), text(lang, "d.entries_value", entries=f.count(raw["entries_in_period"])))
        )

    age = _dict(raw.get("snapshot_age"))
    rpo_for_chart = _number(age.get("rpo_s")) or _number(rpo.get("threshold_s"))
    raw_points = age.get("points")
    points: list[Any] = raw_points if isinstance(raw_points, list) else []
    chart = freshness_svg(points, rpo_for_chart, start, end, lang)
    passed, failed = f.count(drills.get("passed")), f.count(drills.get("failed"))
    return TargetView(
        name=str(raw.get("name") or raw.get("ref") or "?"),
        ref=str(raw.get("ref") or ""),
        kind=str(raw.get("kind") or ""),
        where=text(lang, "where", location=location, media=media),
        enabled=raw.get("enabled") is not False,
        tested=tested,
        tested_text=text(lang, "tested.yes", date=f.day(last.get("at"))) if tested else text(lang, "tested.no"),
        drills_short=f"{passed} / {failed}",
        rpo_short=f.percent(rpo.get("compliance_pct")),
        rpo_status=_status_class(rpo.get("status")),
        rto_short=f.duration(rto.get("estimated_full_restore_s")),
        rto_status=_status_class(rto.get("status")),
        details=details,
        chart=chart,
        chart_caption=text(lang, "chart.caption", rpo=f.duration(rpo_for_chart)),
    )


def page(predicate: dict[str, Any], lang: Lang, files: Files) -> dict[str, Any]:
    """Everything the template prints, as text; the template only lays it out."""
    f = _Fmt(lang)
    client = _dict(predicate.get("client"))
    period = _dict(predicate.get("period"))
    month = str(period.get("month") or "")
    start = parse_instant(str(period["start"]))
    end = parse_instant(str(period["end"]))
    headline = _dict(predicate.get("headline"))
    restorable = restorable_answer(headline)
    plan = plan_verdict(headline)
    targets_raw = [t for t in predicate.get("targets") or [] if isinstance(t, dict)]
    targets = [_target_view(t, lang, f, start, end) for t in targets_raw]
    names = {t.ref: t.name for t in targets if t.ref}
    rules_raw = [r for r in predicate.get("rules") or [] if isinstance(r, dict)]
    counts = {v: sum(1 for r in rules_raw if r.get("verdict") == v) for v in ("met", "violated")}
    rules = [
        {
            "name": word(cat.RULE_NAMES, r.get("rule"), lang),
            "target": _target_label(r.get("target"), names, lang),
            "verdict": f.status(r.get("verdict")),
            "verdict_class": _status_class(r.get("verdict")),
            "value": f.value(r.get("value")),
            "threshold": f.value(r.get("threshold")),
            "references": [word(cat.REFERENCES, x, lang) for x in r.get("references") or []],
            "reason": text(lang, "reason", reason=r["reason"]) if r.get("reason") else "",
            "data": text(
                lang,
                "rule_data",
                measured=f.value(r.get("measured")),
                required=f.value(r.get("required")),
                evidence=f.value(r.get("evidence")),
            )
            if any(k in r for k in ("measured", "required", "evidence"))
            else "",
        }
        for r in rules_raw
    ]
    incidents = []
    for raw in predicate.get("incidents") or []:
        if not isinstance(raw, dict):
            continue
        resolved = raw.get("resolved_at")
        incidents.append(
            {
                "title": text(
                    lang,
                    "incident.title",
                    what=word(cat.FAILURE_CLASSES, raw.get("class"), lang),
                    target=_target_label(raw.get("target"), names, lang),
                ),
                "detected": text(
                    lang,
                    "incident.detected",
                    when=f.when(raw.get("detected_at")),
                    drill=raw.get("drill", f.unknown),
                    kind=word(cat.DRILL_KINDS, raw.get("drill_kind"), lang),
                    status=word(cat.DRILL_STATUSES, raw.get("status"), lang),
                ),
                "failures": text(lang, "incident.failures", drills=f.ids(raw.get("failed_drills")))
                if isinstance(raw.get("failed_drills"), list) and len(raw["failed_drills"]) > 1
                else "",
                "resolved": text(
                    lang, "incident.resolved", when=f.when(resolved), drill=raw.get("resolved_by_drill") or f.unknown
                )
                if resolved
                else text(lang, "incident.open"),
                "open": not resolved,
                "message": text(lang, "incident.message", message=raw["message"]) if raw.get("message") else "",
                "notes": [
                    {
                        "head": text(lang, "incident.note", by=n.get("by") or f.unknown, when=f.when(n.get("at"))),
                        "text": str(n.get("text") or ""),
                    }
                    for n in raw.get("notes") or []
                    if isinstance(n, dict)
                ],
            }
        )
    # Notes already printed under their incident are not repeated; the others (about no drill, or a drill that
    # opened no incident) get their own list.
    in_incidents = {
        d
        for raw in predicate.get("incidents") or []
        if isinstance(raw, dict)
        for d in (raw.get("failed_drills") or [raw.get("drill")])
    }
    notes = [
        {
            "head": text(lang, "incident.note", by=n.get("by") or f.unknown, when=f.when(n.get("at"))),
            "about": text(lang, "note.about_drill", drill=n["drill"]) if isinstance(n.get("drill"), int) else "",
            "text": str(n.get("text") or ""),
        }
        for n in predicate.get("notes") or []
        if isinstance(n, dict) and (n.get("drill") is None or n.get("drill") not in in_incidents)
    ]
    recommendations = [
        cat.recommendation(lang, str(r.get("code") or "?"), _target_label(r.get("target"), names, lang), r.get("rule"))
        for r in predicate.get("recommendations") or []
        if isinstance(r, dict)
    ]
    signing = _dict(predicate.get("signing"))
    ledger = _dict(predicate.get("ledger"))
    last_day = end - timedelta(seconds=1)  # the period's end is exclusive: 1 November 00:00 closes October
    partial = predicate.get("partial") is True
    generated = predicate.get("generated_at")
    version = predicate.get("version", 1)
    return {
        "lang": lang,
        "t": lambda key, **values: text(lang, key, **values),
        "client_name": str(client.get("name") or client.get("id") or ""),
        "client_id": str(client.get("id") or ""),
        "month": (format_month(month, lang) if month else f.unknown)
        + (f" ({text(lang, 'month_so_far')})" if partial else ""),
        "partial": text(lang, "partial", end=format_datetime(end, lang)) if partial else "",
        "issued": text(
            lang, "issued", date=f.day(generated), version=version, policy=client.get("policy") or f.unknown
        ),
        "period": text(lang, "period_partial", start=format_date(start, lang), end=format_datetime(end, lang))
        if partial
        else text(lang, "period", start=format_date(start, lang), end=format_date(last_day, lang)),
        "footer": text(lang, "footer", client=client.get("id") or "", month=month, version=version),
        "restorable": restorable,
        "restorable_answer": word(cat.ANSWERS, restorable, lang),
        "restorable_text": text(lang, f"restorable.{restorable}"),
        "plan": plan,
        "plan_answer": word(cat.ANSWERS, {"met": "yes", "not-met": "no"}.get(plan, plan), lang),
        "plan_text": text(lang, f"plan.{plan}"),
        "rule_counts": text(
            lang,
            "rule_counts",
            met=counts["met"],
            violated=counts["violated"],
            unknown=len(rules_raw) - counts["met"] - counts["violated"],
            total=len(rules_raw),
        ),
        "tested_counts": text(lang, "tested_counts", tested=sum(t.tested for t in targets), total=len(targets)),
        "targets": targets,
        "rules": rules,
        "incidents": incidents,
        "notes": notes,
        "recommendations": recommendations,
        "command": f"preuve verify {files.pdf} --key {files.public_key}",
        "files": files,
        "keyid": signing.get("keyid") or f.unknown,
        "certificate_sha256": signing.get("certificate_sha256") or f.unknown,
        "ledger": text(
            lang,
            "verify.ledger",
            entries=f.count(ledger.get("entries_in_month")),
            seq=ledger.get("seq", f.unknown),
            head=ledger.get("head") or f.unknown,
            seq_before=ledger.get("seq_before", f.unknown),
            head_before=ledger.get("head_before") or f.unknown,
        ),
    }
