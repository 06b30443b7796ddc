"""Issued attestations as the console lists and serves them, with their verification status.

"Verified" means what `preuve verify` checks: the statement's DSSE signature verifies with one of the provider's
published keys, and the PDF on disk is the statement's subject (same SHA-256). Results are kept per file state
(size and modification time), so a listing does not re-hash every PDF at every view.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import col, select

from preuve.reports.keys import KeysError, published_keys
from preuve.reports.statement import InvalidStatement, load_envelope, verify_envelope
from preuve.store.db import Store
from preuve.store.models import Attestation


@dataclass(frozen=True)
class AttestationInfo:
    id: int
    client: str
    month: str
    version: int
    language: str
    verdict: str
    restorable: str
    keyid: str
    pdf_path: Path
    statement_path: Path
    pdf_sha256: str
    created_at: datetime


@dataclass(frozen=True)
class Verification:
    ok: bool
    text: str  # "verified: ..." or what is wrong, in one sentence


def _info(row: Attestation, base: Path) -> AttestationInfo:
    assert row.id is not None
    return AttestationInfo(
        id=row.id,
        client=row.client_id,
        month=row.month,
        version=row.version,
        language=row.language,
        verdict=row.verdict,
        restorable=row.restorable,
        keyid=row.keyid,
        pdf_path=_resolve(base, row.pdf_path),
        statement_path=_resolve(base, row.statement_path),
        pdf_sha256=row.pdf_sha256,
        created_at=row.created_at,
    )


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def list_attestations(
    store: Store, base: Path, *, client: str | None = None, month: str | None = None
) -> list[AttestationInfo]:
    """Newest month first, then client, newest version first."""
    statement = select(Attestation)
    if client is not None:
        statement = statement.where(col(Attestation.client_id) == client)
    if month is not None:
        statement = statement.where(col(Attestation.month) == month)
    statement = statement.order_by(
        col(Attestation.month).desc(), col(Attestation.client_id), col(Attestation.version).desc()
    )
    with store.session() as session:
        return [_info(row, base) for row in session.exec(statement).all()]


def months(store: Store, client: str | None = None) -> list[str]:
    statement = select(Attestation.month).distinct()
    if client is not None:
        statement = statement.where(col(Attestation.client_id) == client)
    with store.session() as session:
        return sorted({str(m) for m in session.exec(statement).all()}, reverse=True)


def get_attestation(store: Store, base: Path, attestation_id: int) -> AttestationInfo | None:
    with store.session() as session:
        row = session.get(Attestation, attestation_id)
        return _info(row, base) if row is not None else None


class Verifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[object, ...], Verification] = {}

    def verify(self, item: AttestationInfo, keys_dir: Path) -> Verification:
        try:
            stats = (item.statement_path.stat(), item.pdf_path.stat())
        except OSError as exc:
            return Verification(False, f"file missing: {Path(exc.filename or '').name or exc.strerror}")
        keys_stamp = tuple(
            (p.name, p.stat().st_mtime_ns) for p in sorted((keys_dir / "public").glob("*.pem")) if p.is_file()
        )
        key = (item.id, *((s.st_size, s.st_mtime_ns) for s in stats), keys_stamp)
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = _verify(item, keys_dir)
            with self._lock:
                self._cache[key] = found
        return found


def _verify(item: AttestationInfo, keys_dir: Path) -> Verification:
    try:
        keys = published_keys(keys_dir)
    except KeysError as exc:
        return Verification(False, f"the provider's public keys cannot be read: {exc}")
    if not keys:
        return Verification(False, f"no published public key in {keys_dir / 'public'}")
    try:
        statement = verify_envelope(load_envelope(item.statement_path.read_bytes()), keys)
        digest = hashlib.sha256(item.pdf_path.read_bytes()).hexdigest()
    except InvalidStatement as exc:
        return Verification(False, f"statement not valid: {exc}")
    except OSError as exc:
        return Verification(False, f"cannot read the files: {exc.strerror}")
    if all(subject.sha256 != digest for subject in statement.subjects):
        return Verification(False, "the PDF is not the one the statement attests (SHA-256 differs)")
    return Verification(True, f"signature valid (key {statement.keyid[:16]}…), PDF matches")
