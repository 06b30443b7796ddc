"""Issuing one client's attestation for one month: render, sign, write the files, record the version.

Order of work, so that nothing is ever overwritten and two issuers never both win the same version:

1. the predicate is built from the ledger (:func:`preuve.reports.month.build_predicate`; a month that has not
   ended only with ``partial``, and the document then says it covers the month so far), then completed with the
   version and the signing keys' fingerprints;
2. the page is rendered (HTML and PDF), the PDF signed (PAdES), the statement built on the *signed* PDF's SHA-256
   and signed (DSSE, Ed25519); all of it is written to a staging folder beside the output;
3. in one database transaction, the ``attestation`` row is inserted (the unique ``client, month, version``
   constraint decides between two issuers) and the staged files are hard-linked to their final names (a link
   never replaces an existing file); the transaction commits only when every file is in place.

A version lost to another issuer is re-rendered under the next number (``preuve attest``) or given up
(the monthly run, which only ever issues a month's first complete attestation: partial ones issued during the
month by hand or by the demo do not count). Files of version 1 are
``CLIENT-YYYY-MM.pdf|.statement.json|.html``; version n > 1 adds ``.vN`` before the extension.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from preuve.config.loader import Config
from preuve.reports import keys as keyfiles
from preuve.reports import month as content
from preuve.reports.catalogue import text
from preuve.reports.formats import Lang, language
from preuve.reports.pades import PdfSigningError, sign_pdf
from preuve.reports.render import RenderError, render_html, render_pdf
from preuve.reports.statement import build_statement, canonical_json, sign_envelope
from preuve.reports.view import Files, plan_verdict, restorable_answer
from preuve.store.db import Store
from preuve.store.models import Attestation

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_ATTEMPTS = 5  # versions lost to concurrent issuers before giving up
_VERSION_IN_NAME = re.compile(r"^(?P<base>.+?)(?:\.v(?P<version>[0-9]+))?\.(?:pdf|html|statement\.json)$")

PredicateBuilder = Callable[..., dict[str, Any]]


class AttestationError(Exception):
    """The attestation could not be issued; one sentence saying what to do. Nothing was recorded.

    ``reason`` is the content builder's (unknown-client, bad-month, month-not-ended, ledger-tampered) when it
    refused, "" otherwise: the CLI tells a usage problem from a broken ledger by it."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


# Everything issuing raises for a reason an operator can act on (each with its sentence).
ISSUE_ERRORS: tuple[type[Exception], ...] = (AttestationError, keyfiles.KeysError, RenderError, PdfSigningError)


@dataclass(frozen=True)
class Issued:
    id: int
    client_id: str
    month: str
    version: int
    language: str
    pdf: Path
    statement: Path
    html: Path
    public_key: Path
    keyid: str
    certificate_sha256: str
    verdict: str  # the plan: met | partly | not-met | unknown
    restorable: str  # yes | partly | no | unknown
    pdf_sha256: str
    ledger_head: str
    ledger_seq: int
    partial: bool = False  # the month so far: it had not ended when issued

    def as_json(self) -> dict[str, Any]:
        return {
            "pdf": str(self.pdf),
            "statement": str(self.statement),
            "html": str(self.html),
            "keyid": self.keyid,
            "verdict": self.verdict,
            "restorable": self.restorable,
            "version": self.version,
            "month": self.month,
            "client": self.client_id,
            "language": self.language,
            "public_key": str(self.public_key),
            "pdf_sha256": self.pdf_sha256,
            "certificate_sha256": self.certificate_sha256,
            "ledger_head": self.ledger_head,
            "ledger_seq": self.ledger_seq,
            "partial": self.partial,
            "attestation_id": self.id,
        }


def check_month(month: str) -> str:
    if not MONTH.match(month):
        raise AttestationError(f"{month!r} is not a month: write it YYYY-MM, like 2026-10")
    return month


@dataclass(frozen=True)
class FileNames:
    pdf: str
    statement: str
    html: str


def file_names(client_id: str, month: str, version: int) -> FileNames:
    base = f"{client_id}-{month}" + (f".v{version}" if version > 1 else "")
    return FileNames(pdf=f"{base}.pdf", statement=f"{base}.statement.json", html=f"{base}.html")


def public_key_name(keyid: str) -> str:
    return f"preuve-key-{keyid[:16]}.pem"


