"""Structured logs: one JSON line per event off a terminal, text on one, secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from preuve import redact
from preuve.logs import FORMAT_ENV, JsonFormatter, TextFormatter, setup_logging, wants_json


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def secret() -> str:
    value = "s3cr3t-" + secrets.token_hex(8)
    redact.register(value)
    return value


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(capsys)]


def test_json_lines_with_extras(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json_format=True)
    log = logging.getLogger("preuve.test")
    before = datetime.now(UTC)
    log.info("drill %d passed", 42, extra={"drill_id": 42, "target": "acme/nas", "client": "acme", "event": "drill"})
    log.warning("second", extra={"when": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "parts": (1, 2)})
    log.debug("below INFO: not written")
    first, second = _events(capsys)

    assert first["level"] == "INFO"
    assert first["logger"] == "preuve.test"
    assert first["message"] == "drill 42 passed"
    assert (first["drill_id"], first["target"], first["client"], first["event"]) == (42, "acme/nas", "acme", "drill")
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)

    assert second["level"] == "WARNING"
    assert second["when"] == "2025-01-02T03:04:05+00:00"
    assert second["parts"] == [1, 2]


def test_one_line_per_event_even_with_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json_format=True)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("preuve.test").exception("it failed\nover two lines")
    (line,) = _lines(capsys)
    event = json.loads(line)
    assert event["level"] == "ERROR"
    assert event["message"] == "it failed\nover two lines"
    assert "Traceback (most recent call last)" in event["exception"]
    assert "RuntimeError: boom" in event["exception"]


def test_secrets_masked_in_message_args_and_extras(capsys: pytest.CaptureFixture[str], secret: str) -> None:
    setup_logging(json_format=True)
    log = logging.getLogger("preuve.test")
    log.warning(f"password is {secret}")
    log.warning("password is %s", secret)
    log.warning("nested", extra={"env": {"RESTIC_PASSWORD": secret}, "argv": ["restic", f"--password={secret}"]})
    quoted = 'with "quotes" and \\ ' + secrets.token_hex(4)
    redact.register(quoted)
    log.warning("odd secret: %s", quoted)  # JSON escaping must not let it through unmasked
    out = capsys.readouterr().err
    assert secret not in out
    assert 'with \\"quotes\\"' not in out and quoted not in out
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["message"] == "password is ***"
    assert events[1]["message"] == "password is ***"
    assert events[2]["env"] == {"RESTIC_PASSWORD": "***"}
    assert events[2]["argv"] == ["restic", "--password=***"]
    assert events[3]["message"] == "odd secret: ***"


def test_secrets_masked_in_tracebacks(capsys: pytest.CaptureFixture[str], secret: str) -> None:
    for json_format in (True, False):
        setup_logging(json_format=json_format)
        try:
            raise ValueError(f"could not log in with {secret}")
        except ValueError:
            logging.getLogger("preuve.test").exception("login failed")
        out = capsys.readouterr().err
        assert secret not in out
        assert "could not log in with ***" in out


def test_the_filter_masks_tracebacks_for_any_formatter(secret: str) -> None:
    """RedactingFilter alone (a handler with a plain Formatter) masks the traceback too."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redact.RedactingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("preuve.test.plain")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise KeyError(secret)
        except KeyError:
            log.exception("lookup with %s failed", secret)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    text = stream.getvalue()
    assert secret not in text
    assert "lookup with *** failed" in text
    assert "KeyError: '***'" in text


def test_text_on_a_terminal(capsys: pytest.CaptureFixture[str], secret: str) -> None:
    setup_logging(json_format=False)
    logging.getLogger("preuve.test").info("drill %s started", secret, extra={"drill_id": 7, "target": "acme/usb"})
    (line,) = _lines(capsys)
    assert "INFO preuve.test: drill *** started" in line
    assert line.endswith("drill_id=7 target=acme/usb")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_levels() -> None:
    setup_logging()
    assert logging.getLogger().level == logging.INFO
    setup_logging(verbose=True)
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    setup_logging(level=logging.WARNING)
    assert logging.getLogger().level == logging.WARNING
    assert len(logging.getLogger().handlers) == 1  # a second call replaces, not adds


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_chosen_by_terminal_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    assert wants_json(io.StringIO()) is True
    assert wants_json(_Tty()) is False
    assert wants_json(_Tty(), json_format=True) is True
    monkeypatch.setenv(FORMAT_ENV, "json")
    assert wants_json(_Tty()) is True
    monkeypatch.setenv(FORMAT_ENV, "text")
    assert wants_json(io.StringIO()) is False
    assert wants_json(io.StringIO(), json_format=True) is True


def test_the_cli_logs_json_when_not_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from preuve import cli

    monkeypatch.delenv(FORMAT_ENV, raising=False)
    cli._setup_logging(verbose=False)
    logging.getLogger("preuve.test").info("not shown: commands log from WARNING")
    logging.getLogger("preuve.test").warning("shown", extra={"target": "acme/nas"})
    (event,) = _events(capsys)
    assert event["message"] == "shown" and event["target"] == "acme/nas"
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter | TextFormatter)


def test_a_bad_log_call_neither_raises_nor_leaks(capsys: pytest.CaptureFixture[str], secret: str) -> None:
    setup_logging(json_format=True)
    logging.getLogger("preuve.test").warning("%d drills", secret)  # wrong argument type
    err = capsys.readouterr().err
    assert secret not in err
    assert "logging error" in err and len(err.splitlines()) == 1
