"""Which files a sample drill restores: a uniform random sample, the largest files and the canaries.

Statistical meaning
-------------------
The uniform part is a simple random sample without replacement of ``n`` regular files of the snapshot. If a
share ``p`` (the *defect rate*) of the snapshot's files would fail to restore, the probability that the
sample contains none of them is at most ``(1 - p) ** n`` (sampling without replacement only lowers it).
Choosing ``n = ceil(ln(1 - confidence) / ln(1 - p))`` therefore makes a passed drill mean: "with probability
at least ``confidence``, fewer than ``p`` of the files are unrestorable". With the defaults (99 %, 1 %) that
is 459 files, whatever the size of the snapshot. It says nothing about a *single* damaged file among
millions: that is what ``restic check --read-data`` and full-restore drills are for.

Two strata are added on top of the uniform part and do not count towards the guarantee:

* the ``k = ceil(n * large_file_share)`` largest files, because a uniform draw almost never picks the few
  huge files (mailbox archives, database dumps, disk images) whose loss hurts most and which touch the most
  packs;
* the canaries (``must_include``), files whose content the provider declared and which are always restored.

Memory stays O(n + k + canaries) however many files the snapshot holds: the uniform part is reservoir
sampling (Vitter's algorithm R) and the large part a min-heap of size ``k``; nodes are offered one at a time
as they stream from ``restic ls --json``.

The byte budget (``max_bytes``) can force files out; largest first, which keeps the most files. The uniform
picks that remain are then a uniform sample of the files *up to the size of the largest kept pick*, so the
guarantee still holds for those files, with ``uniform_count`` draws instead of ``n`` (see
:meth:`Sample.confidence`).

The draw is deterministic given the seed and the listing order (restic lists a tree in a fixed order): a
re-run of the same drill (seeded with drill id + snapshot id) restores the same files.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from preuve.restic.parse import Node

# Bump when the draw changes, so that an old seed never silently names a different sample.
_SEED_DOMAIN = b"preuve.sampling.v1\0"


def sample_size(confidence: float = 0.99, defect_rate: float = 0.01) -> int:
    """Files to draw so that ``defect_rate`` or more bad files are caught with probability ``confidence``.

    ``n = ceil(ln(1 - confidence) / ln(1 - defect_rate))``: 459 for 99 % / 1 %, 59 for 95 % / 5 %.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be strictly between 0 and 1")
    if not 0 < defect_rate < 1:
        raise ValueError("defect_rate must be strictly between 0 and 1")
    # log1p keeps precision for the small rates that matter (ln(1 - 0.0001) in plain log loses digits).
    exact = math.log1p(-confidence) / math.log1p(-defect_rate)
    # Guard against 458.0000000001 becoming 459 through floating-point noise on an exact ratio.
    return max(1, math.ceil(exact - 1e-9))


def large_file_count(n: int, large_file_share: float) -> int:
    """``k``, the number of largest files kept besides the uniform sample."""
    return math.ceil(n * large_file_share)


def _rng(seed: int | bytes | str) -> random.Random:
    """A generator seeded from a hash, so that any seed type gives a well-spread, version-stable state."""
    if isinstance(seed, int):
        raw = b"i" + str(seed).encode()
    elif isinstance(seed, str):
        raw = b"s" + seed.encode("utf-8", "surrogateescape")
    else:
        raw = b"b" + bytes(seed)
    digest = hashlib.sha256(_SEED_DOMAIN + raw).digest()
    # Not for security: a reproducible draw is the point, and nothing secret depends on it.
    return random.Random(int.from_bytes(digest, "big"))  # noqa: S311


@dataclass(frozen=True)
class Sample:
    """The files a drill restores, with what is needed to state what the drill proved."""

    nodes: tuple[Node, ...]  # sorted by path, one per path
    files_total: int  # regular files offered
    bytes_total: int  # their total size
    sample_bytes: int  # total size of ``nodes``
    budget_limited: bool  # files were dropped to fit max_bytes (or the canaries alone exceed it)
    dropped: int  # how many chosen files were dropped for the budget
    uniform_count: int  # uniform picks kept: the ``n`` of the guarantee
    large_count: int  # large-file picks kept that are neither uniform picks nor canaries
    must_include_count: int  # canaries found and kept
    missing_must_include: frozenset[str]  # canary paths never offered (not a regular file in the snapshot)
    max_uniform_size: int | None  # set when uniform picks were dropped: the guarantee covers files up to it
    other_nodes: int = 0  # directories, symlinks and other non-regular entries offered (not sampled)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(node.path for node in self.nodes)

    def confidence(self, defect_rate: float) -> float:
        """Lower bound of the chance that a ``defect_rate`` share of bad files shows in the uniform part."""
        if self.files_total == 0 or self.uniform_count >= self.files_total:
            return 1.0  # every file was restored: nothing left to chance
        return 1.0 - (1.0 - defect_rate) ** self.uniform_count


