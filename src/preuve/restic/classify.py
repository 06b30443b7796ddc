"""Turn a failed restic run into a failure class and a sentence a technician can act on.

restic 0.14 exits 1 for every failure, so the class comes from stderr (exact strings in RESTIC.md section 4);
from 0.17 the exit codes 10 (no repository), 11 (locked) and 12 (wrong password, 0.17.1) are read first.
Patterns are tried in order: the most specific first, because one failure prints several lines
(a wrong SSH key also prints ``unable to start the sftp session``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preuve import redact
from preuve.errors import FailureClass, PreuveError
from preuve.restic.execute import Completed
from preuve.restic.versions import Version, has


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    failure_class: FailureClass
    sentence: str  # may use {line} (the matching stderr line)


def _rule(pattern: str, failure_class: FailureClass, sentence: str) -> _Rule:
    return _Rule(re.compile(pattern, re.IGNORECASE), failure_class, sentence)


_RULES: tuple[_Rule, ...] = (
    _rule(r"no space left on device", FailureClass.SANDBOX, "the sandbox disk is full ({line})"),
    _rule(r"wrong password or no key found", FailureClass.AUTH, "the repository password is wrong"),
    # before the generic rules: the lock message carries a PID, host and user name that may look like anything
    _rule(
        r"repository is already locked|unable to create lock in backend|failed to lock repository",
        FailureClass.REPO_LOCKED,
        "the repository is locked ({line})",
    ),
    _rule(
        r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .*host key is known",
        FailureClass.AUTH,
        "the NAS's SSH host key is unknown or has changed; Preuve refuses to connect "
        "(compare its fingerprint, then update known_hosts)",
    ),
    _rule(r"Permission denied \(", FailureClass.AUTH, "the NAS refused the SSH key ({line})"),
    _rule(
        r"InvalidAccessKeyId|Access Key Id you provided does not exist|SignatureDoesNotMatch|"
        r"request signature we calculated does not match|AccessDenied|Access Denied",
        FailureClass.AUTH,
        "the S3 credentials were refused ({line})",
    ),
    # only restic's own wording: a bare 401/403 or "Forbidden" also occurs in PIDs, retry delays ("retrying after
    # 401.3ms"), line numbers of Go stack traces ("filerestorer.go:403") and the client's own file names
    _rule(
        r"HTTP response \((?:401|403)\)|\b401 Unauthorized\b|\b403 Forbidden\b",
        FailureClass.AUTH,
        "the server refused the credentials ({line})",
    ),
    _rule(
        r"bucket does not exist|NoSuchBucket",
        FailureClass.REPO_MISSING,
        "the bucket does not exist ({line})",
    ),
    # restic could not find its config file (the S3 wording for a bucket without that prefix is "The specified key
    # does not exist", which otherwise reads as a missing pack); network failures at open time say something else
    _rule(
        r"unable to open config file: .*(?:does not exist|no such file or directory|NoSuchKey)",
        FailureClass.REPO_MISSING,
        "there is no restic repository at that location ({line}); a path that is not mounted looks the same",
    ),
    _rule(
        r"returned error, retrying after .*(connection refused|no route to host|i/o timeout|dial tcp|"
        r"connection reset|broken pipe|connection lost)",
        FailureClass.UNREACHABLE,
        "the storage stopped answering during the drill ({line})",
    ),
    _rule(r"no matching ID found|invalid id \"", FailureClass.MISSING_SNAPSHOT, "the snapshot does not exist ({line})"),
    _rule(
        r"ciphertext verification failed|Pack ID does not match|unexpected file size|not found in index|"
        r"Unknown blob|failed to download|repository contains errors|There were \d+ errors|"
        r"not found in repository|decrypting blob .* failed|returned error, retrying after|"
        r"The specified key does not exist|pack \w+: does not exist|StreamPack|invalid data returned|"
        r"checksum mismatch|unexpected EOF",
        FailureClass.CORRUPT_DATA,
        "restic found damaged or missing data in the repository ({line})",
    ),
    _rule(
        r"connection refused|no route to host|network is unreachable|i/o timeout|no such host|"
        r"Could not resolve hostname|Connection timed out|Connection reset|TLS handshake|"
        r"unable to start the sftp session|connection closed|connection lost|broken pipe|dial tcp",
        FailureClass.UNREACHABLE,
        "the storage could not be reached ({line})",
    ),
    _rule(
        r"unable to open config file|Is there a repository at the following location|"
        r"repository does not exist|config: no such file",
        FailureClass.REPO_MISSING,
        "there is no restic repository at that location ({line}); a path that is not mounted looks the same",
    ),
)

_STACK = re.compile(r"^(goroutine \d+|panic:)", re.MULTILINE)


def _matching_line(stderr: str, pattern: re.Pattern[str]) -> str:
    for line in stderr.splitlines():
        if pattern.search(line):
            return line.strip()[:300]
    return ""


def _last_fatal(stderr: str) -> str:
    fatal = [line for line in stderr.splitlines() if line.startswith("Fatal:")]
    if fatal:
        return fatal[-1][len("Fatal:") :].strip()[:300]
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("\t")]
    return lines[0][:300] if lines else ""


def classify(completed: Completed, version: Version | None, *, what: str, deadline_s: float) -> PreuveError | None:
    """None when restic succeeded; otherwise the classified error. ``what`` names the operation and target."""
    if completed.timed_out:
        return PreuveError(
            FailureClass.TIMEOUT,
            f"restic did not finish {what} within its deadline of {deadline_s:.0f} s; it was stopped.",
        )
    code = completed.exit_code
    if code == 0:
        return None
    stderr = redact.mask(completed.stderr)
    if code is not None and code < 0:
        return PreuveError(
            FailureClass.INTERNAL,
            f"restic was killed by signal {-code} while {what} (not by Preuve: out of memory, or stopped by hand?).",
        )
    if version is not None and code is not None:
        by_code = _by_exit_code(code, version)
        if by_code is not None:
            failure_class, sentence = by_code
            detail = _last_fatal(stderr)
            return PreuveError(failure_class, f"While {what}: {sentence}" + (f" ({detail})." if detail else "."))
    for rule in _RULES:
        line = _matching_line(stderr, rule.pattern)
        if line:
            return PreuveError(rule.failure_class, f"While {what}: " + rule.sentence.format(line=line) + ".")
    if _STACK.search(stderr):
        return PreuveError(FailureClass.INTERNAL, f"restic crashed while {what} ({_last_fatal(stderr)}).")
    detail = _last_fatal(stderr) or f"exit code {code}, nothing on stderr"
    return PreuveError(FailureClass.INTERNAL, f"restic failed while {what}: {detail}.")


def _by_exit_code(code: int, version: Version) -> tuple[FailureClass, str] | None:
    if code == 10 and has(version, "exit_code_no_repo"):
        return FailureClass.REPO_MISSING, "there is no restic repository at that location"
    if code == 11 and has(version, "exit_code_locked"):
        return FailureClass.REPO_LOCKED, "the repository is locked"
    if code == 12 and has(version, "exit_code_wrong_password"):
        return FailureClass.AUTH, "the repository password is wrong"
    if code == 130:
        return FailureClass.INTERNAL, "restic was interrupted"
    return None


_LOCK = re.compile(r"locked (?:exclusively )?by PID (\d+) on (\S+) by (\S+)")
_LOCK_AGE = re.compile(r"lock was created at ([0-9-]+ [0-9:]+) \(([^)]+) ago\)")


def lock_holder(stderr: str) -> str:
    """``PID 18139 on vm by root, since 2026-11-27 13:32:23`` from restic's lock message, or ''."""
    match = _LOCK.search(stderr)
    if not match:
        return ""
    holder = f"PID {match.group(1)} on {match.group(2)} by {match.group(3)}"
    age = _LOCK_AGE.search(stderr)
    if age:
        holder += f", since {age.group(1)} ({age.group(2)} ago)"
    return holder
