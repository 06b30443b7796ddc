"""Sample drills: sample size, reservoir + largest-files sampler, byte budget, include patterns."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preuve.drills.sampling import Sample, Sampler, include_pattern, large_file_count, sample_size
from preuve.restic.parse import Node

GiB = 1024**3
MiB = 1024**2
UNLIMITED = 2**62


def node(index: int, size: int = 1000, kind: str = "file", prefix: str = "/data/f") -> Node:
    return Node(path=f"{prefix}{index:07d}", type=kind, size=size, mtime=None)


def run(
    nodes: list[Node],
    n: int = 459,
    *,
    max_bytes: int = UNLIMITED,
    share: float = 0.1,
    seed: int | bytes | str = 7,
    must: frozenset[str] = frozenset(),
) -> Sample:
    sampler = Sampler(n, max_bytes, share, seed, set(must))
    for item in nodes:
        sampler.offer(item)
    return sampler.result()


# -- sample_size ------------------------------------------------------------------------------------------


def test_sample_size_defaults_and_documented_values() -> None:
    assert sample_size() == 459
    assert sample_size(0.99, 0.01) == 459
    assert sample_size(0.95, 0.05) == 59
    assert sample_size(0.9, 0.1) == 22


@pytest.mark.parametrize(("confidence", "defect_rate"), [(0.99, 0.01), (0.95, 0.05), (0.999, 0.001), (0.5, 0.5)])
def test_sample_size_is_the_smallest_that_gives_the_confidence(confidence: float, defect_rate: float) -> None:
    n = sample_size(confidence, defect_rate)
    assert 1 - (1 - defect_rate) ** n >= confidence
    assert 1 - (1 - defect_rate) ** (n - 1) < confidence


@pytest.mark.parametrize(("confidence", "defect_rate"), [(0, 0.01), (1, 0.01), (0.99, 0), (0.99, 1), (1.5, 0.1)])
def test_sample_size_rejects_rates_outside_zero_one(confidence: float, defect_rate: float) -> None:
    with pytest.raises(ValueError):
        sample_size(confidence, defect_rate)


def test_large_file_count_rounds_up() -> None:
    assert large_file_count(459, 0.1) == 46
    assert large_file_count(459, 0.0) == 0
    assert large_file_count(10, 1.0) == 10


# -- Sampler ----------------------------------------------------------------------------------------------


def test_all_files_are_chosen_when_the_snapshot_has_fewer_than_n() -> None:
    files = [node(i, size=i) for i in range(100)]
    sample = run(files)
    assert sample.paths == tuple(f.path for f in files)  # sorted by path, each once
    assert sample.files_total == 100
    assert sample.bytes_total == sum(range(100))
    assert sample.sample_bytes == sample.bytes_total
    assert sample.uniform_count == 100
    assert not sample.budget_limited and sample.dropped == 0
    assert sample.confidence(0.01) == 1.0


def test_exactly_n_files_are_all_chosen() -> None:
    files = [node(i) for i in range(459)]
    assert len(run(files).nodes) == 459


def test_only_regular_files_are_sampled_but_everything_is_counted() -> None:
    items = [
        Node("/data", "dir", 0, None),
        Node("/data/link", "symlink", 0, None),
        Node("/data/fifo", "fifo", 0, None),
        node(1, size=10),
        node(2, size=0),  # empty files are sampled: they must come back too
    ]
    sample = run(items)
    assert sample.paths == ("/data/f0000001", "/data/f0000002")
    assert sample.files_total == 2
    assert sample.bytes_total == 10
    assert sample.other_nodes == 3


def test_empty_snapshot() -> None:
    sample = run([])
    assert sample.nodes == ()
    assert sample.files_total == 0
    assert sample.confidence(0.01) == 1.0


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    files = [node(i, size=(i * 7919) % 100_000) for i in range(20_000)]
    first = run(files, seed="drill-12/snapshot-ab12cd")
    again = run(files, seed="drill-12/snapshot-ab12cd")
    other = run(files, seed="drill-13/snapshot-ab12cd")
    assert first.paths == again.paths
    assert first.paths != other.paths
    assert run(files, seed=b"\x00\x01").paths == run(files, seed=b"\x00\x01").paths
    assert run(files, seed=42).paths != run(files, seed=43).paths


def test_uniform_part_has_n_picks_and_the_large_part_k_more() -> None:
    files = [node(i, size=i) for i in range(10_000)]
    sample = run(files, n=459, share=0.1)
    assert sample.uniform_count == 459
    # The 46 largest are the last 46 files; a uniform pick may coincide with one of them.
    largest = {f.path for f in files[-46:]}
    assert largest <= set(sample.paths)
    assert len(sample.nodes) == len(set(sample.paths)) <= 459 + 46
    assert sample.confidence(0.01) >= 0.99


def test_large_files_are_always_represented() -> None:
    rng = random.Random(1)
    files = [node(i, size=rng.randint(0, 64 * 1024)) for i in range(10_000)]
    huge_positions = rng.sample(range(10_000), 20)
    for position in huge_positions:
        files[position] = node(position, size=rng.randint(5, 50) * GiB)
    huge = {files[p].path for p in huge_positions}

    sample = run(files, n=459, share=0.1)
    # A uniform draw of 459 in 10,000 expects under one of the 20; the large-file stratum takes them all.
    assert huge <= set(sample.paths)

    # Under a 60 GiB budget several huge files cannot all fit, but the smallest huge one that fits is kept.
    limited = run(files, n=459, share=0.1, max_bytes=60 * GiB)
    kept_huge = huge & set(limited.paths)
    assert limited.budget_limited
    assert limited.sample_bytes <= 60 * GiB
    assert len(kept_huge) >= 1
    smallest_huge = min(files[p].size for p in huge_positions)
    assert smallest_huge in {n.size for n in limited.nodes}


def test_smallest_large_representative_kept_even_when_budget_is_tight() -> None:
    small = [node(i, size=MiB) for i in range(2000)]
    big = [node(10_000 + i, size=(100 + i) * MiB) for i in range(10)]
    sample = run(small + big, n=100, share=0.1, max_bytes=150 * MiB)
    assert sample.budget_limited
    assert sample.sample_bytes <= 150 * MiB
    assert [n.size for n in sample.nodes if n.size > MiB] == [100 * MiB]  # the smallest large file
    assert sample.uniform_count == 50  # the room left: 50 files of 1 MiB
    assert sample.max_uniform_size == MiB


def test_must_include_is_always_kept() -> None:
    files = [node(i) for i in range(100_000)]
    canaries = {files[12_345].path, files[99_999].path}
    sample = run(files, n=10, share=0.0, must=frozenset(canaries))
    assert canaries <= set(sample.paths)
    assert sample.must_include_count == 2
    assert sample.missing_must_include == frozenset()


def test_must_include_is_kept_even_over_budget_and_reported() -> None:
    files = [node(i, size=MiB) for i in range(1000)]
    canary = node(5000, size=10 * MiB)
    sample = run([*files, canary], n=50, share=0.1, max_bytes=5 * MiB, must=frozenset({canary.path, "/gone"}))
    assert canary.path in sample.paths
    assert sample.budget_limited
    assert sample.sample_bytes > 5 * MiB  # the canary alone is over: reported, not silently dropped
    assert sample.paths == (canary.path,)
    assert sample.missing_must_include == frozenset({"/gone"})


def test_must_include_that_is_not_a_regular_file_is_reported_missing() -> None:
    sample = run([Node("/data/canary", "dir", 0, None)], must=frozenset({"/data/canary"}))
    assert sample.nodes == ()
    assert sample.missing_must_include == frozenset({"/data/canary"})


def test_budget_is_respected_and_largest_picks_go_first() -> None:
    rng = random.Random(3)
    files = [node(i, size=rng.randint(1, 10) * MiB) for i in range(5000)]
    full = run(files, n=459, share=0.0)
    limited = run(files, n=459, share=0.0, max_bytes=500 * MiB)
    assert full.sample_bytes > 500 * MiB
    assert limited.budget_limited
    assert limited.sample_bytes <= 500 * MiB
    assert limited.sample_bytes == sum(n.size for n in limited.nodes)
    assert limited.dropped == len(full.nodes) - len(limited.nodes) > 0
    assert set(limited.paths) <= set(full.paths)  # same draw, only trimmed
    dropped_sizes = [n.size for n in full.nodes if n.path not in set(limited.paths)]
    assert max(n.size for n in limited.nodes) <= min(dropped_sizes)
    assert limited.uniform_count == len(limited.nodes)
    assert limited.confidence(0.01) < full.confidence(0.01)


def test_budget_not_limited_when_it_fits() -> None:
    files = [node(i, size=1000) for i in range(5000)]
    sample = run(files, n=459, share=0.1, max_bytes=(459 + 46) * 1000)
    assert not sample.budget_limited
    assert sample.dropped == 0
    assert sample.max_uniform_size is None


def test_same_path_offered_twice_is_chosen_once() -> None:
    files = [node(i % 10) for i in range(30)]
    sample = run(files, n=459, share=0.5)
    assert len(sample.paths) == len(set(sample.paths)) == 10


def test_n_zero_keeps_only_canaries() -> None:
    files = [node(i) for i in range(100)]
    sample = run(files, n=0, share=0.5, must=frozenset({files[3].path}))
    assert sample.paths == (files[3].path,)
    assert sample.uniform_count == 0


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Sampler(-1, 10, 0.1, 1, set())
    with pytest.raises(ValueError):
        Sampler(10, -1, 0.1, 1, set())
    with pytest.raises(ValueError):
        Sampler(10, 10, 1.5, 1, set())


def test_memory_stays_bounded_by_the_sample_over_a_million_files() -> None:
    n, share = 459, 0.1
    must = {"/data/f0000777", "/data/f0999999"}
    sampler = Sampler(n, UNLIMITED, share, "memory", must)
    bound = n + large_file_count(n, share) + len(must)
    highest = 0

    def stream() -> Iterator[Node]:
        for i in range(1_000_000):
            yield Node(f"/data/f{i:07d}", "file", i % 4096, None)

    for item in stream():
        sampler.offer(item)
        held = sampler.held
        if held > highest:
            highest = held
    assert highest <= bound
    sample = sampler.result()
    assert sample.files_total == 1_000_000
    assert len(sample.nodes) <= bound
    assert must <= set(sample.paths)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_uniform_part_is_roughly_uniform(seed: int) -> None:
    # 5,000 of 100,000 files: each tenth of the listing should hold about 500 picks. A chi-square with 9
    # degrees of freedom is above 40 with probability ~5e-6; the seeds are fixed, so this cannot flake.
    files_total, n, buckets = 100_000, 5000, 10
    sampler = Sampler(n, UNLIMITED, 0.0, seed, set())
    for i in range(files_total):
        sampler.offer(Node(f"/d/{i:06d}", "file", 1, None))
    picks = [int(path.rsplit("/", 1)[1]) for path in sampler.result().paths]
    assert len(picks) == n
    counts = [0] * buckets
    for pick in picks:
        counts[pick * buckets // files_total] += 1
    expected = n / buckets
    chi_square = sum((c - expected) ** 2 / expected for c in counts)
    assert chi_square < 40, counts
    # Algorithm R's classic bug (favouring the end, or the start) would show here first.
    assert 400 < counts[0] < 600 and 400 < counts[-1] < 600


def test_every_file_has_the_same_chance_across_seeds() -> None:
    # 20 files, 5 picks, 4,000 draws: each file expected 1,000 times.
    hits = [0] * 20
    for seed in range(4000):
        sampler = Sampler(5, UNLIMITED, 0.0, seed, set())
        for i in range(20):
            sampler.offer(Node(f"/{i:02d}", "file", 1, None))
        for path in sampler.result().paths:
            hits[int(path[1:])] += 1
    assert all(850 < h < 1150 for h in hits), hits


file_nodes = st.builds(
    Node,
    path=st.integers(0, 60).map(lambda i: f"/p/{i}"),
    type=st.sampled_from(["file", "file", "file", "dir", "symlink"]),
    size=st.integers(0, 10_000),
    mtime=st.none(),
)


@settings(max_examples=200, deadline=None)
@given(
    nodes=st.lists(file_nodes, max_size=120),
    n=st.integers(0, 30),
    share=st.floats(0, 1),
    max_bytes=st.integers(0, 200_000),
    seed=st.integers(0, 2**32),
    must_indexes=st.sets(st.integers(0, 70), max_size=5),
)
def test_sample_properties(
    nodes: list[Node], n: int, share: float, max_bytes: int, seed: int, must_indexes: set[int]
) -> None:
    must = {f"/p/{i}" for i in must_indexes}
    sampler = Sampler(n, max_bytes, share, seed, must)
    for item in nodes:
        sampler.offer(item)
        assert sampler.held <= n + sampler.k + len(must)
    sample = sampler.result()
    offered_files = {item.path for item in nodes if item.type == "file"}
    paths = sample.paths
    assert set(paths) <= offered_files
    assert len(paths) == len(set(paths))
    assert all(item.type == "file" for item in sample.nodes)
    assert len(paths) <= n + large_file_count(n, share) + len(must)
    assert (must & offered_files) <= set(paths)
    assert sample.missing_must_include == frozenset(must - offered_files)
    assert sample.sample_bytes == sum(item.size for item in sample.nodes)
    must_bytes = sum(item.size for item in sample.nodes if item.path in must)
    if sample.sample_bytes > max_bytes:
        assert sample.budget_limited
        assert sample.sample_bytes == must_bytes  # only the canaries can push it over
    # restic never lists a path twice in one snapshot; when the generator repeats one, the reservoir may hold
    # both copies and the sample then has fewer distinct paths than n
    if sum(1 for item in nodes if item.type == "file") <= n and not sample.budget_limited:
        assert set(paths) == offered_files
    assert sample.files_total == sum(1 for item in nodes if item.type == "file")
    assert 0.0 <= sample.confidence(0.01) <= 1.0


# -- include_pattern --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/srv/plain.txt", "/srv/plain.txt"),
        ("/srv/[draft] *v2?.txt", r"/srv/\[draft\] \*v2\?.txt"),
        ("/srv/a\\b.txt", r"/srv/a\\b.txt"),
        ("/srv/Café.txt", "/srv/Café.txt"),
        ("/srv/spaces in name.txt", "/srv/spaces in name.txt"),
        ("/srv/[dir]/x]y.txt", r"/srv/\[dir\]/x\]y.txt"),
        ("/srv/!bang", "/srv/!bang"),
        ("/srv/**/x", r"/srv/\*\*/x"),
    ],
)
def test_include_pattern_escapes_glob_characters(path: str, pattern: str) -> None:
    assert include_pattern(path) == pattern


@pytest.mark.parametrize("path", ["", "relative/file.txt", "*"])
def test_include_pattern_needs_an_absolute_path(path: str) -> None:
    with pytest.raises(ValueError):
        include_pattern(path)


@given(st.text(min_size=1).map(lambda s: "/" + s))
def test_include_pattern_round_trips_and_leaves_no_bare_wildcard(path: str) -> None:
    pattern = include_pattern(path)
    assert re.sub(r"\\(.)", r"\1", pattern, flags=re.DOTALL) == path
    # Every special character is preceded by an (unescaped) backslash.
    stripped = re.sub(r"\\.", "", pattern, flags=re.DOTALL)
    assert not set(stripped) & set("\\*?[]")
