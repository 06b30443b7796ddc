"""Content sanity checks on a restored file: does it still look like what its name says it is?

A backup of files that ransomware already encrypted restores perfectly and is worthless. These checks look
for the usual traces, cheaply (at most two 64 KiB blocks per file, never the whole file):

* a known binary format (by extension) whose first bytes are not that format's signature;
* a text format whose bytes look random (near-maximal Shannon entropy);
* a file name ending in an extension that ransomware appends, or named like a ransom note;
* an SQLite database that SQLite itself finds damaged (:func:`check_sqlite`).

All of these are heuristics: a verdict says "look at this file", not "this file is encrypted". The lists below
are short on purpose, to keep false alarms rare; ``max_suspicious_files`` in preuve.toml tolerates a few.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

from preuve.errors import FailureClass

BLOCK = 64 * 1024  # bytes read from the start, and from the middle of big text files
DEFAULT_ENTROPY_THRESHOLD = 7.8  # bits per byte; DrillSettings.entropy_threshold overrides it
MIN_ENTROPY_BYTES = 256  # below this, even random bytes do not show a telling entropy
SQLITE_MAGIC = b"SQLite format 3\x00"
# integrity_check also cross-checks every index against its table, which is slow on big files; quick_check is
# the O(n) subset that still reads and checks every page.
SQLITE_QUICK_CHECK_ABOVE = 256 * 1024 * 1024
SQLITE_MAX_ERRORS = 20  # the checks stop after this many problems; the first is the one reported


@dataclass(frozen=True)
class ContentVerdict:
    path: str
    failure_class: FailureClass
    detail: str


@dataclass(frozen=True)
class Magic:
    """Bytes expected at ``offset``; ``mask`` is ANDed first (MP3 frame sync); ``window``: may start later."""

    offset: int
    value: bytes
    mask: bytes | None = None
    window: int = 0

    def matches(self, head: bytes) -> bool:
        if self.window:
            return head.find(self.value, self.offset, self.offset + self.window + len(self.value)) >= 0
        found = head[self.offset : self.offset + len(self.value)]
        if len(found) < len(self.value):
            return False
        if self.mask is not None:
            found = bytes(b & m for b, m in zip(found, self.mask, strict=True))
        return found == self.value


@dataclass(frozen=True)
class FileKind:
    name: str  # as in "empty PDF file"
    expected: str  # as in "expected a PDF header (%PDF-)"
    magics: tuple[Magic, ...] = ()  # any one is enough; empty: no signature to check
    text: bool = False  # must not look random
    can_be_empty: bool = True
    # Legacy Office names, which business software also gives to HTML, CSV or UTF-16 text exports.
    text_content_ok: bool = False

    @property
    def needed(self) -> int:
        """Below this size a file cannot carry its signature, whichever of the alternatives."""
        return max((m.offset + len(m.value) for m in self.magics), default=0)


def _m(value: bytes, offset: int = 0) -> Magic:
    return Magic(offset, value)


_ZIP = (_m(b"PK\x03\x04"), _m(b"PK\x05\x06"), _m(b"PK\x07\x08"))  # local file, empty archive, spanned
_OLE2 = _m(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
_RTF = _m(b"{\\rtf")
# Images are often saved under the wrong image extension (a WebP or PNG named .jpg): any image signature is
# fine for an image name, since the question is "damaged or encrypted?", not "correctly named?".
_IMAGES = (
    _m(b"\xff\xd8\xff"),
    _m(b"\x89PNG\r\n\x1a\n"),
    _m(b"GIF87a"),
    _m(b"GIF89a"),
    _m(b"WEBP", 8),
    _m(b"BM"),
    _m(b"II*\x00"),
    _m(b"MM\x00*"),
    _m(b"II+\x00"),  # BigTIFF
    _m(b"MM\x00+"),
    _m(b"ftypheic", 4),
    _m(b"ftypmif1", 4),
)
# ISO base media (MP4) starts with an ftyp box; old QuickTime files with another top-level atom.
_ISO_MEDIA = tuple(_m(box, 4) for box in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"))

# A password-protected .docx or .xlsx is an OLE2 container around the encrypted ZIP.
_OOXML = FileKind("{ext}", "a ZIP header (PK 03 04)", (*_ZIP, _OLE2), can_be_empty=False)
_ODF = FileKind("{ext}", "a ZIP header (PK 03 04)", _ZIP, can_be_empty=False)
_OLE2_OFFICE = FileKind(
    "{ext}",
    "an OLE2 compound-file header (D0 CF 11 E0 A1 B1 1A E1)",
    (_OLE2, *_ZIP, _RTF),  # Word and Excel open a renamed .docx or an RTF under these names too
    can_be_empty=False,
    text_content_ok=True,
)
_JPEG = FileKind("JPEG", "a JPEG header (FF D8 FF)", _IMAGES, can_be_empty=False)
_TIFF = FileKind("TIFF", "a TIFF header (II*\\0 or MM\\0*)", _IMAGES, can_be_empty=False)
_SQLITE = FileKind("SQLite database", "an SQLite header (SQLite format 3)", (_m(SQLITE_MAGIC),), can_be_empty=False)
_GZIP = FileKind("gzip", "a gzip header (1F 8B)", (_m(b"\x1f\x8b"),), can_be_empty=False)
_ISO = FileKind("MP4/QuickTime", "an ISO media box (ftyp at offset 4)", _ISO_MEDIA, can_be_empty=False)
_TEXT = FileKind("{ext}", "", text=True)

KINDS: dict[str, FileKind] = {
    # The PDF header may follow up to 1 KiB of junk: readers accept it there, so do we.
    "pdf": FileKind("PDF", "a PDF header (%PDF-)", (Magic(0, b"%PDF-", window=1024),), can_be_empty=False),
    **dict.fromkeys(("docx", "xlsx", "pptx", "docm", "xlsm", "pptm"), _OOXML),
    **dict.fromkeys(("odt", "ods", "odp"), _ODF),
    "zip": FileKind("ZIP", "a ZIP header (PK 03 04)", _ZIP, can_be_empty=False),
    **dict.fromkeys(("doc", "xls", "ppt"), _OLE2_OFFICE),
    **dict.fromkeys(("jpg", "jpeg", "jpe", "jfif"), _JPEG),
    "png": FileKind("PNG", "a PNG signature (89 50 4E 47 0D 0A 1A 0A)", _IMAGES, can_be_empty=False),
    "gif": FileKind("GIF", "a GIF header (GIF87a or GIF89a)", _IMAGES, can_be_empty=False),
    "bmp": FileKind("BMP", "a BMP header (BM)", _IMAGES, can_be_empty=False),
    **dict.fromkeys(("tif", "tiff"), _TIFF),
    **dict.fromkeys(("sqlite", "sqlite3", "db3"), _SQLITE),
    **dict.fromkeys(("gz", "tgz"), _GZIP),
    "7z": FileKind("7-Zip", "a 7-Zip signature (37 7A BC AF 27 1C)", (_m(b"7z\xbc\xaf\x27\x1c"),), can_be_empty=False),
    "rar": FileKind("RAR", "a RAR signature (Rar! 1A 07)", (_m(b"Rar!\x1a\x07"),), can_be_empty=False),
    "mp3": FileKind(
        "MP3",
        "an ID3 tag or an MPEG audio frame",
        (_m(b"ID3"), Magic(0, b"\xff\xe0", mask=b"\xff\xe0"), _m(b"RIFF")),
        can_be_empty=False,
    ),
    **dict.fromkeys(("mp4", "m4a", "m4v", "mov", "3gp"), _ISO),
    "rtf": FileKind("RTF", "an RTF header ({\\rtf)", (_RTF,), text=True),
    **dict.fromkeys(
        ("txt", "csv", "tsv", "md", "log", "xml", "html", "htm", "json", "yaml", "yml", "ini", "sql", "eml"),
        _TEXT,
    ),
}

# Signatures strong enough to name what was found instead ("found a ZIP header").
_SIGNATURES: tuple[tuple[str, Magic], ...] = (
    ("a PDF header", _m(b"%PDF-")),
    ("a ZIP header", _ZIP[0]),
    ("an OLE2 header", _OLE2),
    ("a JPEG header", _IMAGES[0]),
    ("a PNG signature", _IMAGES[1]),
    ("a GIF header", _m(b"GIF8")),
    ("an SQLite header", _m(SQLITE_MAGIC)),
    ("a gzip header", _m(b"\x1f\x8b\x08")),
    ("a 7-Zip signature", _m(b"7z\xbc\xaf\x27\x1c")),
    ("a RAR signature", _m(b"Rar!\x1a\x07")),
    ("an RTF header", _RTF),
    ("an ELF executable header", _m(b"\x7fELF")),
)
# Two bytes happen at random once in 65,536 files: named only when the rest does not look random.
_WEAK_SIGNATURES: tuple[tuple[str, Magic], ...] = (("a Windows executable header", _m(b"MZ")),)

# Extensions that well-known ransomware families append to the files they encrypt (WannaCry, Ryuk, LockBit,
# Locky, Cerber, TeslaCrypt, Conti, Akira, Black Basta, Royal...). A heuristic: a few legitimate tools also
# write ``.enc`` or ``.crypt`` files, which is why ``max_suspicious_files`` exists.
RANSOM_EXTENSIONS: frozenset[str] = frozenset().union(
    {"locked", "encrypted", "crypt", "crypted", "enc"},  # generic, used by many families
    {"wncry", "wnry", "wcry"},  # WannaCry
    {"ryk"},  # Ryuk
    {"lockbit"},  # LockBit
    {"locky", "zepto", "odin", "thor", "zzzzz"},  # Locky
    {"cerber", "cerber3"},  # Cerber
    {"crypz", "cryp1"},  # CryptXXX
    {"vvv", "ccc"},  # TeslaCrypt
    {"conti", "akira", "basta", "royal"},  # Conti, Akira, Black Basta, Royal
)

# Ransom-note names, matched on the lower-cased name with runs of spaces, dots and dashes turned into "_"
# ("How-To-Decrypt.txt" -> "how_to_decrypt_txt"). Only for the extensions notes are written with, so that a
# provider's own "restore_files_procedure.docx" does not raise an alarm.
RANSOM_NOTE_PATTERNS = (
    "how_to_decrypt*",
    "readme_for_decrypt*",
    "*restore_files*",
    "*restore_my_files*",
    "decrypt_instructions*",
    "help_decrypt*",
    "*decrypt_my_files*",
    "*decrypt_your_files*",
    "how_to_back_files*",
    "ryukreadme*",
)
_NOTE_EXTENSIONS = frozenset({"", "txt", "html", "htm", "hta", "rtf", "url", "mht"})
_NOTE_SEPARATORS = re.compile(r"[\s.\-]+")


def shannon_entropy(data: bytes) -> float:
    """Shannon entropy of the byte distribution, in bits per byte: 0 (one value repeated) to 8 (uniform)."""
    total = len(data)
    if total == 0:
        return 0.0
    entropy = 0.0
    for count in Counter(data).values():
        p = count / total
        entropy -= p * math.log2(p)
    return max(0.0, entropy)  # -0.0 for a single repeated value


@lru_cache(maxsize=512)
def _random_shortfall(length: int) -> float:
    """How far below 8 bits/byte the entropy *measured on* ``length`` random bytes falls, on average.

    The plug-in estimate is biased low on short samples: 256 random bytes measure about 7.18, not 8. Adding
    this back lets one threshold serve a 300-byte note and a 64 KiB block alike.
    """
    if length >= 8192:
        return 255 / (2 * length * math.log(2))  # Miller-Madow: exact enough once every value shows up often
    # Expected estimate for uniform bytes: each of the 256 counts is Binomial(length, 1/256).
    p = 1 / 256
    mean = length * p
    upper = min(length, int(mean + 12 * math.sqrt(mean) + 12))  # the tail beyond weighs nothing
    expected = 0.0
    for k in range(1, upper + 1):
        log_pmf = (
            math.lgamma(length + 1)
            - math.lgamma(k + 1)
            - math.lgamma(length - k + 1)
            + k * math.log(p)
            + (length - k) * math.log1p(-p)
        )
        share = k / length
        expected -= 256 * math.exp(log_pmf) * share * math.log2(share)
    return 8.0 - expected


def looks_random(data: bytes, threshold: float = DEFAULT_ENTROPY_THRESHOLD) -> tuple[bool, float]:
    """Whether ``data`` has the entropy of random (encrypted, compressed) bytes, and the entropy measured."""
    entropy = shannon_entropy(data)
    if len(data) < MIN_ENTROPY_BYTES:
        return False, entropy
    return entropy + _random_shortfall(len(data)) >= threshold, entropy


_ASCII = bytes(range(128))
# _random_shortfall only falls as the length grows (the plug-in estimate of n samples is, in expectation, at most
# that of n + 1: concavity of entropy), so its value at a power of two bounds it up to the next one.
_SHORTFALL_STEPS = tuple(MIN_ENTROPY_BYTES << i for i in range(6))  # 256 ... 8192


def entropy_upper_bound(data: bytes) -> float:
    """A cheap upper bound of :func:`shannon_entropy`: log2 of how many distinct byte values ``data`` can hold.

    Text is mostly ASCII (at most 128 values, 7 bits); counting the distinct non-ASCII bytes costs a fraction of
    the byte histogram that the exact entropy needs.
    """
    if not data:
        return 0.0
    distinct = 128 if data.isascii() else 128 + len(set(data.translate(None, _ASCII)))
    return math.log2(min(distinct, len(data), 256))


def _shortfall_upper_bound(length: int) -> float:
    if length >= _SHORTFALL_STEPS[-1]:
        return _random_shortfall(length)
    step = max((s for s in _SHORTFALL_STEPS if s <= length), default=_SHORTFALL_STEPS[0])
    return _random_shortfall(step)


def may_look_random(data: bytes, threshold: float = DEFAULT_ENTROPY_THRESHOLD) -> bool:
    """False when ``data`` certainly does not :func:`looks_random` (same verdict, without the byte histogram);
    True when only the exact test can tell."""
    if len(data) < MIN_ENTROPY_BYTES:
        return False
    return entropy_upper_bound(data) + _shortfall_upper_bound(len(data)) >= threshold


def _looks_like_text(head: bytes) -> bool:
    """HTML, XML, CSV or UTF-16 text: what business software writes under .xls and .doc names."""
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    sample = head[:4096]
    if not sample or b"\x00" in sample:
        return False
    # Random bytes have ~11 % control characters; text has tab, CR and LF only.
    controls = sum(1 for b in sample if b < 0x20 and b not in (0x09, 0x0A, 0x0D))
    return controls <= len(sample) // 100


def _bits(entropy: float) -> str:
    """Entropy for a message, truncated: 7.997 reads 7.99, never an impossible-looking 8.00 for real data."""
    return f"entropy {math.floor(entropy * 100) / 100:.2f} bits/byte"


def _extension(name: str) -> str:
    """What ``Path(name).suffix`` gives, lower-cased and without the dot (string operations: called per file)."""
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if 0 < dot < len(name) - 1 else ""


def ransom_name(name: str) -> str | None:
    """Why a file name looks like ransomware's work, or None."""
    extension = _extension(name)
    if extension in RANSOM_EXTENSIONS:
        return f"file name ends in .{extension}, an extension ransomware appends to the files it encrypts"
    if extension in _NOTE_EXTENSIONS:
        normalized = _NOTE_SEPARATORS.sub("_", name.lower())
        for pattern in RANSOM_NOTE_PATTERNS:
            if fnmatchcase(normalized, pattern):
                return f"file name {name!r} is that of a ransom note"
    return None