def default_out_dir(config: Config, client_id: str) -> Path:
    return config.directory / "attestations" / client_id


def _versions_on_disk(out_dir: Path, client_id: str, month: str) -> set[int]:
    found: set[int] = set()
    if not out_dir.is_dir():
        return found
    base = f"{client_id}-{month}"
    for path in out_dir.iterdir():
        match = _VERSION_IN_NAME.match(path.name)
        if match and match.group("base") == base:
            found.add(int(match.group("version") or 1))
    return found


def _versions_recorded(store: Store, client_id: str, month: str, *, complete_only: bool = False) -> int:
    """The highest version recorded for the month (0: none); ``complete_only``: among complete-month versions."""
    query = select(func.max(Attestation.version)).where(
        Attestation.client_id == client_id,  # type: ignore[arg-type]
        Attestation.month == month,  # type: ignore[arg-type]
    )
    if complete_only:
        query = query.where(Attestation.partial.is_(False))  # type: ignore[attr-defined]
    with store.session() as session:
        highest = session.exec(query).one()  # type: ignore[call-overload]
    return int(highest[0] or 0)


def next_version(store: Store, out_dir: Path, client_id: str, month: str) -> int:
    """One more than any version recorded or present as files (a crash may have left files without a row)."""
    return max([_versions_recorded(store, client_id, month), *_versions_on_disk(out_dir, client_id, month)]) + 1


