"""execute.run with real child processes: streaming, concurrent stderr, deadlines, kills, masking, truncation."""

from __future__ import annotations

import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from preuve import redact
from preuve.restic import execute

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
PY = sys.executable


@pytest.fixture(autouse=True)
def _registry_empty() -> Iterator[None]:
    assert execute.running_groups() == []
    yield
    assert execute.running_groups() == [], "a process group stayed registered after run() returned"


def _gone(pid: int) -> bool:
    """True when the process no longer runs. A zombie counts as gone: PID 1 here does not reap orphans."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float = 3.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return _gone(pid)


def _py(code: str, *args: str) -> tuple[str, ...]:
    return (PY, "-c", code, *args)


def test_stdout_lines_are_streamed_in_order() -> None:
    seen: list[str] = []
    completed = execute.run(
        _py("import sys\nfor i in range(2000): sys.stdout.write(f'line {i}\\n')"),
        env=ENV,
        deadline_s=20,
        on_stdout=seen.append,
    )
    assert completed.exit_code == 0
    assert not completed.timed_out
    assert seen == [f"line {i}\n" for i in range(2000)]
    assert completed.stdout_lines == 2000
    assert completed.stdout.startswith("line 0\nline 1\n")
    assert completed.stdout.endswith("line 1999\n")
    assert completed.duration_s > 0
    assert completed.started_at.tzinfo is not None


def test_unicode_and_invalid_utf8_are_decoded() -> None:
    seen: list[str] = []
    completed = execute.run(
        _py("import sys\nsys.stdout.buffer.write('日本語ファイル.bin\\n'.encode() + b'bad \\xff byte\\n')"),
        env=ENV,
        deadline_s=20,
        on_stdout=seen.append,
    )
    assert seen == ["日本語ファイル.bin\n", "bad \ufffd byte\n"]
    assert completed.exit_code == 0


def test_stdout_not_kept_but_counted() -> None:
    seen: list[str] = []
    completed = execute.run(
        _py("for i in range(500): print('node', i)"),
        env=ENV,
        deadline_s=20,
        on_stdout=seen.append,
        keep_stdout=False,
    )
    assert completed.stdout == ""
    assert completed.stdout_lines == 500
    assert len(seen) == 500


def test_exit_code_and_stderr_are_reported() -> None:
    stderr_lines: list[str] = []
    completed = execute.run(
        _py("import sys\nprint('Fatal: wrong password or no key found', file=sys.stderr)\nsys.exit(1)"),
        env=ENV,
        deadline_s=20,
        on_stderr=stderr_lines.append,
    )
    assert completed.exit_code == 1
    assert not completed.timed_out
    assert completed.stderr == "Fatal: wrong password or no key found\n"
    assert stderr_lines == ["Fatal: wrong password or no key found\n"]
    log = completed.to_log(note="n")
    assert log.exit_code == 1 and log.stderr == completed.stderr and log.note == "n"


def test_env_is_exactly_what_was_given() -> None:
    completed = execute.run(
        _py("import os, json\nprint(json.dumps(sorted(os.environ)))"),
        env={**ENV, "ONLY_THIS": "1"},
        deadline_s=20,
    )
    names = set(json.loads(completed.stdout))
    assert "ONLY_THIS" in names
    assert names <= {"PATH", "LANG", "ONLY_THIS", "LC_CTYPE"}  # nothing inherited from the parent


def test_stderr_is_read_concurrently_no_deadlock() -> None:
    # 1 MB on stderr *before* any stdout: without a concurrent reader the child blocks on the full stderr pipe
    # while we block on stdout, until the deadline.
    code = (
        "import sys\n"
        "for i in range(10000): sys.stderr.write('e' * 99 + '\\n')\n"
        "sys.stderr.flush()\n"
        "for i in range(1000): sys.stdout.write(f'out {i}\\n')\n"
        "for i in range(1000): sys.stderr.write('late\\n')\n"
    )
    seen: list[str] = []
    start = time.monotonic()
    completed = execute.run(_py(code), env=ENV, deadline_s=15, on_stdout=seen.append)
    assert not completed.timed_out
    assert completed.exit_code == 0
    assert time.monotonic() - start < 10
    assert len(seen) == 1000
    assert completed.stderr.endswith("late\n")


def test_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    completed = execute.run(
        ("sh", "-c", f"sleep 300 & echo $! > '{pidfile}'; wait"),
        env=ENV,
        deadline_s=1,
    )
    elapsed = time.monotonic() - start
    assert completed.timed_out
    assert completed.exit_code is None
    assert 0.9 <= elapsed < 1 + execute.TERM_GRACE_S + 2
    grandchild = int(pidfile.read_text().strip())
    assert _wait_gone(grandchild), f"grandchild {grandchild} survived the deadline"


def test_deadline_with_a_child_that_ignores_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SIGTERM ignored: the group gets SIGKILL after the grace period
    monkeypatch.setattr(execute, "TERM_GRACE_S", 0.5)
    pidfile = tmp_path / "child.pid"
    completed = execute.run(
        ("sh", "-c", f"trap '' TERM; echo $$ > '{pidfile}'; while :; do sleep 0.05; done"),
        env=ENV,
        deadline_s=0.5,
    )
    assert completed.timed_out
    assert completed.exit_code is None
    assert _wait_gone(int(pidfile.read_text().strip()))


def test_many_tiny_stderr_lines_are_cheap() -> None:
    # the kept tail drops its oldest line per new line: that must not cost O(tail) each time
    start = time.monotonic()
    completed = execute.run(_py("import sys\nsys.stderr.write('x\\n' * 1_000_000)"), env=ENV, deadline_s=20)
    assert completed.exit_code == 0
    assert time.monotonic() - start < 4
    assert "lines not kept" in completed.stderr


def test_fast_child_is_not_marked_timed_out() -> None:
    completed = execute.run(("true",), env=ENV, deadline_s=5)
    assert completed.exit_code == 0
    assert not completed.timed_out


# The child prints its background grandchild's PID first, then streams lines until it is killed.
_STREAMER = ("sh", "-c", "sleep 300 & echo $!; while :; do echo line; sleep 0.01; done")


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_callback_exception_kills_the_process_and_propagates(exc_type: type[BaseException]) -> None:
    pids: list[int] = []
    lines = 0

    def on_stdout(line: str) -> None:
        nonlocal lines
        lines += 1
        if not pids:
            pids.append(int(line))
            pids.extend(execute.running_groups())  # the child's process group = the child's PID
            return
        if lines >= 3:
            raise exc_type("stop here")

    start = time.monotonic()
    with pytest.raises(exc_type, match="stop here"):
        execute.run(_STREAMER, env=ENV, deadline_s=60, on_stdout=on_stdout)
    assert time.monotonic() - start < 10, "the exception waited for the deadline"
    grandchild, child = pids
    assert _wait_gone(child), "the child outlived the exception"
    assert _wait_gone(grandchild), "the grandchild outlived the exception"


def test_missing_binary_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError, match=r"cannot start /nonexistent/restic-xyz"):
        execute.run(("/nonexistent/restic-xyz", "version"), env=ENV, deadline_s=5)
    with pytest.raises(FileNotFoundError, match="cannot start restic-not-on-path-xyz"):
        execute.run(("restic-not-on-path-xyz",), env=ENV, deadline_s=5)


def test_registered_secret_never_appears_in_completed() -> None:
    secret = "pw-" + secrets.token_hex(12)
    redact.register(secret)
    completed = execute.run(
        _py("import sys\nprint('password is', sys.argv[1])\nprint('stderr', sys.argv[1], file=sys.stderr)", secret),
        env=ENV,
        deadline_s=20,
    )
    assert completed.exit_code == 0
    assert secret not in " ".join(completed.argv)
    assert completed.argv[-1] == redact.MASK
    assert secret not in completed.stdout and secret not in completed.stderr
    assert completed.stdout == f"password is {redact.MASK}\n"
    assert completed.stderr == f"stderr {redact.MASK}\n"
    log = completed.to_log()
    assert secret not in repr(log)


_MARKER = re.compile(r"\[\.\.\. (\d+) lines not kept \.\.\.\]\n")


def _lines(n: int) -> list[str]:
    return [f"{i:06d} " + "x" * 92 + "\n" for i in range(n)]  # 100 characters each


def test_long_stderr_keeps_head_and_tail_with_a_marker() -> None:
    total = 5000
    code = f"import sys\nfor i in range({total}): sys.stderr.write(f'{{i:06d}} ' + 'x' * 92 + '\\n')"
    completed = execute.run(_py(code), env=ENV, deadline_s=20)
    text = completed.stderr
    match = _MARKER.search(text)
    assert match, "no truncation marker"
    dropped = int(match.group(1))
    head = text[: match.start()].splitlines(keepends=True)
    tail = text[match.end() :].splitlines(keepends=True)
    expected = _lines(total)
    assert head == expected[: len(head)]
    assert tail == expected[total - len(tail) :]
    assert len(head) + dropped + len(tail) == total
    assert dropped > 0 and len(tail) > 0
    assert execute.KEEP_BYTES <= sum(map(len, head)) < execute.KEEP_BYTES + 100
    assert execute.KEEP_BYTES - 100 < sum(map(len, tail)) <= execute.KEEP_BYTES
    assert len(text) < 2 * execute.KEEP_BYTES + 200


def test_long_stdout_keeps_the_head_only() -> None:
    total = 2000
    code = f"for i in range({total}): print(f'{{i:06d}} ' + 'x' * 92)"
    completed = execute.run(_py(code), env=ENV, deadline_s=20)
    assert completed.stdout_lines == total
    match = _MARKER.search(completed.stdout)
    assert match
    head = completed.stdout[: match.start()].splitlines(keepends=True)
    assert head == _lines(total)[: len(head)]
    assert completed.stdout.endswith(match.group(0))
    assert len(head) + int(match.group(1)) == total


def test_short_output_has_no_marker() -> None:
    completed = execute.run(_py("import sys\nprint('a')\nprint('b', file=sys.stderr)"), env=ENV, deadline_s=20)
    assert "not kept" not in completed.stdout + completed.stderr


def test_a_child_scope_ends_with_its_parent_and_alone() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    parent = execute.CancelScope("drill #1")
    child = execute.CancelScope("listing", parent=parent)
    sibling = execute.CancelScope("other listing", parent=parent)
    child.cancel("the repository did not open")
    assert child.cancelled and not parent.cancelled and not sibling.cancelled
    threading.Timer(0.2, parent.cancel, args=("Preuve was stopped",)).start()
    with execute.cancel_scope(sibling), pytest.raises(execute.Cancelled, match="Preuve was stopped"):
        execute.run(("sleep", "30"), env=env, deadline_s=60)
    assert execute.running_groups() == []
    late = execute.CancelScope("late", parent=parent)  # born under a stopped parent: stopped too
    assert late.cancelled and late.reason == "Preuve was stopped"


# -- a child held at its first stdout write ------------------------------------------------------------------

_PRINT_THEN_WORK = (
    "import sys, pathlib\n"
    "sys.stdout.write('first line\\n'); sys.stdout.flush()\n"
    "pathlib.Path(sys.argv[1]).write_text('done')\n"
    "sys.stdout.write('second line\\n')\n"
)


def test_a_gated_child_does_nothing_past_its_first_print_until_the_gate_opens(tmp_path: Path) -> None:
    marker = tmp_path / "worked"
    gate = threading.Event()
    seen: list[str] = []
    threading.Timer(0.8, gate.set).start()
    completed = execute.run(
        _py(_PRINT_THEN_WORK, str(marker)), env=ENV, deadline_s=20, on_stdout=seen.append, stdout_gate=gate
    )
    assert gate.is_set()
    assert completed.exit_code == 0
    assert seen == ["first line\n", "second line\n"]  # the filler never shows
    assert completed.stdout == "first line\nsecond line\n"
    assert marker.read_text() == "done"


def test_while_gated_the_child_is_held(tmp_path: Path) -> None:
    marker = tmp_path / "worked"
    gate = threading.Event()
    result: list[execute.Completed] = []
    runner = threading.Thread(
        target=lambda: result.append(
            execute.run(_py(_PRINT_THEN_WORK, str(marker)), env=ENV, deadline_s=20, stdout_gate=gate)
        )
    )
    runner.start()
    time.sleep(1.0)  # far more than the child needs to reach its first print
    assert not marker.exists()
    gate.set()
    runner.join(20)
    assert result and result[0].exit_code == 0 and marker.exists()


def test_a_gated_child_that_fails_is_not_waited_for() -> None:
    started = time.monotonic()
    completed = execute.run(
        _py("import sys; sys.stderr.write('Fatal: wrong password\\n'); sys.exit(1)"),
        env=ENV,
        deadline_s=20,
        stdout_gate=threading.Event(),  # never set
    )
    assert completed.exit_code == 1 and "wrong password" in completed.stderr
    assert time.monotonic() - started < 10


def test_a_gated_child_is_cancelled_and_hits_its_deadline(tmp_path: Path) -> None:
    scope = execute.CancelScope("drill #7")
    threading.Timer(0.3, scope.cancel, args=("the repository did not open",)).start()
    with execute.cancel_scope(scope), pytest.raises(execute.Cancelled, match="did not open"):
        execute.run(_py(_PRINT_THEN_WORK, str(tmp_path / "a")), env=ENV, deadline_s=60, stdout_gate=threading.Event())
    completed = execute.run(
        _py(_PRINT_THEN_WORK, str(tmp_path / "b")), env=ENV, deadline_s=0.5, stdout_gate=threading.Event()
    )
    assert completed.timed_out and completed.exit_code is None
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_deadline_can_be_moved_while_the_child_runs() -> None:
    sooner = execute.Deadline(60)
    threading.Timer(0.1, sooner.move, args=(0.3,)).start()
    assert execute.run(("sleep", "30"), env=ENV, deadline_s=sooner).timed_out
    later = execute.Deadline(0.5)
    later.move(30)  # before the start: the run keeps the moved value
    threading.Timer(0.1, later.move, args=(40,)).start()
    completed = execute.run(("sleep", "1.5"), env=ENV, deadline_s=later)
    assert completed.exit_code == 0 and not completed.timed_out