def kind_for(path: Path) -> FileKind | None:
    """The known kind of a file, by extension; None for unknown kinds and for names to leave alone."""
    name = path.name
    # AppleDouble companions ("._report.pdf") on NAS shares and Office owner files ("~$report.docx") carry
    # the document's extension but not its format.
    if name.startswith(("._", "~$")):
        return None
    return KINDS.get(_extension(name))


def _kind_name(kind: FileKind, path: Path) -> str:
    return kind.name.format(ext=_extension(path.name).upper())


def _found(head: bytes, threshold: float) -> str:
    """What the start of a file looks like, for the verdict."""
    random, entropy = looks_random(head, threshold)
    # A known signature first: a ZIP or a JPEG is random-looking too, and naming it says more.
    for label, magic in _SIGNATURES:
        if magic.matches(head):
            return f"{label} instead ({_bits(entropy)})"
    if random:
        return f"random-looking bytes ({_bits(entropy)})"
    for label, magic in _WEAK_SIGNATURES:
        if magic.matches(head):
            return f"{label} instead ({_bits(entropy)})"
    return f"bytes {head[:8].hex(' ')} ({_bits(entropy)})"


def _verdict(path: Path, detail: str, failure_class: FailureClass = FailureClass.SUSPICIOUS_CONTENT) -> ContentVerdict:
    return ContentVerdict(str(path), failure_class, detail)


