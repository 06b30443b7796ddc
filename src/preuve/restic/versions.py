"""restic versions and what each one can do.

Preuve must read results from restic 0.14 (Debian 12) to 0.19. Features are looked up by minimum version rather
than tested for, so that a parser never guesses which format it is reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"restic\s+(\d+)\.(\d+)\.(\d+)(\S*)")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int
    suffix: str = ""

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}{self.suffix}"

    def at_least(self, minimum: tuple[int, int, int]) -> bool:
        return (self.major, self.minor, self.patch) >= minimum


# feature -> first version that has it (from restic's changelogs; 0.14 behaviour checked in RESTIC.md)
FEATURES: dict[str, tuple[int, int, int]] = {
    "restore_json": (0, 16, 0),  # restore --json prints status/summary/error lines
    # restore prints through a status goroutine: its first stdout line no longer holds it back before it writes
    # files (before 0.16 a plain blocking write does; see preuve.drills.prestart)
    "restore_async_output": (0, 16, 0),
    "ls_message_type": (0, 17, 0),  # ls --json tags lines with message_type (struct_type before)
    "restore_include_file": (0, 17, 0),  # restore --include-file
    "exit_code_no_repo": (0, 17, 0),  # exit 10: repository does not exist
    "exit_code_locked": (0, 17, 0),  # exit 11: failed to lock repository
    "exit_code_wrong_password": (0, 17, 1),  # exit 12: wrong password
    "check_json": (0, 18, 0),  # check --json with a summary message
    "exit_error_json": (0, 18, 0),  # {"message_type":"exit_error"} on stderr with --json
}

MINIMUM_SUPPORTED = Version(0, 14, 0)


def parse_version(text: str) -> Version:
    """`restic version` prints e.g. ``restic 0.14.0 compiled with go1.19.8 on linux/amd64``."""
    match = _VERSION.search(text)
    if not match:
        raise ValueError(f"cannot read a restic version from {text.strip()[:80]!r}")
    return Version(int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4))


def has(version: Version, feature: str) -> bool:
    return version.at_least(FEATURES[feature])
