"""Fixed attestation predicates for rendering tests, built from tests/data/predicate-example.json (the layout).

Only for tests about how the page renders variations the real builder would need a contrived store to produce (a
recommendation code no catalogue knows, words this version does not know, every rule met): a month with passes,
failures, incidents with notes and a target without data; a month without any drill; a month where everything
is met. Issuing, the CLI, the monthly run and the demo are tested with the real builder over recorded results
(tests/integration/month_records.py).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EXAMPLE_FILE = Path(__file__).resolve().parent.parent / "data" / "predicate-example.json"


def example() -> dict[str, Any]:
    predicate: dict[str, Any] = json.loads(EXAMPLE_FILE.read_text(encoding="utf-8"))
    predicate.pop("signing")  # the issuer fills it in
    return predicate


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, number = (int(x) for x in month.split("-"))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _retarget(predicate: dict[str, Any], client_id: str, month: str, language: str | None) -> dict[str, Any]:
    """The example moved to another client and month (references to targets follow)."""
    old = predicate["client"]["id"]
    text = json.dumps(predicate).replace(f'"{old}/', f'"{client_id}/')
    moved: dict[str, Any] = json.loads(text)
    moved["client"]["id"] = client_id
    if language is not None:
        moved["client"]["language"] = language
    start, end = month_bounds(month)
    moved["period"] = {"month": month, "start": _iso(start), "end": _iso(end)}
    moved["generated_at"] = _iso(end + timedelta(hours=2))
    return moved


def hourly_ages(month: str, backup_every_h: int = 20, outage: tuple[int, int] | None = (330, 360)) -> list[list[Any]]:
    """Newest-snapshot age every hour: a backup every ``backup_every_h`` hours, none during ``outage`` (hours)."""
    start, end = month_bounds(month)
    points: list[list[Any]] = []
    age = 2 * 3600
    hour = 0
    while start + timedelta(hours=hour) < end:
        in_outage = outage is not None and outage[0] <= hour < outage[1]
        age = 1800 if hour % backup_every_h == 0 and not in_outage else age + 3600
        points.append([_iso(start + timedelta(hours=hour)), age])
        hour += 1
    return points


def full_month(client_id: str = "acme", month: str = "2026-10", language: str | None = None) -> dict[str, Any]:
    """Passes and failures, a target without any data, incidents (one resolved with a note, one still open),
    a recommendation code no catalogue knows."""
    predicate = _retarget(example(), client_id, month, language)
    nas, offsite = predicate["targets"]
    nas["snapshot_age"]["points"] = hourly_ages(month)
    predicate["incidents"].append(
        {
            "target": f"{client_id}/nas",
            "class": "content-mismatch",
            "drill": 801,
            "detected_at": _iso(month_bounds(month)[1] - timedelta(hours=20)),
            "resolved_at": None,
            "resolved_by_drill": None,
            "message": "3 restored files differ from the source",
            "notes": [],
        }
    )
    predicate["rules"].append(
        {
            "rule": "integrity-coverage",
            "target": f"{client_id}/offsite",
            "verdict": "unknown",
            "value": None,
            "threshold": 1.0,
            "reason": "No integrity check of this target was recorded in the period.",
            "references": ["ISO/IEC 27001:2022 A.8.13"],
        }
    )
    predicate["recommendations"].append({"code": "rotate-usb-disk-weekly", "target": None, "rule": None})
    assert offsite["tested"] is False
    return predicate


def month_without_drills(
    client_id: str = "acme", month: str = "2026-10", language: str | None = None
) -> dict[str, Any]:
    predicate = _retarget(example(), client_id, month, language)
    predicate["headline"] = {"restorable": "no", "plan": "not-met"}
    for target in predicate["targets"]:
        target.update(
            tested=False,
            drills={"passed": 0, "failed": 0, "errors": 0, "by_kind": {}},
            files_verified=0,
            bytes_verified=0,
            last_passed_drill=None,
        )
        target["rto"]["last_full_restore"] = None
        target["rto"]["estimated_full_restore_s"] = None
        target["rto"]["status"] = "unknown"
    predicate["incidents"] = []
    predicate["rules"] = [
        {
            "rule": "drill-frequency",
            "target": f"{client_id}/nas",
            "verdict": "violated",
            "value": "none",
            "threshold": "7d",
            "reason": "No drill ran in the period.",
            "references": ["ANSSI 37"],
        }
    ]
    predicate["recommendations"] = [
        {"code": "never-tested", "target": f"{client_id}/nas", "rule": "drill-frequency"},
        {"code": "never-tested", "target": f"{client_id}/offsite", "rule": "drill-frequency"},
    ]
    predicate["ledger"]["entries_in_month"] = 0
    return predicate


def all_met(client_id: str = "acme", month: str = "2026-10", language: str | None = None) -> dict[str, Any]:
    predicate = _retarget(example(), client_id, month, language)
    predicate["headline"] = {"restorable": "yes", "plan": "met"}
    nas, offsite = predicate["targets"]
    nas["rpo"]["status"] = "met"
    offsite.update(copy.deepcopy({k: nas[k] for k in ("drills", "files_verified", "bytes_verified", "rpo", "rto")}))
    offsite["tested"] = True
    offsite["last_passed_drill"] = {"drill": 815, "at": _iso(month_bounds(month)[1] - timedelta(hours=5)),
                                    "kind": "sample", "snapshot_id": "77aa0c1d"}  # fmt: skip
    offsite["integrity"] = {"coverage_pct": 100.0, "threshold_pct": 100.0, "status": "met"}
    predicate["incidents"] = []
    for rule in predicate["rules"]:
        rule["verdict"] = "met"
    predicate["recommendations"] = []
    return predicate
