"""classify() on the exact stderr restic 0.14 prints (RESTIC.md sections 4 and 5), and on newer exit codes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from preuve.errors import FailureClass, PreuveError
from preuve.restic.classify import classify, lock_holder
from preuve.restic.execute import Completed
from preuve.restic.versions import Version

V014 = Version(0, 14, 0)
V0171 = Version(0, 17, 1)
WHAT = "listing the snapshots of acme/nas1"
DEADLINE = 120.0
DIR = "/srv/restic-lab"


def _completed(stderr: str, exit_code: int | None = 1, *, timed_out: bool = False) -> Completed:
    return Completed(
        argv=("restic", "snapshots", "--json"),
        exit_code=exit_code,
        stdout="",
        stderr=stderr,
        duration_s=0.5,
        timed_out=timed_out,
        stdout_lines=0,
        started_at=datetime(2026, 11, 27, 13, 0, tzinfo=UTC),
    )


def _classify(stderr: str, exit_code: int | None = 1, version: Version | None = V014, **kw: bool) -> PreuveError:
    error = classify(_completed(stderr, exit_code, **kw), version, what=WHAT, deadline_s=DEADLINE)
    assert error is not None
    _assert_sentence(error)
    return error


def _assert_sentence(error: PreuveError) -> None:
    message = error.message
    assert WHAT in message, message
    assert message[0].isupper() or message.startswith("restic "), message
    assert message.endswith("."), message
    assert "()" not in message, message
    assert error.full_message.startswith(message)


IS_THERE = "Is there a repository at the following location?\n"

LOCKED = (
    "unable to create lock in backend: repository is already locked exclusively by PID 18139 on vm by root "
    "(UID 0, GID 0)\n"
    "lock was created at 2026-11-27 13:32:23 (758.670423ms ago)\n"
    "storage ID 57b2c45d\n"
    "the `unlock` command can be used to remove stale locks\n"
)

GO_STACK = (
    "Unknown blob 5f2d0a4c2b7a9a6e0e1f3d0c7b1f7f2c3a9c0a4e5d6f7a8b9c0d1e2f3a4b5c6d\n"
    "github.com/restic/restic/internal/errors.Errorf\n"
    "\t/build/restic-0.14.0/internal/errors/errors.go:30\n"
    "github.com/restic/restic/internal/restorer.(*fileRestorer).restoreFiles\n"
    "\t/build/restic-0.14.0/internal/restorer/filerestorer.go:403\n"
    "main.runRestore\n"
    "\t/build/restic-0.14.0/cmd/restic/cmd_restore.go:401\n"
    "runtime.goexit\n"
    "\t/usr/lib/go-1.19/src/runtime/asm_amd64.s:1594\n"
)

CASES: list[tuple[str, str, FailureClass]] = [
    ("wrong password", "Fatal: wrong password or no key found\n", FailureClass.AUTH),
    (
        "repo missing, local",
        f"Fatal: unable to open config file: stat {DIR}/repos/does-not-exist/config: no such file or directory\n"
        f"{IS_THERE}{DIR}/repos/does-not-exist\n",
        FailureClass.REPO_MISSING,
    ),
    (
        "repo missing, sftp",
        f"Fatal: unable to open config file: Lstat: file does not exist\n{IS_THERE}sftp:restic-lab-sftp:{DIR}/x\n",
        FailureClass.REPO_MISSING,
    ),
    (
        "repo missing, s3 (no bucket)",
        f"Fatal: unable to open config file: Stat: The specified bucket does not exist\n{IS_THERE}"
        "s3:http://127.0.0.1:39245/nope\n",
        FailureClass.REPO_MISSING,
    ),
    (
        "repo missing, s3 (bucket without repository)",
        f"Fatal: unable to open config file: Stat: The specified key does not exist.\n{IS_THERE}"
        "s3:http://127.0.0.1:39245/restic/other\n",
        FailureClass.REPO_MISSING,
    ),
    (
        "repo missing, rest",
        f"Fatal: unable to open config file: <config/> does not exist\n{IS_THERE}rest:http://127.0.0.1:39549/nope/\n",
        FailureClass.REPO_MISSING,
    ),
    ("locked", LOCKED, FailureClass.REPO_LOCKED),
    (
        "locked by a PID that looks like an HTTP status",
        LOCKED.replace("18139", "403").replace("758.670423ms", "401.5ms"),
        FailureClass.REPO_LOCKED,
    ),
    (
        "unreachable, s3",
        'Fatal: unable to open config file: Stat: Get "http://127.0.0.1:39245/restic/?location=": '
        f"dial tcp 127.0.0.1:39245: connect: connection refused\n{IS_THERE}s3:http://127.0.0.1:39245/restic\n",
        FailureClass.UNREACHABLE,
    ),
    (
        "unreachable, rest",
        'Fatal: unable to open config file: client.Head: Head "http://127.0.0.1:39549/main/config": '
        f"dial tcp 127.0.0.1:39549: connect: connection refused\n{IS_THERE}rest:http://127.0.0.1:39549/main/\n",
        FailureClass.UNREACHABLE,
    ),
    (
        "unreachable, sftp",
        "subprocess ssh: ssh: connect to host 127.0.0.1 port 59119: Connection refused\n"
        f"Fatal: unable to open repository at sftp:restic-lab-sftp:{DIR}/repos/sftp: "
        "unable to start the sftp session, error: EOF\n",
        FailureClass.UNREACHABLE,
    ),
    (
        "sftp key not authorized",
        "subprocess ssh: root@127.0.0.1: Permission denied (publickey).\n"
        f"Fatal: unable to open repository at sftp:restic-lab-sftp:{DIR}/repos/sftp: "
        "unable to start the sftp session, error: EOF\n",
        FailureClass.AUTH,
    ),
    (
        "host key verification failed",
        "subprocess ssh: Host key verification failed.\n"
        f"Fatal: unable to open repository at sftp:nas:{DIR}/repos/sftp: unable to start the sftp session, error: EOF\n",
        FailureClass.AUTH,
    ),
    (
        "s3 bad credentials",
        "Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not exist in our records.\n"
        f"{IS_THERE}s3:http://127.0.0.1:39245/restic\n",
        FailureClass.AUTH,
    ),
    (
        "rest bad credentials",
        "Fatal: unable to open config file: unexpected HTTP response (401): 401 Unauthorized\n"
        f"{IS_THERE}rest:http://127.0.0.1:39549/main/\n",
        FailureClass.AUTH,
    ),
    (
        "snapshot id unknown",
        'invalid id "deadbeef": no matching ID found for prefix "deadbeef"\n',
        FailureClass.MISSING_SNAPSHOT,
    ),
    (
        "snapshot id unknown, digits only",
        'invalid id "403": no matching ID found for prefix "403"\n',
        FailureClass.MISSING_SNAPSHOT,
    ),
    (
        "restore: ciphertext verification failed",
        "ignoring error for /srv/restic-lab/src/docs/f00899.md: ciphertext verification failed\n"
        "Fatal: There were 1 errors\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "restore: damaged file under a folder named like an HTTP status",
        "ignoring error for /srv/data/403/Forbidden-plans.pdf: ciphertext verification failed\n"
        "ignoring error for /srv/data/403/Forbidden-plans.pdf: UtimesNano: no such file or directory\n"
        "Fatal: There were 2 errors\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "check --read-data: pack ID mismatch",
        "Pack ID does not match, want 8c98812925a1b2c3, got 1f2e3d4c5b6a7988\nFatal: repository contains errors\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "check: truncated pack",
        "pack 8c98812925a1b2c3: unexpected file size: got 8602289, expected 17204578\n"
        "Fatal: repository contains errors\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "check: deleted pack",
        "pack 8c98812925a1b2c3: does not exist\nFatal: repository contains errors\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "check: corrupt tree",
        "error for tree a3661045:\n  decrypting blob 5f2d0a4c failed: ciphertext verification failed\n"
        "Fatal: repository contains errors\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "check: deleted index",
        'tree a3661045: file "f00195.jpg" blob 5f2d0a4c not found in index\nFatal: repository contains errors\n',
        FailureClass.CORRUPT_DATA,
    ),
    (
        "restore: missing pack, retried",
        "Load(<data/8c98812925>, 17204578, 0) returned error, retrying after 552ms: open "
        f"{DIR}/repos/local/data/8c/8c98812925a1b2c3: no such file or directory\n"
        "Load(<data/8c98812925>, 17204578, 0) returned error, retrying after 401.377ms: open "
        f"{DIR}/repos/local/data/8c/8c98812925a1b2c3: no such file or directory\n",
        FailureClass.CORRUPT_DATA,
    ),
    (
        "restore: truncated pack, retried",
        "Load(<data/8c98812925>, 17204578, 0) returned error, retrying after 1.1s: ReadFull: unexpected EOF\n",
        FailureClass.CORRUPT_DATA,
    ),
    ("restore: missing index, Go stack trace", GO_STACK, FailureClass.CORRUPT_DATA),
    ("restore: N errors only", "Fatal: There were 3 errors\n", FailureClass.CORRUPT_DATA),
    (
        "restore: storage gone mid-way",
        'Load(<data/8c98812925>, 17204578, 0) returned error, retrying after 552ms: Get "http://127.0.0.1:39245/'
        'restic/data/8c": dial tcp 127.0.0.1:39245: connect: connection refused\n',
        FailureClass.UNREACHABLE,
    ),
    (
        "restore: sandbox full",
        "ignoring error for /srv/data/big.iso: write /var/lib/preuve/sandbox/preuve-drill-7-ab/restore/srv/data/"
        "big.iso: no space left on device\nFatal: There were 1 errors\n",
        FailureClass.SANDBOX,
    ),
]


@pytest.mark.parametrize(("stderr", "expected"), [(s, c) for _, s, c in CASES], ids=[n for n, _, _ in CASES])
def test_restic_014_stderr(stderr: str, expected: FailureClass) -> None:
    error = _classify(stderr)
    assert error.failure_class is expected, error.message


def test_message_quotes_the_relevant_line() -> None:
    error = _classify("subprocess ssh: root@127.0.0.1: Permission denied (publickey).\n")
    assert "Permission denied (publickey)" in error.message
    error = _classify("Pack ID does not match, want aaaa, got bbbb\nFatal: repository contains errors\n")
    assert "Pack ID does not match" in error.message


def test_host_key_message_gives_advice_without_echoing() -> None:
    error = _classify("subprocess ssh: Host key verification failed.\n")
    assert "known_hosts" in error.message


def test_locked_and_lock_holder() -> None:
    error = _classify(LOCKED)
    assert error.failure_class is FailureClass.REPO_LOCKED
    assert lock_holder(LOCKED) == "PID 18139 on vm by root, since 2026-11-27 13:32:23 (758.670423ms ago)"


def test_lock_holder_without_age_or_lock() -> None:
    assert lock_holder("repository is already locked by PID 7 on nas by backup (UID 1000, GID 1000)\n") == (
        "PID 7 on nas by backup"
    )
    assert lock_holder("Fatal: wrong password or no key found\n") == ""


def test_timeout() -> None:
    error = _classify("", exit_code=None, timed_out=True)
    assert error.failure_class is FailureClass.TIMEOUT
    assert "120 s" in error.message


def test_killed_by_signal() -> None:
    error = _classify("", exit_code=-9)
    assert error.failure_class is FailureClass.INTERNAL
    assert "signal 9" in error.message


def test_unknown_fatal_is_internal_with_its_text() -> None:
    error = _classify("Fatal: unknown flag: --bogus-option\n")
    assert error.failure_class is FailureClass.INTERNAL
    assert "unknown flag: --bogus-option" in error.message


def test_unknown_failure_without_stderr() -> None:
    error = _classify("", exit_code=2)
    assert error.failure_class is FailureClass.INTERNAL
    assert "exit code 2" in error.message


def test_panic_without_known_line_is_internal() -> None:
    error = _classify("panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\n")
    assert error.failure_class is FailureClass.INTERNAL
    assert "crashed" in error.message


def test_success_is_none() -> None:
    assert classify(_completed("", 0), V014, what=WHAT, deadline_s=DEADLINE) is None
    # a warning on stderr does not turn success into a failure
    ignoring = 'Ignoring "latest", no snapshot matched given filter (Paths:[/x])\n'
    assert classify(_completed(ignoring, 0), V014, what=WHAT, deadline_s=DEADLINE) is None
    assert classify(_completed("", 0), None, what=WHAT, deadline_s=DEADLINE) is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [(10, FailureClass.REPO_MISSING), (11, FailureClass.REPO_LOCKED), (12, FailureClass.AUTH)],
)
def test_exit_codes_on_0_17_1(code: int, expected: FailureClass) -> None:
    error = _classify("Fatal: something restic says\n", exit_code=code, version=V0171)
    assert error.failure_class is expected
    assert "something restic says" in error.message


@pytest.mark.parametrize("code", [10, 11, 12])
def test_exit_codes_on_0_17_1_without_stderr(code: int) -> None:
    _classify("", exit_code=code, version=V0171)  # still a clean sentence, no empty brackets


def test_exit_code_12_on_0_17_0_is_not_a_password_code() -> None:
    error = _classify("", exit_code=12, version=Version(0, 17, 0))
    assert error.failure_class is FailureClass.INTERNAL


def test_exit_code_12_on_0_14_is_internal() -> None:
    error = _classify("Fatal: some new message\n", exit_code=12, version=V014)
    assert error.failure_class is FailureClass.INTERNAL
    assert "some new message" in error.message


def test_exit_code_1_on_0_17_falls_back_to_stderr() -> None:
    error = _classify("Fatal: wrong password or no key found\n", exit_code=1, version=V0171)
    assert error.failure_class is FailureClass.AUTH


def test_unknown_version_uses_stderr() -> None:
    error = _classify(LOCKED, exit_code=11, version=None)
    assert error.failure_class is FailureClass.REPO_LOCKED


def test_interrupted() -> None:
    error = _classify("", exit_code=130)
    assert error.failure_class is FailureClass.INTERNAL
    assert "interrupted" in error.message


def test_secrets_in_stderr_are_masked() -> None:
    from preuve import redact

    secret = "rest-pw-4f9c1e77b2"
    redact.register(secret)
    error = _classify(f"Fatal: unable to open config file: <config/> does not exist\nrest:http://u:{secret}@h/\n")
    assert secret not in error.message
    error = _classify(f"Fatal: odd failure for http://u:{secret}@h/\n")
    assert secret not in error.message