def _write(path: Path, data: bytes) -> None:
    with path.open("xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _ledger_head(predicate: dict[str, Any]) -> tuple[str, int]:
    ledger = predicate.get("ledger")
    head = ledger.get("head") if isinstance(ledger, dict) else None
    seq = ledger.get("seq") if isinstance(ledger, dict) else None
    if isinstance(head, dict):  # {"seq", "entry_hash"} is accepted too
        seq, head = head.get("seq", seq), head.get("entry_hash")
    if not isinstance(head, str) or not re.fullmatch(r"[0-9a-f]{64}", head) or not isinstance(seq, int):
        raise AttestationError("the attestation's content names no ledger head (predicate.ledger.head and .seq)")
    return head, seq


def _client_language(config: Config, client_id: str, predicate: dict[str, Any], lang: str | None) -> Lang:
    if lang is None:
        client = predicate.get("client")
        lang = client.get("language") if isinstance(client, dict) else None
    if lang is None:
        lang = config.client(client_id).job.language
    try:
        return language(lang)
    except ValueError as exc:
        raise AttestationError(str(exc)) from None


@dataclass(frozen=True)
class _Signer:
    keys_dir: Path
    keyid: str
    certificate_sha256: str
    public_pem: bytes


def _signer(config: Config) -> _Signer:
    keys_dir = config.path(config.settings.keys)
    try:
        info = keyfiles.key_info(keys_dir)
    except keyfiles.KeysError as exc:
        raise AttestationError(str(exc)) from None
    return _Signer(keys_dir, info.keyid, info.certificate_sha256, info.public_key_pem.encode("ascii"))


def _claim(store: Store, row: Attestation, staged: dict[Path, Path]) -> int | None:
    """Insert ``row`` and link the staged files in place, all or nothing; ``None`` when the version was taken."""
    placed: list[Path] = []
    try:
        with store.session(write=True) as session:
            session.add(row)
            session.flush()  # the INSERT: another issuer's row of the same version makes it fail here
            for source, destination in staged.items():
                os.link(source, destination)  # never replaces: FileExistsError if someone else put it there
                placed.append(destination)
            assert row.id is not None
            return row.id
    except (IntegrityError, FileExistsError):
        for path in placed:
            path.unlink(missing_ok=True)
        return None
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise


def issue_attestation(
    config: Config,
    store: Store,
    client_id: str,
    month: str,
    *,
    out_dir: Path | None = None,
    lang: str | None = None,
    now: datetime | None = None,
    first_only: bool = False,
    partial: bool = False,
    builder: PredicateBuilder | None = None,
) -> Issued | None:
    """Issue the next version of ``client_id``'s attestation for ``month``; see the module's docstring.

    ``partial``: a month that has not ended is attested up to ``now`` (the page says "month so far"); without it,
    such a month is refused (AttestationError, reason month-not-ended). ``first_only`` (the monthly run): do
    nothing and return ``None`` when a complete version of that month is already recorded, or when another issuer
    records one first. ``builder`` replaces ``build_predicate`` (rendering tests with fixed contents, tools).
    Raises :class:`AttestationError` (and KeysError, RenderError, PdfSigningError: all with a sentence).
    """
    check_month(month)
    config.client(client_id)  # ConfigurationError naming the jobs folder for an unknown client
    out = out_dir if out_dir is not None else default_out_dir(config, client_id)
    if first_only and _versions_recorded(store, client_id, month, complete_only=True) > 0:
        return None
    signer = _signer(config)
    build = builder if builder is not None else content.build_predicate
    try:
        predicate = build(config, store, client_id, month, now=now, partial=partial)
    except content.AttestationError as exc:
        raise AttestationError(exc.full_message, exc.reason) from None
    head, seq = _ledger_head(predicate)
    language_ = _client_language(config, client_id, predicate, lang)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttestationError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    key_file = out / public_key_name(signer.keyid)
    for _attempt in range(MAX_ATTEMPTS):
        version = next_version(store, out, client_id, month)
        issued = _issue_version(
            store, out, client_id, month, version, predicate, language_, signer, key_file, head, seq
        )
        if issued is not None:
            return issued
        if first_only:
            return None
    raise AttestationError(
        f"{client_id} {month}: other issuers took {MAX_ATTEMPTS} versions in a row while this one was rendered; "
        "try again"
    )


def _issue_version(
    store: Store,
    out: Path,
    client_id: str,
    month: str,
    version: int,
    predicate: dict[str, Any],
    lang: Lang,
    signer: _Signer,
    key_file: Path,
    head: str,
    seq: int,
) -> Issued | None:
    names = file_names(client_id, month, version)
    files = Files(pdf=names.pdf, statement=names.statement, public_key=key_file.name)
    content = {
        **predicate,
        "version": version,
        "signing": {"keyid": signer.keyid, "certificate_sha256": signer.certificate_sha256},
    }
    canonical_json(content)  # values JSON cannot carry fail here, before any rendering
    html = render_html(content, lang, files)
    pdf = sign_pdf(render_pdf(content, lang, files), signer.keys_dir, reason=text(lang, "title"))
    pdf_sha256 = hashlib.sha256(pdf).hexdigest()
    statement = build_statement(names.pdf, pdf_sha256, content)
    envelope = sign_envelope(statement, keyfiles.load_signing_key(signer.keys_dir), signer.keyid)

    staging = out / f".staging-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o755)
    try:
        final = {
            out / names.pdf: pdf,
            out / names.statement: (json.dumps(envelope, indent=2) + "\n").encode("utf-8"),
            out / names.html: html.encode("utf-8"),
        }
        staged: dict[Path, Path] = {}
        for destination, data in final.items():
            _write(staging / destination.name, data)
            staged[staging / destination.name] = destination
        if not key_file.exists():  # the public key beside the documents, for the client's verification
            _write(staging / key_file.name, signer.public_pem)
            with contextlib.suppress(FileExistsError):  # another issuer put it there: same keyid, same content
                os.link(staging / key_file.name, key_file)
        row = Attestation(
            client_id=client_id,
            month=month,
            version=version,
            language=lang,
            verdict=plan_verdict(_headline(content)),
            restorable=restorable_answer(_headline(content)),
            keyid=signer.keyid,
            pdf_path=str((out / names.pdf).resolve()),
            statement_path=str((out / names.statement).resolve()),
            html_path=str((out / names.html).resolve()),
            pdf_sha256=pdf_sha256,
            ledger_head=head,
            ledger_seq=seq,
            partial=predicate.get("partial") is True,
        )
        row_id = _claim(store, row, staged)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if row_id is None:
        return None
    return Issued(
        id=row_id,
        client_id=client_id,
        month=month,
        version=version,
        language=lang,
        pdf=Path(row.pdf_path),
        statement=Path(row.statement_path),
        html=Path(row.html_path),
        public_key=key_file.resolve(),
        keyid=signer.keyid,
        certificate_sha256=signer.certificate_sha256,
        verdict=row.verdict,
        restorable=row.restorable,
        pdf_sha256=pdf_sha256,
        ledger_head=head,
        ledger_seq=seq,
        partial=row.partial,
    )


def _headline(predicate: dict[str, Any]) -> dict[str, Any]:
    headline = predicate.get("headline")
    return headline if isinstance(headline, dict) else {}
