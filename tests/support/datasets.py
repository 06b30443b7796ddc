"""Deterministic source trees for backups, their manifests, and restic set-up helpers.

``make_dataset`` writes the same bytes, names and mtimes for the same ``files``/``seed`` on every run (the SQLite file
depends on the SQLite library version only). Every regular file except the few large ones is smaller than restic's
minimum chunk size (512 KiB), so it is stored as a single blob whose ID is the SHA-256 of its content: the fault
injectors use that to find the pack holding a given small file without walking trees.

The restic helpers here are test set-up code: they run /usr/bin/restic directly (argument lists, a timeout on every
call) to build repositories that Preuve is then pointed at.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import secrets
import signal
import sqlite3
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

RESTIC = "/usr/bin/restic"
MIN_CHUNK = 512 * 1024  # restic's chunker never cuts a file smaller than this: one blob, ID = sha256(content)
CANARY_NAME = ".preuve-canary"
BASE_TIME = datetime(2022, 3, 1, 8, 0, 0, tzinfo=UTC)
MODIFIED_TIME = datetime(2024, 6, 3, 9, 30, 0, tzinfo=UTC)

__all__ = [
    "CANARY_NAME",
    "MIN_CHUNK",
    "RESTIC",
    "Changes",
    "FileEntry",
    "Manifest",
    "ResticError",
    "backup",
    "canary_content",
    "init_and_backup",
    "init_repo",
    "make_dataset",
    "modify_and_backup",
    "modify_dataset",
    "restic_argv",
    "restic_env",
    "run_restic",
    "scan_manifest",
    "sha256_file",
    "snapshots",
    "write_password_file",
]


# ------------------------------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the dataset root, "/"-separated
    size: int
    sha256: str
    mtime: datetime  # timezone-aware (UTC)

    @property
    def single_blob(self) -> bool:
        """True if restic stores this file as one data blob whose ID is :attr:`sha256` (0 < size < 512 KiB)."""
        return 0 < self.size < MIN_CHUNK


@dataclass
class Manifest:
    root: Path
    files: dict[str, FileEntry]  # relative path -> entry, regular files only (the canary included)
    symlinks: dict[str, str] = field(default_factory=dict)  # relative path -> link target
    dirs: list[str] = field(default_factory=list)  # relative paths of directories (not the root)
    canary_path: str = CANARY_NAME  # relative
    canary_sha256: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def canary_abs(self) -> str:
        """The canary's absolute path as restic stores it (what a job file's ``canaries`` entry holds)."""
        return str(self.root / self.canary_path)

    def abs(self, rel: str) -> Path:
        return self.root / rel

    def largest(self, count: int = 1) -> list[FileEntry]:
        return sorted(self.files.values(), key=lambda e: (-e.size, e.path))[:count]

    def single_blob_files(self) -> list[FileEntry]:
        return sorted((e for e in self.files.values() if e.single_blob), key=lambda e: e.path)

    def rebased(self, root: Path) -> Manifest:
        """The same manifest for a byte-identical copy of the tree at ``root``."""
        return Manifest(
            root=root,
            files=dict(self.files),
            symlinks=dict(self.symlinks),
            dirs=list(self.dirs),
            canary_path=self.canary_path,
            canary_sha256=self.canary_sha256,
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan_manifest(root: Path, *, canary_path: str = CANARY_NAME) -> Manifest:
    """Hash every regular file under ``root`` (symlinks are recorded, not followed)."""
    root = Path(root)
    files: dict[str, FileEntry] = {}
    symlinks: dict[str, str] = {}
    dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in list(dirnames):
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                symlinks[rel] = os.readlink(full)
                dirnames.remove(name)
            else:
                dirs.append(rel)
        for name in filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                symlinks[rel] = os.readlink(full)
                continue
            st = full.stat()
            files[rel] = FileEntry(
                path=rel,
                size=st.st_size,
                sha256=sha256_file(full),
                mtime=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
            )
    canary = files.get(canary_path)
    return Manifest(
        root=root,
        files=dict(sorted(files.items())),
        symlinks=dict(sorted(symlinks.items())),
        dirs=sorted(dirs),
        canary_path=canary_path,
        canary_sha256=canary.sha256 if canary else "",
    )


# ------------------------------------------------------------------------------------------- file contents

_WORDS = (
    "facture", "client", "devis", "contrat", "livraison", "chantier", "patient", "rendez-vous", "ordonnance",
    "compte", "rapport", "annuel", "budget", "projet", "réunion", "équipe", "planning", "stock", "commande",
    "fournisseur", "paiement", "relance", "dossier", "archive", "the", "invoice", "customer", "quote", "delivery",
    "site", "report", "meeting", "schedule", "order", "supplier", "payment", "reminder",
)  # fmt: skip


def _text(rng: random.Random, size: int, header: str) -> bytes:
    out = io.StringIO()
    out.write(header + "\n")
    while out.tell() < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
        out.write(line.capitalize() + ".\n")
    return _fit(out.getvalue().encode(), size)


def _fit(data: bytes, size: int) -> bytes:
    """Exactly ``size`` bytes of valid UTF-8: cut on a character boundary, pad with newlines."""
    cut = data[:size].decode("utf-8", errors="ignore").encode()
    return cut + b"\n" * (size - len(cut))


def _csv(rng: random.Random, size: int, header: str) -> bytes:
    out = io.StringIO()
    out.write(f"# {header}\ndate;client;montant;statut\n")
    day = 0
    while out.tell() < size:
        day += 1
        date = (BASE_TIME + timedelta(days=day)).date().isoformat()
        out.write(f"{date};{rng.choice(_WORDS)};{rng.randint(10, 99999) / 100:.2f};{rng.choice(('ok', 'due'))}\n")
    return _fit(out.getvalue().encode(), size)


def _pdf(rng: random.Random, size: int, title: str) -> bytes:
    """A well-formed PDF (catalog, page, font, text stream, one binary image stream as padding, xref) of exactly
    ``size`` bytes when ``size`` is above ~1 KB."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    content = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    noise = rng.randbytes(size)

    def build(pad: int) -> bytes:
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8 "
            b"/Filter /DCTDecode /Length %d >>\nstream\n" % pad + noise[:pad] + b"\nendstream",
        ]
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        for offset in offsets:
            out += b"%010d 00000 n \n" % offset
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
        return bytes(out)

    pad = 0
    for _ in range(4):  # the digits of the lengths and offsets move a little with the padding
        data = build(pad)
        if len(data) == size:
            break
        pad = max(0, pad + size - len(data))
    return data


