"""Integrity runs: `restic check --read-data-subset=n/t` on a rotation, so every pack is read within a window.

A sampled restore reads only the packs its files live in; damage elsewhere stays unseen until the day it is
needed. Reading one part in t of the repository at each run, cycling through the parts, reads every pack within
t runs at a fraction of the cost of `check --read-data`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from preuve.drills.result import Finding
from preuve.errors import FailureClass

_SUBSET = re.compile(r"^(\d+)/(\d+)$")
# stderr lines of `check` that name what is damaged (RESTIC.md section 5)
_DAMAGE = re.compile(
    r"(Pack ID does not match.*|pack \w+: does not exist|pack \w+:? .*unexpected file size.*|"
    r"error for tree \w+.*|.*ciphertext verification failed.*|.*not found in (?:index|repository).*|"
    r"pack \w+ failed to download.*|.*decrypting blob .* failed.*)"
)
_PACK = re.compile(r"\bpack (\w{8,64})\b|want (\w{8,64})")


@dataclass(frozen=True)
class Subset:
    part: int  # 1-based
    parts: int

    def __str__(self) -> str:
        return f"{self.part}/{self.parts}"

    @classmethod
    def parse(cls, text: str) -> Subset:
        match = _SUBSET.match(text.strip())
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise ValueError(f"{text!r} is not a subset n/t with 1 <= n <= t")
        return cls(int(match.group(1)), int(match.group(2)))


def parts_for(window: timedelta, cadence: timedelta) -> int:
    """How many parts, so that one run per ``cadence`` reads them all within ``window`` (at least 1)."""
    if cadence <= timedelta(0):
        return 1
    return max(1, math.floor(window / cadence))


def next_subset(parts: int, history: Iterable[tuple[str, datetime]]) -> Subset:
    """The part read longest ago (or never) among 1..parts; ``history`` holds (subset, when) of passed runs.

    Runs made with another number of parts do not count: their parts cover other slices of the repository.
    """
    last_read: dict[int, datetime] = {}
    for text, when in history:
        try:
            subset = Subset.parse(text)
        except ValueError:
            continue
        if subset.parts == parts and (subset.part not in last_read or when > last_read[subset.part]):
            last_read[subset.part] = when
    never = [n for n in range(1, parts + 1) if n not in last_read]
    if never:
        return Subset(never[0], parts)
    return Subset(min(last_read, key=lambda n: (last_read[n], n)), parts)


def check_findings(stderr: str) -> list[Finding]:
    """One finding per damaged pack or tree that `check` named."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for line in stderr.splitlines():
        match = _DAMAGE.search(line)
        if not match:
            continue
        detail = line.strip()[:300]
        pack = _PACK.search(line)
        where = f"pack {pack.group(1) or pack.group(2)}" if pack else "repository"
        key = f"{where}:{detail}"
        if key in seen:
            continue
        seen.add(key)
        findings.append(Finding(where, FailureClass.CORRUPT_DATA, detail))
    return findings
