"""Building blocks for web console tests and the web benchmark: a configuration with clients, console users and
signed attestations (real Ed25519 keys and DSSE statements, the files `preuve verify` checks)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from preuve.reports.keys import init_keys, keyid_of, load_signing_key
from preuve.reports.statement import build_statement, sign_envelope
from preuve.store.db import Store
from preuve.store.models import Attestation

PASSWORD = "correct horse battery"  # every test user's password (long enough for the policy)


def write_client(config: Path, client_id: str, name: str, targets: dict[str, dict[str, object]]) -> None:
    """A job file with local targets given as {name: {"path": ..., extra keys}}; password files are created."""
    import yaml

    (config / "jobs").mkdir(parents=True, exist_ok=True)
    (config / "secrets").mkdir(parents=True, exist_ok=True)
    specs = {}
    for target, values in targets.items():
        password = config / "secrets" / f"{client_id}-{target}.pass"
        if not password.exists():
            password.write_text(f"pw-{client_id}-{target}-secret\n")
        specs[target] = {
            "kind": "local",
            "password_file": str(password),
            "location": "onsite",
            "media": "disk",
            **values,
        }
    job = {"client": name, "language": "en", "policy": "standard", "targets": specs}
    (config / "jobs" / f"{client_id}.yaml").write_text(yaml.safe_dump(job, allow_unicode=True), encoding="utf-8")


@dataclass(frozen=True)
class IssuedAttestation:
    id: int
    pdf: Path
    statement: Path


def issue_attestation(
    store: Store,
    folder: Path,
    keys_dir: Path,
    client: str,
    month: str,
    *,
    version: int = 1,
    verdict: str = "met",
    restorable: str = "yes",
) -> IssuedAttestation:
    """A PDF (a small real PDF body), its DSSE-signed in-toto statement, and the attestation row pointing at them."""
    if not (keys_dir / "public").is_dir():
        init_keys(keys_dir, common_name="Test Provider")
    folder.mkdir(parents=True, exist_ok=True)
    suffix = f".v{version}" if version > 1 else ""
    pdf = folder / f"{client}-{month}{suffix}.pdf"
    pdf.write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n"
        + f"% attestation of {client} for {month}\n".encode()
        + b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    key = load_signing_key(keys_dir)
    keyid = keyid_of(key)
    statement = build_statement(pdf.name, digest, {"client": client, "month": month, "verdict": verdict})
    statement_file = folder / f"{client}-{month}{suffix}.statement.json"
    statement_file.write_text(json.dumps(sign_envelope(statement, key, keyid)), encoding="utf-8")
    html = folder / f"{client}-{month}{suffix}.html"
    html.write_text("<html></html>", encoding="utf-8")
    with store.session(write=True) as session:
        row = Attestation(
            client_id=client,
            month=month,
            version=version,
            language="en",
            verdict=verdict,
            restorable=restorable,
            keyid=keyid,
            pdf_path=str(pdf),
            statement_path=str(statement_file),
            html_path=str(html),
            pdf_sha256=digest,
            ledger_head="0" * 64,
            ledger_seq=0,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return IssuedAttestation(row.id, pdf, statement_file)