def _jpeg(rng: random.Random, size: int) -> bytes:
    """JFIF header, a quantisation table, start of scan, high-entropy scan data without 0xFF, end marker."""
    head = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
        + b"\xff\xdb\x00\x43\x00"
        + bytes(rng.randint(1, 60) for _ in range(64))
        + b"\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    )
    body = rng.randbytes(max(0, size - len(head) - 2)).replace(b"\xff", b"\xfe")
    return head + body + b"\xff\xd9"


def _png(rng: random.Random, width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        for x in range(width):
            rows += bytes(((x * 7 + y) & 0xFF, (y * 5) & 0xFF, rng.randint(0, 255)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _docx(rng: random.Random, title: str) -> bytes:
    paragraphs = "".join(
        f"<w:p><w:r><w:t>{' '.join(rng.choice(_WORDS) for _ in range(12))}</w:t></w:r></w:p>" for _ in range(40)
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            f"<w:p><w:r><w:t>{title}</w:t></w:r></w:p>{paragraphs}</w:body></w:document>"
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2023, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()


def _sqlite(path: Path, rng: random.Random, rows: int) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT NOT NULL, born TEXT, notes TEXT)")
        conn.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, patient INTEGER REFERENCES patients(id), at TEXT)")
        conn.executemany(
            "INSERT INTO patients (name, born, notes) VALUES (?, ?, ?)",
            [
                (f"{rng.choice(_WORDS).title()} {i}", f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{i % 10}",
                 " ".join(rng.choice(_WORDS) for _ in range(8)))
                for i in range(rows)
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO visits (patient, at) VALUES (?, ?)",
            [(rng.randint(1, rows), (BASE_TIME + timedelta(hours=i)).isoformat()) for i in range(rows * 2)],
        )
        conn.commit()
    finally:
        conn.close()


def canary_content(seed: int = 1) -> bytes:
    """The known bytes of the dataset's ``.preuve-canary`` file."""
    token = hashlib.sha256(f"preuve-canary-{seed}".encode()).hexdigest()
    return f"PREUVE CANARY v1\nseed={seed}\ntoken={token}\nDo not edit: backup drills check this file.\n".encode()


# -------------------------------------------------------------------------------------------------- dataset

_DIRS = (
    "Documents",
    "Documents/Clients/Dupont SARL",
    "Documents/Clients/Martin & Fils/2023",
    "Compta/2022",
    "Compta/2023/T4",
    "Photos/2021/Été à Nice",
    "Photos/2023",
    "Scans",
    "Projets/alpha/src",
    "Projets/alpha/docs",
    "Mail/Archive",
    "Médical/Patients",
    "Rapports",
)


def _set_mtime(path: Path, when: datetime) -> None:
    stamp = int(when.timestamp()) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp), follow_symlinks=False)


def make_dataset(root: Path, *, files: int = 300, seed: int = 1) -> Manifest:
    """Write ``files`` regular files (the special ones included, at least 24) under ``root`` and return their manifest.

    Contents: low-entropy text (.txt/.csv/.md), well-formed PDFs, JPEGs, real PNGs, a real .docx (zip), a real SQLite
    database, an empty file, UTF-8 and glob-character names, three large files (2, 4 and 8 MiB: a log, a scanned
    PDF, a photo), a relative symlink and the hidden canary ``.preuve-canary``. All mtimes are fixed, in 2022-2023.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    rng = random.Random(seed)
    for rel in _DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def put(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(rel)

    # The special files first.
    put(CANARY_NAME, canary_content(seed))
    put("Documents/vide.txt", b"")
    put("Documents/Café_résumé.txt", _text(rng, 1800, "Café résumé — notes"))
    put("Documents/日本語.txt", _text(rng, 1200, "日本語のファイル"))
    put("Documents/[draft] *v2?.txt", _text(rng, 2500, "draft v2 with glob characters in its name"))
    put("Documents/Compte rendu réunion.md", _text(rng, 4000, "# Compte rendu de réunion"))
    put("Rapports/rapport_2023.pdf", _pdf(rng, 60_000, "Rapport annuel 2023"))
    put("Documents/Clients/Dupont SARL/contrat.docx", _docx(rng, "Contrat Dupont SARL"))
    put("Photos/2023/logo.png", _png(rng, 64, 48))
    put("Photos/2021/Été à Nice/plage.jpg", _jpeg(rng, 180_000))
    sqlite_rel = "Médical/Patients/cabinet.sqlite"
    _sqlite(root / sqlite_rel, rng, rows=600)
    written.append(sqlite_rel)
    put("Compta/2023/T4/grand-livre.csv", _csv(rng, 90_000, "Grand livre T4 2023"))
    # The large ones: compressible text, a scan (PDF with a binary stream), a photo (random scan data).
    put("Mail/Archive/server-2022.log", _text(rng, 2 * 1024 * 1024, "mail server log 2022"))
    put("Scans/contrat_signé_2019.pdf", _pdf(rng, 4 * 1024 * 1024, "Contrat signé 2019"))
    put("Photos/2021/IMG_4032.jpg", _jpeg(rng, 8 * 1024 * 1024))
    if files < len(written) + 9:
        raise ValueError(f"files must be at least {len(written) + 9}")

    # Then ordinary files, spread over the folders, until there are ``files`` of them.
    kinds = ("txt", "txt", "csv", "md", "pdf", "pdf", "jpg", "jpg", "png", "docx")
    number = 0
    while len(written) < files:
        number += 1
        kind = kinds[rng.randrange(len(kinds))]
        folder = _DIRS[rng.randrange(len(_DIRS))]
        rel = f"{folder}/{rng.choice(_WORDS)}_{number:04d}.{kind}"
        header = f"{rel} #{number} seed {seed}"
        if kind in ("txt", "md"):
            data = _text(rng, rng.randint(200, 40_000), header)
        elif kind == "csv":
            data = _csv(rng, rng.randint(300, 30_000), header)
        elif kind == "pdf":
            data = _pdf(rng, rng.randint(2_000, 120_000), header)
        elif kind == "jpg":
            data = _jpeg(rng, rng.randint(5_000, 150_000))
        elif kind == "png":
            data = _png(rng, rng.randint(8, 40), rng.randint(8, 40))
        else:
            data = _docx(rng, header)
        put(rel, data)

    # A relative symlink to a file that exists.
    link = root / "Documents/dernier-rapport.pdf"
    link.symlink_to("../Rapports/rapport_2023.pdf")

    # Fixed mtimes in the past: files, then the link itself, then directories deepest first.
    for rel in written:
        _set_mtime(root / rel, BASE_TIME + timedelta(seconds=rng.randint(0, 600 * 86400)))
    _set_mtime(link, BASE_TIME + timedelta(days=30))
    all_dirs = sorted({p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()}, key=lambda p: -len(p.parts))
    for directory in [*all_dirs, root]:
        _set_mtime(directory, BASE_TIME + timedelta(days=610))
    return scan_manifest(root)


@dataclass
class Changes:
    """What :func:`modify_dataset` did to a source tree (relative paths)."""

    modified: list[str]
    added: list[str]
    deleted: list[str]


def modify_dataset(root: Path, *, seed: int = 2, modify: int = 12, add: int = 6, delete: int = 4) -> Changes:
    """Change a dataset the way a working week would: rewrite some small text files, add some, delete some.

    Large files and the canary are left alone. Changed files get a fixed mtime in 2024.
    """
    root = Path(root)
    rng = random.Random(seed)
    candidates = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p.suffix in (".txt", ".md", ".csv")
        and p.name != CANARY_NAME and 0 < p.stat().st_size < MIN_CHUNK
    )  # fmt: skip
    chosen = rng.sample(candidates, min(len(candidates), modify + delete))
    modified, deleted = sorted(chosen[:modify]), sorted(chosen[modify:])
    for rel in modified:
        path = root / rel
        data = _text(rng, path.stat().st_size + rng.randint(10, 500), f"{rel} revised (seed {seed})")
        path.write_bytes(data)
        _set_mtime(path, MODIFIED_TIME + timedelta(minutes=rng.randint(0, 5000)))
    for rel in deleted:
        (root / rel).unlink()
    added = []
    for index in range(add):
        rel = f"Documents/Nouveau/note_{seed}_{index:02d}.txt"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text(rng, rng.randint(500, 20_000), f"{rel} new (seed {seed})"))
        _set_mtime(path, MODIFIED_TIME + timedelta(minutes=rng.randint(0, 5000)))
        added.append(rel)
    return Changes(modified=modified, added=added, deleted=deleted)


# ---------------------------------------------------------------------------------------------------- restic


class ResticError(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"restic {' '.join(argv[1:4])}... exited {returncode}: {stderr.strip()[-1500:]}")


def write_password_file(path: Path, password: str | None = None) -> str:
    """Write a random (or the given) repository password to ``path`` with mode 0600 and return it."""
    password = password or secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    path.chmod(0o600)
    return password


def restic_env(
    repo: str,
    password_file: Path | str,
    extra_env: Mapping[str, str] | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> dict[str, str]:
    """An environment for restic: this process's, minus any RESTIC_*/AWS_* settings, plus the repository's.

    ``extra_env`` may carry ``RESTIC_SFTP_COMMAND`` (our convention; :func:`restic_argv` turns it into
    ``-o sftp.command=...``) and the AWS keys. Without ``cache_dir`` no cache dir is set: :func:`run_restic` then
    passes ``--no-cache``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    env["RESTIC_REPOSITORY"] = repo
    env["RESTIC_PASSWORD_FILE"] = str(password_file)
    if cache_dir is not None:
        env["RESTIC_CACHE_DIR"] = str(cache_dir)
    env.update(extra_env or {})
    return env


def restic_argv(args: Sequence[str], env: Mapping[str, str], *, no_cache: bool | None = None) -> list[str]:
    """``/usr/bin/restic [--no-cache] [-o sftp.command=...] ARGS``.

    ``no_cache`` defaults to True unless the environment names a ``RESTIC_CACHE_DIR``.
    """
    argv = [RESTIC]
    if no_cache is None:
        no_cache = "RESTIC_CACHE_DIR" not in env
    if no_cache:
        argv.append("--no-cache")
    sftp_command = env.get("RESTIC_SFTP_COMMAND")
    if sftp_command:
        argv += ["-o", f"sftp.command={sftp_command}"]
    return argv + list(args)


def run_restic(
    args: Sequence[str],
    env: Mapping[str, str],
    timeout: float = 120,
    *,
    check: bool = True,
    no_cache: bool | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run restic and return the completed process; raise :class:`ResticError` on a non-zero exit if ``check``.

    ``subprocess.TimeoutExpired`` propagates (the child is killed first).
    """
    argv = restic_argv(args, env, no_cache=no_cache)
    child = subprocess.Popen(
        argv,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # restic's ssh child goes in the same group; a timeout ends both
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the group of the child we started, not yet reaped
        child.communicate(timeout=30)
        raise
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        raise
    proc = subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise ResticError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def snapshots(env: Mapping[str, str], *extra: str, timeout: float = 120) -> list[dict[str, object]]:
    """``restic snapshots --json`` (oldest first)."""
    result: list[dict[str, object]] = json.loads(run_restic(["snapshots", "--json", *extra], env, timeout).stdout)
    return result


def init_repo(env: Mapping[str, str], timeout: float = 120) -> None:
    run_restic(["init"], env, timeout)


def backup(
    env: Mapping[str, str],
    source: Path,
    *,
    tags: Iterable[str] = (),
    time: datetime | None = None,
    parent: str | None = None,
    host: str | None = None,
    timeout: float = 300,
) -> str:
    """``restic backup --json SOURCE``; returns the new snapshot's short ID (from the summary line)."""
    args = ["backup", "--json"]
    for tag in tags:
        args += ["--tag", tag]
    if time is not None:
        if time.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        # restic parses this layout in the local time zone of the process; give it UTC explicitly.
        args += ["--time", time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
    if parent:
        args += ["--parent", parent]
    if host:
        args += ["--host", host]
    args.append(str(source))
    run_env = dict(env)
    if time is not None:
        run_env["TZ"] = "UTC"
    proc = run_restic(args, run_env, timeout)
    for line in reversed(proc.stdout.splitlines()):
        if '"summary"' in line:
            summary = json.loads(line)
            return str(summary["snapshot_id"])
    raise ResticError([RESTIC, *args], proc.returncode, proc.stdout, proc.stderr)


def init_and_backup(
    repo: str,
    password_file: Path | str,
    source: Path,
    env: Mapping[str, str] | None = None,
    tags: Iterable[str] = (),
) -> list[str]:
    """Create a repository and back ``source`` up once; return the full snapshot IDs (oldest first)."""
    renv = restic_env(repo, password_file, env)
    init_repo(renv)
    backup(renv, source, tags=tags)
    return [str(snap["id"]) for snap in snapshots(renv)]


def modify_and_backup(
    repo: str,
    password_file: Path | str,
    source: Path,
    env: Mapping[str, str] | None = None,
    tags: Iterable[str] = (),
    *,
    seed: int = 2,
) -> tuple[list[str], Changes]:
    """:func:`modify_dataset` on ``source``, then a second backup; return all snapshot IDs and the changes."""
    renv = restic_env(repo, password_file, env)
    changes = modify_dataset(source, seed=seed)
    backup(renv, source, tags=tags)
    return [str(snap["id"]) for snap in snapshots(renv)], changes
