"""The provider's signing keys: Ed25519 for the DSSE statement, an X.509 certificate for the PDF signature.

Layout of the keys folder (``keys`` in preuve.toml, relative to the configuration folder)::

    keys/                       mode 0700
      signing.key               Ed25519 private key, PEM PKCS#8, mode 0600
      signing.pub               its public key, PEM (SubjectPublicKeyInfo)
      pdf.key                   the PDF signing key (ECDSA P-256 created here, or EC/RSA imported), PKCS#8, 0600
      pdf.crt                   its X.509 certificate, PEM (self-signed, or the provider's own)
      pdf-chain.pem             intermediate certificates that came with an imported PKCS#12, if any
      public/<keyid>.pem        every Ed25519 public key ever used, current and retired: what verification reads
      retired/<keyid>/          the files of a rotated key set, as they were

``keyid`` is the key's fingerprint: lowercase hex SHA-256 of the raw 32-byte Ed25519 public key. Readers do not
accept Ed25519 in PDF signatures, hence the second key. Private key material is only ever written to files created
with mode 0600; it is never printed, logged, or passed in argv (a PKCS#12 password is read from a file).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from preuve import redact

SIGNING_KEY = "signing.key"
SIGNING_PUB = "signing.pub"
PDF_KEY = "pdf.key"
PDF_CERT = "pdf.crt"
PDF_CHAIN = "pdf-chain.pem"
PUBLIC_DIR = "public"
RETIRED_DIR = "retired"
CERT_VALIDITY = timedelta(days=3 * 365 + 1)  # three years, one of them possibly leap

PdfPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeysError(Exception):
    """A problem with the keys folder or an imported key, in a sentence for the operator (never key material)."""


@dataclass(frozen=True)
class KeyInfo:
    """What to hand to clients: public parts and fingerprints only."""

    keyid: str
    public_key_file: Path
    public_key_pem: str
    certificate_file: Path
    certificate_sha256: str
    certificate_subject: str
    certificate_not_after: datetime
    certificate_self_signed: bool
    retired_keyids: tuple[str, ...]


def keyid_of(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def default_common_name() -> str:
    return f"Preuve attestations ({socket.gethostname()})"


# --- files ---------------------------------------------------------------------------------------------------------


def _private_pem(key: Ed25519PrivateKey | PdfPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (no window where a private key is readable); never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; it never adds any
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if fd != -1:
            os.close(fd)


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _current_files(keys_dir: Path) -> list[Path]:
    return [keys_dir / name for name in (SIGNING_KEY, SIGNING_PUB, PDF_KEY, PDF_CERT, PDF_CHAIN)]


def has_keys(keys_dir: Path) -> bool:
    return any(p.exists() for p in _current_files(keys_dir))


# --- creating ------------------------------------------------------------------------------------------------------


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, common_name: str, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # tolerate a verifier's clock a little behind ours
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,  # nonRepudiation
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class _PdfMaterial:
    key: PdfPrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def load_pkcs12(p12_file: Path, password_file: Path | None) -> _PdfMaterial:
    """Read the provider's own certificate and key; the password comes from a file, and is registered as a secret."""
    password: bytes | None = None
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise KeysError(f"{password_file}: cannot read the PKCS#12 password file ({exc.strerror})") from None
        redact.register(text)
        password = text.encode("utf-8")
    try:
        data = p12_file.read_bytes()
    except OSError as exc:
        raise KeysError(f"{p12_file}: cannot read the PKCS#12 file ({exc.strerror})") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except (ValueError, TypeError):
        hint = "" if password_file else " (if it is protected, give --p12-password-file)"
        raise KeysError(f"{p12_file}: not a PKCS#12 file, or the password is wrong{hint}") from None
    if key is None or cert is None:
        raise KeysError(f"{p12_file}: the PKCS#12 file must hold both a private key and its certificate")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeysError(f"{p12_file}: the key is {type(key).__name__}; PDF signatures need an ECDSA (P-256) or RSA key")
    cert_public = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if cert_public != key_public:
        raise KeysError(f"{p12_file}: the private key does not belong to the certificate")
    return _PdfMaterial(key, cert, tuple(extra))


def _new_pdf_material(common_name: str, now: datetime) -> _PdfMaterial:
    key = ec.generate_private_key(ec.SECP256R1())
    return _PdfMaterial(key, self_signed_certificate(key, common_name, now))


def _write_key_set(directory: Path, signing: Ed25519PrivateKey, pdf: _PdfMaterial) -> None:
    _write_new(directory / SIGNING_KEY, _private_pem(signing), 0o600)
    _write_new(directory / SIGNING_PUB, public_pem(signing.public_key()), 0o644)
    _write_new(directory / PDF_KEY, _private_pem(pdf.key), 0o600)
    _write_new(directory / PDF_CERT, pdf.cert.public_bytes(serialization.Encoding.PEM), 0o644)
    if pdf.chain:
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pdf.chain)
        _write_new(directory / PDF_CHAIN, chain, 0o644)


def _publish(keys_dir: Path, key: Ed25519PublicKey) -> Path:
    public_dir = keys_dir / PUBLIC_DIR
    public_dir.mkdir(mode=0o755, exist_ok=True)
    path = public_dir / f"{keyid_of(key)}.pem"
    if not path.exists():
        _write_new(path, public_pem(key), 0o644)
    return path


