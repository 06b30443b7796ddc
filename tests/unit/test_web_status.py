"""The overview's traffic lights and the snapshot-age saw-tooth, from hand-built readings (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from preuve.config.loader import Config
from preuve.config.model import Settings
from preuve.metrics import LastDrill, Reading, TargetRow, Verdict
from preuve.web.chart import snapshot_age_svg
from preuve.web.data import age_series
from preuve.web.status import Light, build_overview

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)


def _reading(**values: object) -> Reading:
    reading = Reading(at=NOW, targets=[TargetRow(1, "acme/nas", "acme", "nas", "local", "onsite", "disk")])
    for key, value in values.items():
        setattr(reading, key, value)
    return reading


def _light(reading: Reading) -> Light:
    config = Config(directory=Path("/nonexistent"), settings=Settings())
    overview = build_overview(reading, config, {"acme": "ACME"})
    return overview.clients[0].targets[0].light


def test_lights() -> None:
    fresh = {1: NOW - 2 * H}
    passed = {(1, "restore"): LastDrill("passed", NOW - H)}
    assert _light(_reading(newest_snapshot=fresh, last_drill=passed)) is Light.GREEN
    assert _light(_reading(newest_snapshot=fresh)) is Light.AMBER  # never drilled
    assert _light(_reading(newest_snapshot={1: NOW - 21 * H}, last_drill=passed)) is Light.AMBER  # near the 24 h RPO
    assert _light(_reading(newest_snapshot={1: NOW - 25 * H}, last_drill=passed)) is Light.RED
    failed = {(1, "restore"): LastDrill("failed", NOW - H)}
    assert _light(_reading(newest_snapshot=fresh, last_drill=failed)) is Light.RED
    violated = [Verdict("acme", "copies", "nas", "violated")]
    assert _light(_reading(newest_snapshot=fresh, last_drill=passed, verdicts=violated)) is Light.RED
    unknown = [Verdict("acme", "rto", "nas", "unknown")]
    assert _light(_reading(newest_snapshot=fresh, last_drill=passed, verdicts=unknown)) is Light.AMBER
    integrity = {**passed, (1, "integrity"): LastDrill("passed", NOW - 40 * 24 * H)}
    assert _light(_reading(newest_snapshot=fresh, last_drill=integrity, coverage={1: 0.0})) is Light.AMBER


def test_client_wide_violation_turns_the_client_red() -> None:
    config = Config(directory=Path("/nonexistent"), settings=Settings())
    reading = _reading(
        newest_snapshot={1: NOW - H},
        last_drill={(1, "restore"): LastDrill("passed", NOW - H)},
        verdicts=[Verdict("acme", "copies", "", "violated")],
    )
    client = build_overview(reading, config, {"acme": "ACME"}).clients[0]
    assert client.targets[0].light is Light.GREEN and client.light is Light.RED
    assert any("copies" in r.plain for _name, r in client.all_reasons)


def test_age_series_is_a_saw_tooth() -> None:
    start, end = NOW - 10 * H, NOW
    times = [NOW - 12 * H, NOW - 6 * H, NOW - 2 * H]
    points = age_series(times, start, end)
    assert points == [
        (start, 2 * H),
        (NOW - 6 * H, 6 * H),
        (NOW - 6 * H, timedelta(0)),
        (NOW - 2 * H, 4 * H),
        (NOW - 2 * H, timedelta(0)),
        (end, 2 * H),
    ]
    assert age_series([], start, end) == [(start, None), (end, None)]
    first_inside = age_series([NOW - 5 * H], start, end)
    assert first_inside[0] == (start, None) and first_inside[-1] == (end, 5 * H)


def test_chart_draws_the_rpo_and_the_ages() -> None:
    svg = snapshot_age_svg(age_series([NOW - 30 * H], NOW - 48 * H, NOW), 24 * H, "age <of> acme/nas")
    assert svg.startswith("<svg") and "RPO 24 h" in svg and "<polyline" in svg
    assert "age &lt;of&gt; acme/nas" in svg