class Sampler:
    """Streams a snapshot's nodes and keeps a bounded sample; see the module docstring for what it means.

    ``offer`` each node of ``restic ls --json`` once, in listing order, then call ``result``.
    """

    def __init__(
        self,
        n: int,
        max_bytes: int,
        large_file_share: float,
        seed: int | bytes | str,
        must_include: Iterable[str] = frozenset(),
    ) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        if not 0 <= large_file_share <= 1:
            raise ValueError("large_file_share must be between 0 and 1")
        self.n = n
        self.k = large_file_count(n, large_file_share)
        self.max_bytes = max_bytes
        self.must_include = frozenset(must_include)
        self._rng = _rng(seed)
        self._reservoir: list[Node] = []
        # Min-heap of (size, sequence, node): the root is the smallest of the k largest, the one to evict.
        # The sequence number breaks size ties deterministically (earlier listed wins) and keeps Nodes,
        # which are not orderable, out of comparisons.
        self._largest: list[tuple[int, int, Node]] = []
        self._must: dict[str, Node] = {}
        self.files_total = 0
        self.bytes_total = 0
        self.other_nodes = 0

    @property
    def held(self) -> int:
        """Nodes held in memory right now; never more than ``n + k + len(must_include)``."""
        return len(self._reservoir) + len(self._largest) + len(self._must)

    def offer(self, node: Node) -> None:
        if node.type != "file":
            # Directories come back with their files; symlinks and devices have no content to verify.
            self.other_nodes += 1
            return
        self.files_total += 1
        self.bytes_total += node.size
        if node.path in self.must_include:
            self._must.setdefault(node.path, node)
        self._offer_uniform(node)
        self._offer_large(node)

    def offer_all(self, nodes: Iterable[object]) -> None:
        """Offer every :class:`Node` of an ``iter_ls`` stream; snapshots and unknown lines are skipped."""
        for item in nodes:
            if isinstance(item, Node):
                self.offer(item)

    def _offer_uniform(self, node: Node) -> None:
        # Algorithm R: after i files, each has been kept with probability n / i.
        if self.n == 0:
            return
        if len(self._reservoir) < self.n:
            self._reservoir.append(node)
            return
        slot = self._rng.randrange(self.files_total)
        if slot < self.n:
            self._reservoir[slot] = node

    def _offer_large(self, node: Node) -> None:
        if self.k == 0:
            return
        entry = (node.size, self.files_total, node)
        if len(self._largest) < self.k:
            heapq.heappush(self._largest, entry)
        elif node.size > self._largest[0][0]:
            heapq.heapreplace(self._largest, entry)

    def result(self) -> Sample:
        must = dict(self._must)
        uniform = {node.path: node for node in self._reservoir}
        large = {entry[2].path: entry[2] for entry in self._largest}
        chosen: dict[str, Node] = {**large, **uniform, **must}

        must_bytes = sum(node.size for node in must.values())
        total = sum(node.size for node in chosen.values())
        dropped: set[str] = set()
        if total > self.max_bytes:
            # Keep one large file if any can fit next to the canaries: the smallest of the largest files.
            room = self.max_bytes - must_bytes
            fitting = sorted(
                (node for path, node in large.items() if path not in must and node.size <= room),
                key=lambda node: (node.size, node.path),
            )
            reserved = fitting[0].path if fitting else None
            # Largest first: each drop frees the most bytes, so the most files survive.
            droppable = sorted(
                (node for path, node in chosen.items() if path not in must and path != reserved),
                key=lambda node: (-node.size, node.path),
            )
            for node in droppable:
                if total <= self.max_bytes:
                    break
                dropped.add(node.path)
                total -= node.size
        kept = sorted((node for path, node in chosen.items() if path not in dropped), key=lambda node: node.path)
        uniform_kept = [node for node in kept if node.path in uniform]
        uniform_dropped = any(path in uniform for path in dropped)
        not_large_only = uniform.keys() | must.keys()
        return Sample(
            nodes=tuple(kept),
            files_total=self.files_total,
            bytes_total=self.bytes_total,
            sample_bytes=total,
            budget_limited=bool(dropped) or total > self.max_bytes,
            dropped=len(dropped),
            uniform_count=len(uniform_kept),
            large_count=sum(1 for node in kept if node.path in large and node.path not in not_large_only),
            must_include_count=len(must),
            missing_must_include=self.must_include - must.keys(),
            max_uniform_size=(max((node.size for node in uniform_kept), default=0) if uniform_dropped else None),
            other_nodes=self.other_nodes,
        )


_GLOB_SPECIAL = frozenset("\\*?[]")


def include_pattern(path: str) -> str:
    """A ``restic restore --include`` pattern that matches exactly the file at ``path`` (as ``ls`` prints it).

    restic's filter package cleans the pattern, splits it on ``/`` and matches each component with Go's
    ``filepath.Match``: ``*``, ``?`` and ``[...]`` are wildcards and a backslash quotes the next character (on
    Unix). Those characters are backslash-escaped here; ``]`` too, harmless and safer. Unescaped, a name like
    ``a\\b.txt`` matches ``ab.txt`` and ``[draft] x.txt`` matches ``d x.txt``: the drill would check the wrong
    file, or none. A pattern starting with ``!`` is a negation, but an absolute path never starts with one. A
    relative pattern matches at any depth and an empty one everything, so only absolute paths are accepted.

    restic exits 0 when an include matches nothing: the caller must check that each file came back. Checked
    against restic 0.14 in tests/integration/test_include_pattern.py.
    """
    if not path.startswith("/"):
        raise ValueError(f"include_pattern needs an absolute snapshot path, got {path!r}")
    return "".join("\\" + char if char in _GLOB_SPECIAL else char for char in path)
