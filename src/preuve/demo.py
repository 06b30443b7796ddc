"""`preuve demo`: a sample office's files, a restic repository of them, a demo client, one drill.

Everything lives in one scratch folder; running it again starts afresh.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import secrets
import shutil
import sqlite3
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from preuve.config.loader import Config, load_config
from preuve.drills.engine import DrillOptions
from preuve.drills.result import DrillKind, DrillStatus
from preuve.restic import commands, execute
from preuve.restic.environment import child_env

if TYPE_CHECKING:
    from preuve.reports.issue import Issued
    from preuve.store.db import Store

Echo = Callable[[str], None]
WORDS = [
    "facture",
    "devis",
    "chantier",
    "client",
    "patient",
    "rendez-vous",
    "dossier",
    "compte",
    "bilan",
    "salaire",
    "contrat",
    "plan",
    "invoice",
    "quote",
    "site",
    "customer",
    "appointment",
    "record",
    "account",
    "balance",
    "payroll",
    "agreement",
    "drawing",
]


def make_dataset(root: Path, *, files: int = 1200, seed: int = 7) -> Path:
    """A small office's share: letters, spreadsheets, PDFs, photos, a database, a canary. Returns the canary."""
    rng = random.Random(seed)  # noqa: S311 - deterministic demo data, not security
    folders = ["Comptabilite", "Clients/Dupont", "Clients/Martin", "Chantiers/2026", "Photos", "Administratif"]
    for name in folders:
        (root / name).mkdir(parents=True, exist_ok=True)
    for index in range(files):
        folder = root / folders[index % len(folders)]
        kind = index % 6
        if kind == 0:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 2000)))
            (folder / f"note-{index:04d}.txt").write_text(text + "\n", encoding="utf-8")
        elif kind == 1:
            rows = "\n".join(f"{i};{rng.choice(WORDS)};{rng.randint(1, 99999)}" for i in range(rng.randint(10, 900)))
            (folder / f"export-{index:04d}.csv").write_text("id;label;amount\n" + rows + "\n", encoding="utf-8")
        elif kind == 2:
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(100, 3000)))
            (folder / f"facture-{index:04d}.pdf").write_bytes(
                b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nstream\n" + body.encode() + b"\nendstream\n%%EOF\n"
            )
        elif kind == 3:
            payload = rng.randbytes(rng.randint(20_000, 400_000))
            (folder / f"photo-{index:04d}.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + payload + b"\xff\xd9")
        elif kind == 4:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("[Content_Types].xml", "<Types/>")
                archive.writestr("word/document.xml", " ".join(rng.choice(WORDS) for _ in range(500)))
            (folder / f"courrier-{index:04d}.docx").write_bytes(buffer.getvalue())
        else:
            (folder / f"empty-{index:04d}.txt").write_bytes(b"" if index % 12 == 5 else b"ok\n")
    database = root / "Administratif" / "agenda.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE IF NOT EXISTS rdv (id INTEGER PRIMARY KEY, who TEXT, at TEXT)")
        db.executemany(
            "INSERT INTO rdv (who, at) VALUES (?, ?)",
            [(rng.choice(WORDS), f"2026-11-{d:02d}") for d in range(1, 29)] * 50,
        )
    db.close()
    (root / "Photos" / "chantier-grand.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.randbytes(6_000_000) + b"\xff\xd9")
    canary = root / ".preuve-canary"
    canary.write_text(f"Preuve canary {secrets.token_hex(16)}\n", encoding="utf-8")
    past = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    for path in root.rglob("*"):
        os.utime(path, (past, past), follow_symlinks=False)
    return canary


def run_demo(directory: Path, *, echo: Echo) -> int:
    from preuve.drills.run import run_now
    from preuve.store.db import Store

    if directory.exists():
        shutil.rmtree(directory)
    data = directory / "data" / "bureau"
    repo = directory / "repository"
    config_dir = directory / "config"
    for folder in (data, config_dir / "jobs", config_dir / "secrets"):
        folder.mkdir(parents=True)
    (config_dir / "secrets").chmod(0o700)
    echo(f"1. Sample office files in {data}")
    canary = make_dataset(data)
    password_file = config_dir / "secrets" / "demo.pass"
    password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
    password_file.chmod(0o600)

    binary = shutil.which("restic") or "restic"
    scratch = directory / "scratch"
    scratch.mkdir()
    env = child_env(
        {"RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(password_file)}, home=scratch, tmpdir=scratch
    )
    echo(f"2. A restic repository of them in {repo}")
    for args, what in (
        (("--no-cache", *commands.init()), "creating the repository"),
        (("--no-cache", *commands.backup([data], tags=["demo"])), "backing up the sample files"),
    ):
        completed = execute.run((binary, *args), env=env, deadline_s=600)
        if completed.exit_code != 0:
            echo(f"error: restic failed while {what}:\n{completed.stderr.strip()}")
            return 3

    digest = hashlib.sha256(canary.read_bytes()).hexdigest()
    (config_dir / "preuve.toml").write_text('database = "sqlite:///preuve.db"\nsandbox = "sandbox"\n', encoding="utf-8")
    (config_dir / "jobs" / "demo.yaml").write_text(
        f"""# Written by `preuve demo`.
client: Cabinet Démo
language: fr
contacts: [direction@demo.example]
policy: standard
targets:
  usb:
    kind: local
    path: {repo}
    password_file: secrets/demo.pass
    location: onsite
    media: disk
    source: {data}
    canaries:
      - {{path: {canary}, sha256: "{digest}"}}
""",
        encoding="utf-8",
    )
    echo(f"3. A demo client in {config_dir / 'jobs' / 'demo.yaml'}")
    config = load_config(config_dir)
    store = Store.open(config.database_url)
    try:
        echo("4. A restore drill of demo/usb (a sample of files, restored into a sandbox and verified)")
        drill_id, result = run_now(config, store, "demo/usb", DrillOptions(kind=DrillKind.SAMPLE), requested_by="demo")
        attestation = _attest(config, store, echo)
    finally:
        store.close()
    echo("")
    echo(
        f"Verdict: {result.status.value.upper()}" + (f" ({result.failure_class.value})" if result.failure_class else "")
    )
    echo(result.message)
    echo("")
    echo("Restore log:   " + f"preuve --config {config_dir} drill show {drill_id} --log")
    echo("All drills:    " + f"preuve --config {config_dir} drill list")
    echo("A full drill:  " + f"preuve --config {config_dir} drill run demo/usb --full")
    if attestation is not None:
        echo("")
        echo(f"Signed attestation: {attestation.pdf}")
        echo(f"  statement:  {attestation.statement}")
        echo(f"  public key: {attestation.public_key}")
        echo(f"Verify it:     preuve verify {attestation.pdf} --key {attestation.public_key}")
    return 0 if result.status is DrillStatus.PASSED else (1 if result.status is DrillStatus.FAILED else 3)


def _attest(config: Config, store: Store, echo: Echo) -> Issued | None:
    """5. The provider's signing keys and the demo client's attestation for the current month so far.

    The month has not ended, so it is a partial attestation (the document says "mois en cours" on its first page);
    the daemon issues the complete month once it is over."""
    from preuve.reports.issue import ISSUE_ERRORS, issue_attestation
    from preuve.reports.keys import init_keys

    keys_dir = config.path(config.settings.keys)
    init_keys(keys_dir, common_name="Preuve demo provider")
    now = datetime.now(UTC)
    month = f"{now:%Y-%m}"
    echo(f"5. Signing keys in {keys_dir}, and the signed attestation of demo for {month} so far (month in progress)")
    try:
        return issue_attestation(config, store, "demo", month, now=now, partial=True)
    except ISSUE_ERRORS as exc:
        echo(f"   attestation not issued: {exc}")
        return None
