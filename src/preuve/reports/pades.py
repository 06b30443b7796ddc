"""The signature inside the PDF (PAdES baseline B-B, pyHanko) and its offline check.

Signed with ``keys/pdf.key`` and ``keys/pdf.crt`` (ECDSA P-256 or RSA: PDF readers do not accept Ed25519). No
timestamp authority is called: an attestation is issued and verified without network access, and the Ed25519
statement that names this PDF's SHA-256 already dates it.

The check trusts no certificate authority. It pins the signing certificate to the one the signed statement names
(``predicate.signing.certificate_sha256``), then asks pyHanko whether the signature is intact, cryptographically
valid for that certificate (key usage included), and covers the entire file: anything appended after signing
(an incremental update) is refused.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preuve.reports import keys as keyfiles

FIELD_NAME = "PreuveAttestation"


class PdfSigningError(Exception):
    """The PDF could not be signed; one sentence, never key material."""


def sign_pdf(pdf: bytes, keys_dir: Path, *, reason: str = "Preuve continuity attestation") -> bytes:
    """``pdf`` with a PAdES signature by the provider's PDF key, covering the whole file."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata

    key_file, cert_file = keys_dir / keyfiles.PDF_KEY, keys_dir / keyfiles.PDF_CERT
    keyfiles.load_certificate(keys_dir)  # a clear KeysError ("create the keys with preuve keys init") first
    if not key_file.is_file():
        raise keyfiles.KeysError(f"{key_file}: no PDF signing key (create the keys with `preuve keys init`)")
    chain = keys_dir / keyfiles.PDF_CHAIN
    signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
        str(key_file), str(cert_file), ca_chain_files=(str(chain),) if chain.is_file() else None
    )
    if signer is None:
        raise PdfSigningError(f"{key_file} and {cert_file}: pyHanko could not load the PDF key and certificate")
    metadata = PdfSignatureMetadata(
        field_name=FIELD_NAME, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256", reason=reason
    )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = signers.sign_pdf(writer, metadata, signer=signer)
    except Exception as exc:  # pyHanko raises its own and library errors alike
        raise PdfSigningError(f"signing the PDF failed: {type(exc).__name__}: {exc}") from exc
    signed: bytes = out.getvalue()
    return signed


def pinned_certificate(predicate: dict[str, Any]) -> str | None:
    """The PDF certificate's SHA-256 that a (verified) statement names, if it names one."""
    signing = predicate.get("signing")
    value = signing.get("certificate_sha256") if isinstance(signing, dict) else None
    return value if isinstance(value, str) and value else None


@dataclass
class PdfSignatureCheck:
    """What the check found; ``problems`` is empty when the signature is valid and pinned."""

    problems: list[str] = field(default_factory=list)
    signer: str = ""
    certificate_sha256: str = ""
    signed_at: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_pdf_signature(pdf: bytes, expected_certificate_sha256: str | None) -> PdfSignatureCheck:
    """Check the PAdES signature offline; ``expected_certificate_sha256`` is what the verified statement names."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.errors import SignatureValidationError

    check = PdfSignatureCheck()
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        check.problems.append(f"the PDF cannot be read, so its signature cannot be checked ({type(exc).__name__})")
        return check
    if not signatures:
        check.problems.append("the PDF carries no PAdES signature")
        return check
    if len(signatures) > 1:
        check.problems.append(f"the PDF carries {len(signatures)} signatures; an attestation carries exactly one")
        return check
    try:
        _validate(signatures[0], expected_certificate_sha256, check)
    except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
        check.problems.append(f"the PDF signature cannot be validated: {exc}")
    except Exception as exc:  # a damaged signature can fail deep in the ASN.1 or crypto libraries
        check.problems.append(f"the PDF signature cannot be validated ({type(exc).__name__}: {exc})")
    return check


def _validate(embedded: Any, expected_certificate_sha256: str | None, check: PdfSignatureCheck) -> None:
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    cert = embedded.signer_cert
    check.certificate_sha256 = cert.sha256.hex()
    check.signer = cert.subject.human_friendly
    moment = embedded.self_reported_timestamp
    check.signed_at = moment.isoformat() if moment else ""
    if not expected_certificate_sha256:
        check.problems.append("the statement names no PDF certificate (predicate.signing.certificate_sha256)")
    elif check.certificate_sha256 != expected_certificate_sha256.lower():
        check.problems.append(
            f"the PDF was signed with certificate {check.certificate_sha256}, not the provider's certificate "
            f"{expected_certificate_sha256} named by the statement"
        )
    # Pinned above, so the certificate may be its own anchor; valid at the moment it says it signed (an old
    # attestation stays checkable after its certificate expires), and nothing is fetched.
    context = ValidationContext(trust_roots=[cert], allow_fetching=False, moment=moment)
    status = validate_pdf_signature(embedded, context)
    if not status.intact:
        check.problems.append("the PDF was modified after it was signed (its digest no longer matches the signature)")
    elif not status.valid:
        check.problems.append("the PDF signature is not valid for the certificate it names")
    elif not status.trusted:
        check.problems.append("the PDF's signing certificate is not valid for signing documents at its signing time")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        check.problems.append("the PDF signature does not cover the entire file: something was added after signing")
