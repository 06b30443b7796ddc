"""Content sanity checks on restored files: signatures, entropy, ransomware names, SQLite integrity."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import random
import re
import sqlite3
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from preuve.drills import content
from preuve.drills.content import (
    BLOCK,
    ContentVerdict,
    check_file,
    check_sqlite,
    looks_random,
    ransom_name,
    shannon_entropy,
)
from preuve.errors import FailureClass

ENGLISH = (
    b"It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
    b"want of a wife. However little known the feelings or views of such a man may be on his first entering "
    b"a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
    b"considered the rightful property of some one or other of their daughters.\n"
)


def noise(size: int, seed: int = 0) -> bytes:
    """Random-looking bytes, reproducible: os.urandom could, once in a while, start with a valid signature."""
    return random.Random(seed).randbytes(size)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def suspicious(verdict: ContentVerdict | None) -> str:
    assert verdict is not None
    assert verdict.failure_class is FailureClass.SUSPICIOUS_CONTENT
    return verdict.detail


# -- real files of each format -------------------------------------------------------------------------------


def make_pdf() -> bytes:
    body = b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + zlib.compress(ENGLISH * 50)
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"


def make_zip(first: str = "[Content_Types].xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(first, "<?xml version='1.0'?><Types/>")
        archive.writestr("word/document.xml", ENGLISH.decode() * 20)
        archive.writestr("word/media/image1.bin", noise(20_000, 9))
    return buffer.getvalue()


def make_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width = height = 64
    raw = b"".join(b"\x00" + noise(width * 3, row) for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_jpeg() -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + b"\xff\xda" + noise(30_000, 3) + b"\xff\xd9"


def make_sqlite(path: Path, rows: int = 3000, *, wal: bool = False) -> Path:
    with sqlite3.connect(path) as connection:
        if wal:
            connection.execute("PRAGMA journal_mode=wal")
        connection.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, blob BLOB)")
        connection.executemany(
            "INSERT INTO item (name, blob) VALUES (?, ?)",
            ((f"item {i} " + "x" * (i % 50), noise(200, i)) for i in range(rows)),
        )
        connection.execute("CREATE INDEX item_name ON item (name)")
    connection.close()
    if wal:  # fold the WAL back so that the main file alone is the database, as a backup tool would see it
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


GOOD: list[tuple[str, bytes]] = [
    ("report.pdf", make_pdf()),
    ("letter.docx", make_zip()),
    ("budget.xlsx", make_zip("[Content_Types].xml")),
    ("slides.pptx", make_zip()),
    ("minutes.odt", make_zip("mimetype")),
    ("sheet.ods", make_zip("mimetype")),
    ("talk.odp", make_zip("mimetype")),
    ("archive.zip", make_zip("readme.txt")),
    ("photo.jpg", make_jpeg()),
    ("photo.JPEG", make_jpeg()),
    ("image.png", make_png()),
    ("anim.gif", b"GIF89a\x40\x00\x40\x00\xf7\x00\x00" + noise(4000, 4)),
    ("dump.sql.gz", gzip.compress(ENGLISH * 100)),
    ("backup.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + noise(4000, 5)),
    ("backup.rar", b"Rar!\x1a\x07\x01\x00" + noise(4000, 6)),
    ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + noise(4000, 7)),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000)),
    ("scan.tif", b"II*\x00\x08\x00\x00\x00" + bytes(4000)),
    ("scan.tiff", b"MM\x00*\x00\x00\x00\x08" + bytes(4000)),
    ("icon.bmp", b"BM" + struct.pack("<I", 4000) + bytes(3994)),
    ("song.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + noise(4000, 8)),
    ("raw.mp3", b"\xff\xfb\x90\x64" + noise(4000, 10)),
    ("clip.mp4", struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + noise(4000, 11)),
    ("clip.mov", struct.pack(">I", 20) + b"ftypqt  \x00\x00\x02\x00qt  " + noise(4000, 12)),
    ("notes.txt", ENGLISH * 100),
    ("table.csv", b"id;name;amount\n" + b"".join(b"%d;client %d;%d.50\n" % (i, i, i * 3) for i in range(2000))),
    ("readme.md", b"# Title\n\n" + ENGLISH * 20),
    ("app.log", b"".join(b"2024-01-01 12:00:%02d INFO request %d served\n" % (i % 60, i) for i in range(3000))),
    ("page.html", b"<!doctype html><html><body><p>" + ENGLISH * 30 + b"</p></body></html>"),
    ("data.json", b'{"items": [' + b",".join(b'{"id": %d}' % i for i in range(3000)) + b"]}"),
    ("letter.rtf", b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}}\\f0 " + ENGLISH * 10 + b"}"),
    ("mail.eml", b"From: a@example.net\r\nSubject: hi\r\n\r\n" + ENGLISH * 10),
]


@pytest.mark.parametrize(("name", "data"), GOOD, ids=[name for name, _ in GOOD])
def test_good_files_pass(tmp_path: Path, name: str, data: bytes) -> None:
    assert check_file(write(tmp_path, name, data)) is None


@pytest.mark.parametrize(("name", "data"), GOOD, ids=[name for name, _ in GOOD])
def test_the_same_files_replaced_by_random_bytes_are_suspicious(tmp_path: Path, name: str, data: bytes) -> None:
    path = write(tmp_path, name, noise(len(data), seed=len(name)))
    detail = suspicious(check_file(path))
    assert "random-looking bytes" in detail
    assert "entropy 7." in detail


def test_verdict_reads_like_a_sentence(tmp_path: Path) -> None:
    data = noise(BLOCK * 2)
    path = write(tmp_path, "contract.pdf", data)
    assert 7.99 <= shannon_entropy(data[:BLOCK]) < 8.0  # only the first block is read for a binary kind
    assert check_file(path) == ContentVerdict(
        str(path),
        FailureClass.SUSPICIOUS_CONTENT,
        "expected a PDF header (%PDF-) but found random-looking bytes (entropy 7.99 bits/byte)",
    )


def test_wrong_but_recognised_header_is_named(tmp_path: Path) -> None:
    detail = suspicious(check_file(write(tmp_path, "invoice.pdf", make_zip())))
    assert detail.startswith("expected a PDF header (%PDF-) but found a ZIP header instead")
    detail = suspicious(check_file(write(tmp_path, "setup.docx", b"MZ\x90\x00" + bytes(2000))))
    assert "a Windows executable header instead" in detail


def test_unknown_low_entropy_header_is_shown_in_hex(tmp_path: Path) -> None:
    detail = suspicious(check_file(write(tmp_path, "photo.png", bytes(1000))))
    assert "found bytes 00 00 00 00 00 00 00 00 (entropy 0.00 bits/byte)" in detail


def test_pdf_header_may_follow_some_junk(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "scan.pdf", b"\r\n" * 100 + make_pdf())) is None
    assert check_file(write(tmp_path, "scan2.pdf", b"x" * 2000 + make_pdf())) is not None


def test_truncated_file_is_reported_as_too_short(tmp_path: Path) -> None:
    assert suspicious(check_file(write(tmp_path, "a.png", b"\x89P"))) == (
        "expected a PNG signature (89 50 4E 47 0D 0A 1A 0A) but the file holds only 2 bytes"
    )


def test_images_under_another_image_extension_pass(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "downloaded.jpg", make_png())) is None
    webp = b"RIFF" + struct.pack("<I", 4000) + b"WEBPVP8 " + noise(4000, 1)
    assert check_file(write(tmp_path, "downloaded2.jpg", webp)) is None


def test_password_protected_office_file_is_an_ole2_container(tmp_path: Path) -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + noise(8000, 2)
    assert check_file(write(tmp_path, "salaries.xlsx", ole2)) is None


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body><table><tr><td>1</td></tr></table></body></html>" * 20,  # "Export to Excel" from a web app
        b"id\tname\n" + b"1\tDupont\n" * 200,  # TSV named .xls
        b"\xff\xfe" + "id\tname\n1\tDupont\n".encode("utf-16-le") * 50,  # Excel's "Unicode text"
        b"{\\rtf1\\ansi " + ENGLISH + b"}",  # WordPad or a mail merge saving RTF as .doc
        make_zip(),  # a .docx renamed .doc
    ],
)
def test_legacy_office_names_accept_what_applications_write_under_them(tmp_path: Path, data: bytes) -> None:
    assert check_file(write(tmp_path, "export.xls", data)) is None
    assert check_file(write(tmp_path, "export.doc", data)) is None


def test_legacy_office_name_with_random_content_is_suspicious(tmp_path: Path) -> None:
    detail = suspicious(check_file(write(tmp_path, "old.ppt", noise(50_000))))
    assert detail.startswith("expected an OLE2 compound-file header")


# -- text kinds -----------------------------------------------------------------------------------------------


def test_text_with_random_bytes_is_suspicious(tmp_path: Path) -> None:
    detail = suspicious(check_file(write(tmp_path, "clients.csv", noise(20_000))))
    assert re.fullmatch(
        r"a CSV text file with random-looking bytes \(entropy 7\.9\d bits/byte\): encrypted or not text", detail
    )


def test_tiny_text_files_are_not_judged_by_entropy(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "tiny.txt", noise(255))) is None


@pytest.mark.parametrize("size", [256, 300, 512, 1024, 2048])
def test_short_random_text_is_caught_despite_the_low_entropy_estimate(tmp_path: Path, size: int) -> None:
    # 300 random bytes measure ~7.3 bits/byte, below 7.8: the estimate's bias is added back before comparing.
    for seed in range(20):
        assert check_file(write(tmp_path, "note.txt", noise(size, seed))) is not None


@pytest.mark.parametrize("size", [256, 300, 1024, 5000])
def test_short_real_text_is_not_flagged(tmp_path: Path, size: int) -> None:
    text = (ENGLISH * 100)[:size]
    assert check_file(write(tmp_path, "note.txt", text)) is None
    assert check_file(write(tmp_path, "note.b64.txt", base64.b64encode(noise(size))[:size])) is None


def test_random_block_in_the_middle_of_a_big_text_file_is_found(tmp_path: Path) -> None:
    text = ENGLISH * 4000  # ~1.6 MB
    middle = len(text) // 2
    data = text[: middle - BLOCK] + noise(2 * BLOCK) + text[middle + BLOCK :]
    detail = suspicious(check_file(write(tmp_path, "server.log", data)))
    assert "random-looking bytes in the middle of the file" in detail


def test_compressed_data_under_a_text_name_is_suspicious(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "export.json", gzip.compress(noise(10_000) + ENGLISH))) is not None


def test_custom_threshold(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", ENGLISH * 100)
    assert check_file(path, entropy_threshold=4.0) is not None
    assert check_file(path, entropy_threshold=7.8) is None


# -- names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "report.pdf.locked",
        "budget.xlsx.ENCRYPTED",
        "photo.jpg.crypt",
        "x.docx.lockbit",
        "a.ryk",
        "mail.pst.enc",
        "b.wncry",
        "c.txt.crypted",
    ],
)
def test_ransomware_extensions(tmp_path: Path, name: str) -> None:
    detail = suspicious(check_file(write(tmp_path, name, ENGLISH)))
    assert "an extension ransomware appends" in detail
    assert detail.startswith(f"file name ends in .{name.rsplit('.', 1)[1].lower()}")


@pytest.mark.parametrize(
    "name",
    [
        "HOW_TO_DECRYPT.txt",
        "How-To-Decrypt-Files.html",
        "README_FOR_DECRYPT.txt",
        "!!!RESTORE_FILES!!!.txt",
        "Restore-My-Files.txt",
        "DECRYPT_INSTRUCTIONS.html",
        "# DECRYPT MY FILES #.txt",
        "RyukReadMe.txt",
        "HOW_TO_DECRYPT",
        "HELP_DECRYPT.hta",
    ],
)
def test_ransom_note_names(tmp_path: Path, name: str) -> None:
    detail = suspicious(check_file(write(tmp_path, name, ENGLISH)))
    assert detail == f"file name {name!r} is that of a ransom note"


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "decrypt.py",
        "restore_files_procedure.docx",
        "how_to_restore.pdf",
        "Cargo.lock",
        "package-lock.json",
        "parent.lock",
        "notes.txt",
        "encryption-policy.txt",
    ],
)
def test_ordinary_names_are_not_ransomware(name: str) -> None:
    assert ransom_name(name) is None


def test_mac_and_office_companion_files_are_left_alone(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "._report.pdf", b"\x00\x05\x16\x07" + bytes(4000))) is None
    assert check_file(write(tmp_path, "~$report.docx", b"\x05Jean " + bytes(150))) is None


def test_unknown_kinds_are_not_judged(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "data.bin", noise(10_000))) is None
    assert check_file(write(tmp_path, "Makefile", noise(10_000))) is None


# -- empty files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.pdf", "empty PDF file"),
        ("a.docx", "empty DOCX file"),
        ("a.xls", "empty XLS file"),
        ("a.jpg", "empty JPEG file"),
        ("a.sqlite", "empty SQLite database file"),
        ("a.zip", "empty ZIP file"),
    ],
)
def test_empty_files_of_formats_that_cannot_be_empty(tmp_path: Path, name: str, expected: str) -> None:
    assert suspicious(check_file(write(tmp_path, name, b""))) == expected


@pytest.mark.parametrize("name", ["a.txt", "a.csv", "a.log", "a.json", "a.bin", "noextension", "a.rtf"])
def test_empty_files_that_may_be_empty(tmp_path: Path, name: str) -> None:
    assert check_file(write(tmp_path, name, b"")) is None


# -- reading ------------------------------------------------------------------------------------------------


def test_never_reads_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.log"
    with path.open("wb") as handle:  # 1 GiB, sparse: cheap to make, costly to read whole
        handle.write(ENGLISH)
        handle.truncate(1024**3)
    read_bytes = [0]
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, *args, **kwargs)
        real_read = handle.read

        def read(size: int = -1) -> bytes:
            assert size > 0, "read() without a size reads the whole file"
            data: bytes = real_read(size)
            read_bytes[0] += len(data)
            return data

        handle.read = read
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    assert check_file(path) is None
    assert 0 < read_bytes[0] <= 2 * BLOCK


# -- entropy ------------------------------------------------------------------------------------------------


def test_entropy_values() -> None:
    assert shannon_entropy(b"") == 0.0
    assert shannon_entropy(bytes(65536)) == 0.0
    assert shannon_entropy(b"ab" * 100) == pytest.approx(1.0)
    assert shannon_entropy(bytes(range(256)) * 4) == pytest.approx(8.0)
    assert shannon_entropy(os.urandom(65536)) > 7.9
    assert shannon_entropy(ENGLISH * 50) < 5.0
    assert 0.0 <= shannon_entropy(os.urandom(10)) <= 8.0


def test_looks_random() -> None:
    assert looks_random(noise(BLOCK))[0]
    assert not looks_random(ENGLISH * 200)[0]
    assert not looks_random(noise(100))[0]  # too short to tell


# -- SQLite -------------------------------------------------------------------------------------------------


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_good_sqlite_database_passes_and_nothing_is_created_next_to_it(tmp_path: Path) -> None:
    database = make_sqlite(tmp_path / "app.sqlite", wal=True)
    before = listing(tmp_path)
    digest = hashlib.sha256(database.read_bytes()).hexdigest()
    assert check_sqlite(database) is None
    assert check_file(database) is None
    assert listing(tmp_path) == before == {"app.sqlite"}  # no -wal, -shm or -journal
    assert hashlib.sha256(database.read_bytes()).hexdigest() == digest


def test_sqlite_in_a_read_only_folder_with_an_awkward_name(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    database = make_sqlite(folder / "my data ?#%20.db", wal=True)
    folder.chmod(0o555)  # the sandbox copy may sit where nothing can be written
    try:
        assert check_sqlite(database) is None
        assert listing(folder) == {"my data ?#%20.db"}
    finally:
        folder.chmod(0o755)


def corrupt_middle_page(database: Path) -> int:
    data = bytearray(database.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    pages = len(data) // page_size
    assert pages > 20, "the test database must span many pages"
    page = pages // 2
    data[page * page_size : (page + 1) * page_size] = noise(page_size, 99)
    database.write_bytes(bytes(data))
    return page


def test_corrupt_page_in_a_real_database_is_reported(tmp_path: Path) -> None:
    database = make_sqlite(tmp_path / "crm.sqlite")
    corrupt_middle_page(database)
    before = listing(tmp_path)
    verdict = check_sqlite(database)
    assert verdict is not None
    assert verdict.failure_class is FailureClass.CORRUPT_DATA
    assert verdict.path == str(database)
    assert verdict.detail.startswith(("SQLite integrity_check failed: ", "SQLite cannot read the database: "))
    assert "*** in database" not in verdict.detail  # the banner line says nothing; the first problem does
    assert listing(tmp_path) == before
    assert check_file(database) is None  # the header is intact: only SQLite itself can tell


def test_quick_check_is_used_for_big_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = make_sqlite(tmp_path / "big.sqlite")
    corrupt_middle_page(database)
    monkeypatch.setattr(content, "SQLITE_QUICK_CHECK_ABOVE", 0)
    verdict = check_sqlite(database)
    assert verdict is not None and verdict.failure_class is FailureClass.CORRUPT_DATA
    assert verdict.detail.startswith(("SQLite quick_check failed: ", "SQLite cannot read the database: "))


def test_sqlite_with_wrong_header_is_suspicious(tmp_path: Path) -> None:
    path = write(tmp_path, "app.sqlite", noise(64 * 1024))
    assert suspicious(check_sqlite(path)).startswith(
        "expected an SQLite header (SQLite format 3) but found random-looking bytes"
    )
    assert check_file(path) is not None


def test_sqlite_header_with_garbage_after_it_is_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path, "app.db", b"SQLite format 3\x00" + noise(8192))
    verdict = check_sqlite(path)
    assert verdict is not None and verdict.failure_class is FailureClass.CORRUPT_DATA


def test_empty_sqlite_file(tmp_path: Path) -> None:
    assert suspicious(check_sqlite(write(tmp_path, "empty.sqlite", b""))) == "empty SQLite database file"