def _read_blocks(path: Path, *, middle: bool) -> tuple[int, bytes, bytes]:
    """Size, first block and (for big files, when asked) a block from the middle; never the whole file."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(BLOCK)
        mid = b""
        where = middle_range(size) if middle else None
        if where is not None:
            handle.seek(where[0])
            mid = handle.read(where[1])
    return size, head, mid


def needs_middle(path: Path) -> bool:
    """Whether :func:`check_blocks` wants a block from the middle of this file (big text files)."""
    kind = kind_for(path)
    return kind is not None and kind.text and ransom_name(path.name) is None


def middle_range(size: int) -> tuple[int, int] | None:
    """Offset and length of the middle block :func:`check_blocks` looks at, for a file of ``size`` bytes."""
    if size < 3 * BLOCK:  # smaller files: the middle mostly overlaps the head
        return None
    return size // 2 - BLOCK // 2, BLOCK


def check_file(path: Path, *, entropy_threshold: float = DEFAULT_ENTROPY_THRESHOLD) -> ContentVerdict | None:
    """A verdict when a restored file looks encrypted or damaged, else None (fine, or not a known kind).

    Raises OSError when the file cannot be read: the caller reports that separately.
    """
    if ransom_name(path.name) is not None or kind_for(path) is None:
        return check_blocks(path, 0, b"", b"", entropy_threshold=entropy_threshold)
    size, head, mid = _read_blocks(path, middle=needs_middle(path))
    return check_blocks(path, size, head, mid, entropy_threshold=entropy_threshold)


def check_blocks(
    path: Path, size: int, head: bytes, mid: bytes, *, entropy_threshold: float = DEFAULT_ENTROPY_THRESHOLD
) -> ContentVerdict | None:
    """:func:`check_file` on blocks already read: ``head`` holds the first :data:`BLOCK` bytes (all of a smaller
    file), ``mid`` the block at :func:`middle_range` for a big text file (else empty). Lets a caller that reads
    the whole file anyway (to hash it) check its content without opening it again."""
    reason = ransom_name(path.name)
    if reason is not None:
        return _verdict(path, reason)
    kind = kind_for(path)
    if kind is None:
        return None
    name = _kind_name(kind, path)
    if size == 0:
        return None if kind.can_be_empty else _verdict(path, f"empty {name} file")
    signed = not kind.magics or any(magic.matches(head) for magic in kind.magics)
    if not signed and not (kind.text_content_ok and _looks_like_text(head)):
        if size < kind.needed:
            return _verdict(path, f"expected {kind.expected} but the file holds only {size} bytes")
        return _verdict(path, f"expected {kind.expected} but found {_found(head, entropy_threshold)}")
    if kind.text:
        for where, block in (("", head), ("in the middle of the file ", mid)):
            if not may_look_random(block, entropy_threshold):
                continue  # text: the histogram below is the costliest part of a drill's checks, and needless here
            random, entropy = looks_random(block, entropy_threshold)
            if random:
                return _verdict(
                    path,
                    f"a {name} text file with random-looking bytes {where}({_bits(entropy)}): encrypted or not text",
                )
    return None


def check_sqlite(path: Path, *, entropy_threshold: float = DEFAULT_ENTROPY_THRESHOLD) -> ContentVerdict | None:
    """Run SQLite's own integrity check on a restored database; None when it reports ``ok``.

    The copy is opened read-only and immutable, so SQLite neither writes nor creates a -wal, -shm or -journal
    file next to it, and ignores locks (nothing else uses the sandbox copy). A WAL that was not checkpointed
    before the backup is not looked at: the file is checked as restic stored it.
    A wrong header is SUSPICIOUS_CONTENT (encrypted or not a database); a right header with failed checks is
    CORRUPT_DATA. Raises OSError when the file cannot be read or opened.
    """
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(BLOCK)
    if size == 0:
        return _verdict(path, "empty SQLite database file")
    if not head.startswith(SQLITE_MAGIC):
        return _verdict(path, f"expected {_SQLITE.expected} but found {_found(head, entropy_threshold)}")
    # as_uri percent-encodes '?', '#' and '%' in the name, which SQLite's URI parser would otherwise take.
    uri = path.absolute().as_uri() + "?mode=ro&immutable=1"
    quick = size > SQLITE_QUICK_CHECK_ABOVE
    check = "quick_check" if quick else "integrity_check"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            # Literal statements, not formatted SQL: 20 is SQLITE_MAX_ERRORS.
            if quick:
                rows = connection.execute("PRAGMA quick_check(20)").fetchall()
            else:
                rows = connection.execute("PRAGMA integrity_check(20)").fetchall()
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed", "file is not a database"...
        if "unable to open" in str(exc):  # a problem of this server (permissions, descriptors), not of the data
            raise OSError(f"SQLite cannot open {path}: {exc}") from exc
        return _verdict(path, f"SQLite cannot read the database: {exc}", FailureClass.CORRUPT_DATA)
    # A row per problem, or several in one row separated by newlines (SQLite 3.40 does so for page errors),
    # under a "*** in database main ***" banner that says nothing.
    lines = [line for row in rows for line in str(row[0]).splitlines() if line.strip()]
    if lines == ["ok"]:
        return None
    problems = [line for line in lines if not line.startswith("*** in database")] or lines or ["no result"]
    more = len(problems) - 1
    at_least = "at least " if len(problems) >= SQLITE_MAX_ERRORS else ""
    suffix = f" (and {at_least}{more} more problem{'s' if more != 1 else ''})" if more > 0 else ""
    return _verdict(path, f"SQLite {check} failed: {problems[0]}{suffix}", FailureClass.CORRUPT_DATA)
