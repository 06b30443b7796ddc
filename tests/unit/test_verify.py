"""The verifier on real files: one read per restored file gives its hash, its content checks and, for a local
source, a byte-for-byte comparison with the live file; the fast entropy pre-check never changes a verdict."""

from __future__ import annotations

import hashlib
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from preuve.drills import content, verify
from preuve.drills.checking import Verification
from preuve.drills.content import BLOCK, check_blocks, check_file, looks_random, may_look_random
from preuve.drills.sources import LocalSource, SourceMap
from preuve.drills.verify import CHUNK, Expected, Verifier, _read_once
from preuve.errors import FailureClass, PreuveError

MTIME = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
ENGLISH = b"It is a truth universally acknowledged, that a single man in possession of a good fortune.\n"
FRENCH = "Le chantier de la réunion a été déplacé ; facture n° 12 à régler avant l'été.\n".encode()


def noise(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = MTIME.timestamp()
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    """A live source under src/ and its restored copy under restore/<src>."""
    source, restore = tmp_path / "src", tmp_path / "restore"
    source.mkdir()
    restore.mkdir()
    return source, restore


def restored(source: Path, restore: Path, rel: str, data: bytes, live: bytes | None = None) -> Expected:
    put(source, rel, data if live is None else live)
    put(restore, str(source / rel).lstrip("/"), data)
    return Expected(str(source / rel), len(data), MTIME)


def verifier(source: Path, restore: Path, **options: object) -> Verifier:
    return Verifier(
        restore,
        canaries={},
        source=LocalSource(),
        source_map=SourceMap(str(source), (str(source),)),
        **options,  # type: ignore[arg-type]
    )


# -- one read ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK, CHUNK - 7, CHUNK, CHUNK + 1, 3 * CHUNK + 12345])
def test_one_read_gives_the_hash_and_the_blocks_check_file_reads(tmp_path: Path, size: int) -> None:
    data = (ENGLISH * (size // len(ENGLISH) + 1))[:size]
    path = put(tmp_path, "big.txt", data)
    read = _read_once(path, size, middle=True, live=None)
    assert read.digest == hashlib.sha256(data).hexdigest()
    assert read.head == data[:BLOCK]
    where = content.middle_range(size)
    assert read.mid == (data[where[0] : where[0] + where[1]] if where else b"")
    assert read.same_as_live is None


@pytest.mark.parametrize(
    ("live", "same"),
    [
        (lambda d: d, True),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), False),  # last byte
        (lambda d: bytes([d[0] ^ 1]) + d[1:], False),  # first byte
        (lambda d: d[:CHUNK] + b"x" + d[CHUNK + 1 :], False),  # first byte of the second chunk
        (lambda d: d + b"more", False),  # longer
        (lambda d: d[:-1], False),  # shorter
    ],
)
def test_comparison_with_the_live_file_is_byte_for_byte(tmp_path: Path, live: object, same: bool) -> None:
    data = noise(2 * CHUNK + 100)
    path = put(tmp_path, "a.bin", data)
    other = put(tmp_path, "live.bin", live(data))  # type: ignore[operator]
    assert _read_once(path, len(data), middle=False, live=other).same_as_live is same


def test_an_unreadable_live_file_is_said_so_not_compared(tmp_path: Path) -> None:
    path = put(tmp_path, "a.bin", b"abc")
    read = _read_once(path, 3, middle=False, live=tmp_path / "missing.bin")
    assert read.same_as_live is None
    assert read.live_error


# -- verdicts ------------------------------------------------------------------------------------------------


def test_same_size_and_mtime_but_other_bytes_is_a_content_mismatch_naming_both_digests(
    trees: tuple[Path, Path],
) -> None:
    source, restore = trees
    data = noise(CHUNK + 5000, 1)
    live = data[:700] + b"X" + data[701:]
    expected = restored(source, restore, "Compta/a.bin", data, live=live)
    outcome = verifier(source, restore).check_one(expected)
    assert [f.failure_class for f in outcome.findings] == [FailureClass.CONTENT_MISMATCH]
    detail = outcome.findings[0].detail
    assert hashlib.sha256(data).hexdigest()[:16] in detail
    assert hashlib.sha256(live).hexdigest()[:16] in detail
    assert outcome.digest == hashlib.sha256(data).hexdigest()


def test_identical_and_changed_live_files(trees: tuple[Path, Path]) -> None:
    source, restore = trees
    same = restored(source, restore, "same.txt", ENGLISH * 50)
    changed = restored(source, restore, "changed.txt", ENGLISH * 50, live=ENGLISH * 51)  # size differs
    check = verifier(source, restore)
    assert check.check_one(same).findings == [] and not check.check_one(same).changed
    assert check.check_one(changed).findings == [] and check.check_one(changed).changed


def test_content_checks_and_canaries_still_apply(trees: tuple[Path, Path]) -> None:
    source, restore = trees
    encrypted = restored(source, restore, "notes.txt", noise(20_000, 2))
    canary = restored(source, restore, ".preuve-canary", b"canary\n")
    check = Verifier(restore, canaries={canary.path: "0" * 64})
    outcome = check.check_one(encrypted)
    assert [f.failure_class for f in outcome.findings] == [FailureClass.SUSPICIOUS_CONTENT]
    assert outcome.suspicious
    assert [f.failure_class for f in check.check_one(canary).findings] == [FailureClass.CONTENT_MISMATCH]


def test_discard_removes_each_checked_file_and_keeps_the_report(trees: tuple[Path, Path]) -> None:
    source, restore = trees
    items = [restored(source, restore, f"d{i % 3}/f{i}.txt", ENGLISH * (i + 1)) for i in range(40)]
    missing = Expected(str(source / "gone.txt"), 10, MTIME)
    report = verifier(source, restore, discard=True, workers=2).verify([*items, missing])
    assert report.files_checked == 41 and report.files_missing == 1
    assert [f.failure_class for f in report.findings] == [FailureClass.CORRUPT_DATA]
    assert not [p for p in restore.rglob("*") if p.is_file()]
    kept = verifier(source, restore, workers=1)
    assert kept.discard is False


# -- the entropy pre-check -----------------------------------------------------------------------------------


def samples() -> list[bytes]:
    out = [b"", b"a", bytes(300), ENGLISH * 3, FRENCH * 5, FRENCH * 1000]
    rng = random.Random(7)
    for size in (255, 256, 257, 300, 511, 512, 700, 1024, 2047, 4096, 5000, 8191, 8192, 9000, BLOCK):
        out.append(noise(size, size))
        out.append(bytes(rng.randrange(128) for _ in range(size)))  # 7-bit noise: ASCII, high entropy
        out.append(bytes(rng.randrange(200) for _ in range(size)))
        out.append((FRENCH * (size // len(FRENCH) + 1))[:size])
    return out


@pytest.mark.parametrize("threshold", [4.0, 6.5, 7.0, 7.2, 7.5, 7.8, 7.95])
def test_the_pre_check_never_hides_what_looks_random(threshold: float) -> None:
    for data in samples():
        assert content.entropy_upper_bound(data) >= content.shannon_entropy(data) - 1e-9
        if looks_random(data, threshold)[0]:
            assert may_look_random(data, threshold), (len(data), threshold)


def test_the_pre_check_skips_ordinary_text() -> None:
    assert not may_look_random(ENGLISH * 1000)
    assert not may_look_random((FRENCH * 1000)[:BLOCK])
    assert may_look_random(noise(BLOCK))


def test_check_blocks_gives_check_file_s_verdicts(tmp_path: Path) -> None:
    cases = {
        "a.pdf": b"%PDF-1.7\n" + noise(5000),
        "b.pdf": noise(5000, 3),
        "c.txt": ENGLISH * 5000,
        "d.txt": ENGLISH * 2000 + noise(3 * BLOCK, 4) + ENGLISH * 2000,
        "e.docx": b"",
        "f.locky": b"whatever",
        "g.bin": noise(100),
    }
    for name, data in cases.items():
        path = put(tmp_path, name, data)
        where = content.middle_range(len(data)) if content.needs_middle(path) else None
        mid = data[where[0] : where[0] + where[1]] if where else b""
        assert check_blocks(path, len(data), data[:BLOCK], mid) == check_file(path), name


# -- the pass beside restic's own --verify -------------------------------------------------------------------


def _tree(source: Path, restore: Path, count: int) -> list[Expected]:
    return [restored(source, restore, f"d{i % 4}/f{i}.txt", ENGLISH * (i + 1)) for i in range(count)]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _wait_done(verification: Verification) -> None:
    deadline = time.monotonic() + 30
    while verification._thread is not None and verification._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_pass_starts_at_restic_s_verifying_line_and_deletes_only_after_restic(trees: tuple[Path, Path]) -> None:
    source, restore = trees
    items = _tree(source, restore, 30)
    verification = Verification(lambda: verifier(source, restore, discard=True, workers=2), lambda: iter(items))
    verification.on_restic_line("restoring <Snapshot 1248ab24 of [/srv]> to /sandbox/restore\n")
    assert not verification.started_early
    verification.on_restic_line(f"verifying files in {restore}\n")
    assert verification.started_early
    _wait_done(verification)
    assert len(_files(restore)) == 30  # restic may still be reading them
    report = verification.result()
    assert report.files_checked == 30 and report.findings == []
    assert _files(restore) == []


def test_held_files_are_bounded_and_released(trees: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, restore = trees
    items = _tree(source, restore, 40)
    monkeypatch.setattr(verify, "MAX_HELD", 5)
    verification = Verification(lambda: verifier(source, restore, discard=True, workers=2), lambda: iter(items))
    verification.on_restic_line(f"verifying files in {restore}\n")
    time.sleep(0.3)
    assert len(_files(restore)) == 40  # workers wait rather than hold more, and delete nothing
    assert verification.result().files_checked == 40
    assert _files(restore) == []


def test_without_the_line_the_pass_runs_after_restic(trees: tuple[Path, Path]) -> None:
    source, restore = trees
    items = _tree(source, restore, 10)
    verification = Verification(lambda: verifier(source, restore, discard=True), lambda: iter(items))
    verification.on_restic_line("Fatal: There were 3 errors\n")
    assert not verification.started_early
    assert verification.result().files_checked == 10
    assert _files(restore) == []


def test_a_stopped_pass_ends_and_a_failing_one_raises_in_the_drill_thread(trees: tuple[Path, Path]) -> None:
    source, restore = trees
    items = _tree(source, restore, 200)
    verification = Verification(lambda: verifier(source, restore, discard=True), lambda: iter(items))
    verification.on_restic_line(f"verifying files in {restore}\n")
    verification.stop()
    assert verification._thread is not None and not verification._thread.is_alive()

    def broken() -> Verifier:
        raise PreuveError(FailureClass.AUTH, "cannot open the live source")

    failing = Verification(broken, lambda: iter(items))
    failing.on_restic_line(f"verifying files in {restore}\n")
    with pytest.raises(PreuveError, match="live source"):
        failing.result()