def init_keys(
    keys_dir: Path,
    *,
    common_name: str | None = None,
    p12_file: Path | None = None,
    p12_password_file: Path | None = None,
    now: datetime | None = None,
) -> KeyInfo:
    """Create the key set; refuses when any key file is already there (rotation is :func:`rotate_keys`)."""
    if has_keys(keys_dir):
        raise KeysError(f"{keys_dir}: keys already exist; `preuve keys rotate` replaces them and keeps the old ones")
    pdf = (
        load_pkcs12(p12_file, p12_password_file)
        if p12_file is not None
        else _new_pdf_material(common_name or default_common_name(), now or datetime.now(UTC))
    )
    signing = Ed25519PrivateKey.generate()
    _mkdir_private(keys_dir)
    _write_key_set(keys_dir, signing, pdf)
    _publish(keys_dir, signing.public_key())
    return key_info(keys_dir)


def rotate_keys(
    keys_dir: Path,
    *,
    common_name: str | None = None,
    p12_file: Path | None = None,
    p12_password_file: Path | None = None,
    keep_certificate: bool = False,
    now: datetime | None = None,
) -> tuple[str, KeyInfo]:
    """Retire the current key set to ``retired/<keyid>/`` and create a new one; returns (retired keyid, new info).

    The new certificate is self-signed with the old one's common name (or ``common_name``), imported from
    ``p12_file``, or, with ``keep_certificate``, the current certificate and key stay in place and only the Ed25519
    key changes (for a provider whose certificate was issued by a CA). The retired public key stays in ``public/``.
    """
    old_signing = load_signing_key(keys_dir)
    old_keyid = keyid_of(old_signing)
    retired = keys_dir / RETIRED_DIR / old_keyid
    if retired.exists():
        raise KeysError(f"{retired} already exists: this key was retired before; check the keys folder by hand")
    old_cert = load_certificate(keys_dir)
    if keep_certificate:
        pdf = _PdfMaterial(_load_pdf_key(keys_dir), old_cert, _load_chain(keys_dir))
    elif p12_file is not None:
        pdf = load_pkcs12(p12_file, p12_password_file)
    else:
        names = old_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        old_cn = str(names[0].value) if names else None
        pdf = _new_pdf_material(common_name or old_cn or default_common_name(), now or datetime.now(UTC))
    signing = Ed25519PrivateKey.generate()
    _publish(keys_dir, old_signing.public_key())  # a folder from before public/ existed: keep the old key verifiable

    # The new set is written completely in a staging folder first, so that a failure leaves the current set intact.
    staging = keys_dir / f".rotate-{os.getpid()}"
    _mkdir_private(staging)
    try:
        _write_key_set(staging, signing, pdf)
        _mkdir_private(retired)
        (keys_dir / RETIRED_DIR).chmod(0o700)
        for path in _current_files(keys_dir):
            if path.exists():
                path.rename(retired / path.name)
        for path in staging.iterdir():
            path.rename(keys_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _publish(keys_dir, signing.public_key())
    return old_keyid, key_info(keys_dir)


# --- reading -------------------------------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeysError(f"{path}: no {what} (create the keys with `preuve keys init`)") from None
    except OSError as exc:
        raise KeysError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    path = keys_dir / SIGNING_KEY
    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except (ValueError, TypeError):
        raise KeysError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeysError(f"{path}: the signing key must be Ed25519, not {type(key).__name__}")
    return key


def _load_pdf_key(keys_dir: Path) -> PdfPrivateKey:
    path = keys_dir / PDF_KEY
    try:
        key = serialization.load_pem_private_key(_read(path, "PDF signing key"), password=None)
    except (ValueError, TypeError):
        raise KeysError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeysError(f"{path}: the PDF key must be ECDSA or RSA, not {type(key).__name__}")
    return key


def load_certificate(keys_dir: Path) -> x509.Certificate:
    path = keys_dir / PDF_CERT
    try:
        return x509.load_pem_x509_certificate(_read(path, "certificate"))
    except ValueError:
        raise KeysError(f"{path}: not a PEM X.509 certificate") from None


def _load_chain(keys_dir: Path) -> tuple[x509.Certificate, ...]:
    path = keys_dir / PDF_CHAIN
    if not path.exists():
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(_read(path, "certificate chain")))
    except ValueError:
        raise KeysError(f"{path}: not a list of PEM X.509 certificates") from None


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo), as `preuve keys show` hands it out."""
    try:
        key = serialization.load_pem_public_key(_read(path, "public key"))
    except (ValueError, TypeError):
        raise KeysError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeysError(f"{path}: attestations are signed with Ed25519; this is a {type(key).__name__}")
    return key


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """keyid -> key; the keyid is computed from each key, whatever the file is called."""
    return {keyid_of(key): key for key in map(load_public_key, paths)}


def published_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Every public key the provider has signed with (``public/*.pem``), current and retired."""
    return load_public_keys(sorted((keys_dir / PUBLIC_DIR).glob("*.pem")))


def key_info(keys_dir: Path) -> KeyInfo:
    public_file = keys_dir / SIGNING_PUB
    public = load_public_key(public_file)
    keyid = keyid_of(public)
    published = keys_dir / PUBLIC_DIR / f"{keyid}.pem"
    cert = load_certificate(keys_dir)
    retired_dir = keys_dir / RETIRED_DIR
    retired = tuple(sorted(p.name for p in retired_dir.iterdir() if p.is_dir())) if retired_dir.is_dir() else ()
    return KeyInfo(
        keyid=keyid,
        public_key_file=published if published.is_file() else public_file,
        public_key_pem=public_pem(public).decode("ascii"),
        certificate_file=keys_dir / PDF_CERT,
        certificate_sha256=certificate_fingerprint(cert),
        certificate_subject=cert.subject.rfc4514_string(),
        certificate_not_after=cert.not_valid_after_utc,
        certificate_self_signed=cert.issuer == cert.subject,
        retired_keyids=retired,
    )
