"""Durations, sizes and percentages as written in configuration files, and their display."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preuve.config.units import format_bytes, format_duration, parse_duration, parse_percent, parse_size

# --- parse_duration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("15min", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        (" 30 s ", timedelta(seconds=30)),
        ("365d", timedelta(days=365)),
        ("1ms", timedelta(milliseconds=1)),
        (90, timedelta(seconds=90)),
        (0.5, timedelta(milliseconds=500)),
    ],
)
def test_parse_duration(text: str | int | float, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "h",
        "24",  # a bare number must be a number, not text
        "24 hours",
        "1h30m",
        "-1s",
        "+1s",
        "1e3s",
        ".5h",
        "5.h",
        "24H",
        "fast",
        "٣s",  # non-ASCII digits
        "1,5h",
        "0s",
        "0",
        "0.0d",
        0,
        -5,
        0.0,
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        10**400,
        "9" * 400 + "d",
        "99999999999999999999d",  # beyond what timedelta holds
        "0.0000001ms",  # rounds to zero
        None,
        [],
        ["1h"],
        {"h": 1},
    ],
)
def test_parse_duration_rejects_with_value_error(text: object) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(text)  # type: ignore[arg-type]
    assert len(str(error.value)) < 200  # a 400-digit typo is not quoted in full


def test_parse_duration_messages() -> None:
    with pytest.raises(ValueError, match=r"'fast' is not a duration; write it like 90s"):
        parse_duration("fast")
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration("0h")


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "min", "h", "d", "w"]))
def test_parse_duration_integers(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_duration(f"{amount}{unit}") == timedelta(seconds=amount * seconds)


@given(st.text(max_size=30))
def test_parse_duration_never_crashes(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert result > timedelta(0)


# --- parse_size -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GiB", 2 * 1024**3),
        ("500MB", 500 * 1000**2),
        ("64KiB", 64 * 1024),
        ("64kib", 64 * 1024),
        ("64k", 64_000),
        ("64Ki", 64 * 1024),
        ("1.5GiB", 1536 * 1024**2),
        ("2MiB", 2 * 1024**2),
        ("1TB", 1000**4),
        ("1PiB", 1024**5),
        ("1b", 1),
        ("1B", 1),
        ("100", 100),
        (" 10 MB ", 10_000_000),
        ("1.5b", 1),  # whole bytes
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "GiB",
        "0",
        "0GiB",
        "0.1b",  # less than a byte
        "-1MB",
        "5ib",  # not a unit
        "5i",
        "5bi",
        "5EiB",
        "5 gigabytes",
        "1e9",
        "2 GiB 3",
        "9" * 400,
        "1" + "0" * 30 + "PiB",
        10**400,
        0,
        -1,
        True,
        1.5,
        None,
        ["1GiB"],
    ],
)
def test_parse_size_rejects_with_value_error(text: object) -> None:
    with pytest.raises(ValueError) as error:
        parse_size(text)  # type: ignore[arg-type]
    assert len(str(error.value)) < 200


@given(st.text(max_size=20))
def test_parse_size_never_crashes(text: str) -> None:
    try:
        result = parse_size(text)
    except ValueError:
        return
    assert isinstance(result, int)
    assert result >= 1


# --- parse_percent ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20%", 0.2), ("0%", 0.0), ("100%", 1.0), ("12.5%", 0.125), (" 30 % ", 0.3), ("050%", 0.5)],
)
def test_parse_percent(text: str, expected: float) -> None:
    assert parse_percent(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "%",
        "20",
        "-5%",
        "100.5%",
        "101%",
        "1e2%",
        "20 percent",
        "%20",
        "20%%",
        20,
        0.2,
        True,
        None,
        [],
        "9" * 400 + "%",
    ],
)
def test_parse_percent_rejects_with_value_error(text: object) -> None:
    with pytest.raises(ValueError):
        parse_percent(text)  # type: ignore[arg-type]


def test_parse_percent_number_asks_for_the_sign() -> None:
    with pytest.raises(ValueError, match="with a % sign"):
        parse_percent(30)


# --- format_bytes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2, "1.0 MiB"),
        (1024**2 - 1, "1.0 MiB"),  # not "1024.0 KiB"
        (1024**3 - 1, "1.0 GiB"),
        (5 * 1024**3, "5.0 GiB"),
        (1024**4, "1.0 TiB"),
        (1024**5, "1024.0 TiB"),  # TiB is the largest unit
        (-2048, "-2.0 KiB"),
        (1023.4, "1023 B"),
        (1023.6, "1.0 KiB"),
    ],
)
def test_format_bytes(count: int | float, expected: str) -> None:
    assert format_bytes(count) == expected


@given(st.integers(min_value=0, max_value=1024**5))
def test_format_bytes_never_shows_1024_below_tib(count: int) -> None:
    number, unit = format_bytes(count).split()
    assert unit in {"B", "KiB", "MiB", "GiB", "TiB"}
    if unit != "TiB":
        assert float(number) < 1024


def test_format_bytes_non_finite() -> None:
    assert "inf" in format_bytes(float("inf"))
    assert "nan" in format_bytes(float("nan"))


# --- format_duration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0.0 s"),
        (0.04, "0.0 s"),
        (12.34, "12.3 s"),
        (59.9, "59.9 s"),
        (59.96, "1 min 00 s"),  # not "60.0 s"
        (60, "1 min 00 s"),
        (65, "1 min 05 s"),
        (3599, "59 min 59 s"),
        (3599.6, "1 h 00 min"),
        (3600, "1 h 00 min"),
        (3725, "1 h 02 min"),
        (90000, "25 h 00 min"),
        (-5, "-5.0 s"),
        (-100, "-1 min 40 s"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_format_duration_non_finite() -> None:
    assert "inf" in format_duration(float("inf"))
    assert "nan" in format_duration(float("nan"))


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
def test_format_duration_shape(seconds: float) -> None:
    text = format_duration(seconds)
    assert text.endswith((" s", " min"))
    if text.endswith(" s") and "min" not in text:
        assert float(text.split()[0]) < 60
