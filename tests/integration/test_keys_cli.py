"""`preuve keys` and `preuve verify` as an operator and a client meet them: files, modes, rotation, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from preuve.cli import app
from preuve.reports.keys import key_info, keyid_of, load_signing_key
from preuve.reports.pades import sign_pdf
from preuve.reports.render import html_to_pdf
from preuve.reports.statement import build_statement, sign_envelope
from tests.integration.drill_helpers import PREUVE

pytestmark = pytest.mark.integration

LEDGER_HEAD = "cd" * 32


def _preuve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREUVE_CONFIG"}
    return subprocess.run([*PREUVE, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    assert _preuve("init", str(directory)).returncode == 0
    return directory


@pytest.fixture
def keyed(config: Path) -> Path:
    done = _preuve("--config", str(config), "keys", "init", "--common-name", "Infogérance Dupont SARL")
    assert done.returncode == 0, done.stderr
    return config


def _show(config: Path) -> dict[str, Any]:
    done = _preuve("--config", str(config), "keys", "show", "--json")
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def _signed_pdf(config: Path, words: str = "the attestation") -> bytes:
    """A real PDF carrying the configuration's PAdES signature (what `preuve verify` checks in a PDF)."""
    return sign_pdf(html_to_pdf(f"<html><body><p>{words}</p></body></html>"), config / "keys")


def _signing(config: Path) -> dict[str, str]:
    info = key_info(config / "keys")
    return {"keyid": info.keyid, "certificate_sha256": info.certificate_sha256}


def _attest(config: Path, out: Path, pdf_bytes: bytes | None = None) -> tuple[Path, Path]:
    """A PDF and its statement, signed with the configuration's current keys, as `preuve attest` writes them."""
    out.mkdir(parents=True, exist_ok=True)
    pdf = out / "acme-2025-01.pdf"
    pdf_bytes = pdf_bytes if pdf_bytes is not None else _signed_pdf(config)
    pdf.write_bytes(pdf_bytes)
    key = load_signing_key(config / "keys")
    predicate = {
        "client": "acme",
        "month": "2025-01",
        "verdict": "partly",
        "restorable": True,
        "drills_passed": 29,
        "ledger": {"head": LEDGER_HEAD},
        "targets": [{"name": "usb"}],
        "signing": _signing(config),
    }
    statement = build_statement(pdf.name, hashlib.sha256(pdf_bytes).hexdigest(), predicate)
    envelope_file = out / "acme-2025-01.statement.json"
    envelope_file.write_text(json.dumps(sign_envelope(statement, key, keyid_of(key)), indent=2))
    return pdf, envelope_file


# --- keys ----------------------------------------------------------------------------------------------------------


def test_keys_init_writes_owner_only_private_keys_and_a_certificate(keyed: Path) -> None:
    keys = keyed / "keys"
    assert _mode(keys) == 0o700
    for private in ("signing.key", "pdf.key"):
        assert _mode(keys / private) == 0o600, private
        assert (keys / private).stat().st_uid == os.getuid()
    shown = _show(keyed)
    assert {"keyid", "public_key_file", "certificate_file"} <= set(shown)
    signing = load_signing_key(keys)
    raw = signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert shown["keyid"] == hashlib.sha256(raw).hexdigest()
    assert Path(shown["public_key_file"]) == keys / "public" / f"{shown['keyid']}.pem"
    assert Path(shown["public_key_file"]).read_text() == (keys / "signing.pub").read_text()

    cert = x509.load_pem_x509_certificate(Path(shown["certificate_file"]).read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Infogérance Dupont SARL"
    assert cert.issuer == cert.subject
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3 * 365) <= lifetime <= timedelta(days=3 * 366)
    assert cert.not_valid_before_utc <= datetime.now(UTC) < cert.not_valid_after_utc
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    assert shown["certificate_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    pdf_key = serialization.load_pem_private_key((keys / "pdf.key").read_bytes(), None)
    assert isinstance(pdf_key, ec.EllipticCurvePrivateKey)
    assert pdf_key.public_key() == public

    text = _preuve("--config", str(keyed), "keys", "show")
    assert shown["keyid"] in text.stdout and shown["certificate_sha256"] in text.stdout
    assert "PRIVATE" not in text.stdout + text.stderr


def test_keys_init_refuses_to_overwrite(keyed: Path) -> None:
    before = {p.name: p.read_bytes() for p in (keyed / "keys").iterdir() if p.is_file()}
    again = _preuve("--config", str(keyed), "keys", "init")
    assert again.returncode == 2
    assert "already exist" in again.stderr and "Traceback" not in again.stderr
    assert {p.name: p.read_bytes() for p in (keyed / "keys").iterdir() if p.is_file()} == before


def test_keys_show_without_keys_says_how_to_create_them(config: Path) -> None:
    done = _preuve("--config", str(config), "keys", "show")
    assert done.returncode == 2
    assert "preuve keys init" in done.stderr and "Traceback" not in done.stderr


def _provider_p12(tmp_path: Path, password: str) -> tuple[Path, Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dupont Services")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    data = pkcs12.serialize_key_and_certificates(
        b"provider", key, cert, [ca_cert], serialization.BestAvailableEncryption(password.encode())
    )
    p12 = tmp_path / "provider.p12"
    p12.write_bytes(data)
    password_file = tmp_path / "p12.pass"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return p12, password_file, key, cert


def test_pkcs12_import_round_trip(config: Path, tmp_path: Path) -> None:
    password = "c0rrect-h0rse-battery"
    p12, password_file, key, cert = _provider_p12(tmp_path, password)

    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password\n")
    refused = _preuve(
        "--config", str(config), "keys", "init", "--import-p12", str(p12), "--p12-password-file", str(wrong)
    )
    assert refused.returncode == 2
    assert "password" in refused.stderr and "Traceback" not in refused.stderr
    assert not (config / "keys" / "signing.key").exists()

    done = _preuve(
        "--config", str(config), "keys", "init", "--import-p12", str(p12), "--p12-password-file", str(password_file),
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    shown = json.loads(done.stdout)
    keys = config / "keys"
    imported = x509.load_pem_x509_certificate((keys / "pdf.crt").read_bytes())
    assert imported == cert
    assert shown["certificate_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert shown["certificate_self_signed"] is False
    assert _mode(keys / "pdf.key") == 0o600
    stored = serialization.load_pem_private_key((keys / "pdf.key").read_bytes(), None)
    assert isinstance(stored, ec.EllipticCurvePrivateKey)
    assert stored.private_numbers() == key.private_numbers()
    chain = x509.load_pem_x509_certificates((keys / "pdf-chain.pem").read_bytes())
    assert [c.subject.rfc4514_string() for c in chain] == ["CN=Test CA"]
    assert isinstance(load_signing_key(keys), Ed25519PrivateKey)  # the statement key is still ours


def test_rotation_retires_keys_and_old_statements_still_verify(keyed: Path, tmp_path: Path) -> None:
    old = _show(keyed)
    old_pdf, old_statement = _attest(keyed, tmp_path / "old")
    old_cert = (keyed / "keys" / "pdf.crt").read_bytes()

    done = _preuve("--config", str(keyed), "keys", "rotate", "--json")
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout)
    assert new["retired_keyid"] == old["keyid"] != new["keyid"]
    assert new["retired_keyids"] == [old["keyid"]]
    retired = keyed / "keys" / "retired" / old["keyid"]
    assert _mode(retired) == 0o700
    assert _mode(retired / "signing.key") == 0o600 and _mode(retired / "pdf.key") == 0o600
    assert keyid_of(load_signing_key(retired)) == old["keyid"]
    assert (retired / "pdf.crt").read_bytes() == old_cert
    assert (keyed / "keys" / "pdf.crt").read_bytes() != old_cert
    cert = x509.load_pem_x509_certificate((keyed / "keys" / "pdf.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=Infogérance Dupont SARL"  # the name carries over
    published = sorted(p.stem for p in (keyed / "keys" / "public").glob("*.pem"))
    assert published == sorted([old["keyid"], new["keyid"]])
    assert not list((keyed / "keys").glob(".rotate-*"))

    # an attestation from before the rotation, and one after, both verify with the configuration's public keys
    assert _preuve("--config", str(keyed), "verify", str(old_statement)).returncode == 0
    assert _preuve("--config", str(keyed), "verify", str(old_pdf)).returncode == 0
    _, new_statement = _attest(keyed, tmp_path / "new")
    fresh = _preuve("--config", str(keyed), "verify", str(new_statement))
    assert fresh.returncode == 0, fresh.stderr
    assert new["keyid"] in fresh.stdout
    # the new key alone does not vouch for the old statement
    alone = _preuve("verify", str(old_statement), "--key", new["public_key_file"])
    assert alone.returncode == 1 and "unknown key" in alone.stderr

    kept = _preuve("--config", str(keyed), "keys", "rotate", "--keep-certificate", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["certificate_sha256"] == new["certificate_sha256"]


# --- verify --------------------------------------------------------------------------------------------------------


def test_verify_a_statement_offline_with_the_public_key_alone(keyed: Path, tmp_path: Path) -> None:
    pdf, statement = _attest(keyed, tmp_path / "out")
    public_key = _show(keyed)["public_key_file"]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    done = _preuve(
        "--config", str(tmp_path / "no-such-folder"), "verify", str(statement), "--key", public_key, cwd=empty
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "VALID" in out
    assert f"subject: acme-2025-01.pdf  sha256:{hashlib.sha256(pdf.read_bytes()).hexdigest()}" in out
    assert "predicateType: https://preuve.example/attestation/v1" in out
    assert "  client: acme" in out and "  month: 2025-01" in out and "  verdict: partly" in out
    assert "  restorable: true" in out and "  drills_passed: 29" in out
    assert "targets" not in out  # only top-level scalars

    by_pdf = _preuve("verify", str(pdf), "--key", public_key, cwd=empty)
    assert by_pdf.returncode == 0, by_pdf.stderr
    assert "SHA-256 matches" in by_pdf.stdout
    assert "PDF signature (PAdES): valid" in by_pdf.stdout


def _flip_in_payload(statement: Path) -> None:
    envelope = json.loads(statement.read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b"partly")] ^= 0x01
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    statement.write_text(json.dumps(envelope))


def _flip_in_signature(statement: Path) -> None:
    envelope = json.loads(statement.read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    statement.write_text(json.dumps(envelope))


def _flip_in_file(statement: Path) -> None:
    data = bytearray(statement.read_bytes())
    data[data.index(b'"payload": "') + 40] ^= 0x01  # a character of the base64 payload, in the file itself
    statement.write_bytes(bytes(data))


@pytest.mark.parametrize("tamper", [_flip_in_payload, _flip_in_signature, _flip_in_file])
def test_one_byte_changed_in_the_statement_fails(keyed: Path, tmp_path: Path, tamper: Any) -> None:
    pdf, statement = _attest(keyed, tmp_path / "out")
    public_key = _show(keyed)["public_key_file"]
    tamper(statement)
    for target in (statement, pdf):
        done = _preuve("verify", str(target), "--key", public_key)
        assert done.returncode == 1, done.stdout
        assert "INVALID" in done.stderr and "Traceback" not in done.stderr


def test_one_byte_changed_in_the_pdf_fails(keyed: Path, tmp_path: Path) -> None:
    pdf, _ = _attest(keyed, tmp_path / "out")
    data = bytearray(pdf.read_bytes())
    data[12] ^= 0x20
    pdf.write_bytes(bytes(data))
    done = _preuve("verify", str(pdf), "--key", _show(keyed)["public_key_file"])
    assert done.returncode == 1
    assert "is not the subject" in done.stderr


def test_a_statement_signed_with_another_key_fails(keyed: Path, tmp_path: Path) -> None:
    _, statement = _attest(keyed, tmp_path / "out")
    other = Ed25519PrivateKey.generate()
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(
        other.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    done = _preuve("verify", str(statement), "--key", str(other_pem))
    assert done.returncode == 1 and "unknown key" in done.stderr

    # signed by another key that claims ours
    envelope = json.loads(statement.read_text())
    forged = sign_envelope(json.loads(base64.b64decode(envelope["payload"])), other, keyid_of(other))
    forged["signatures"][0]["keyid"] = envelope["signatures"][0]["keyid"]
    statement.write_text(json.dumps(forged))
    done = _preuve("--config", str(keyed), "verify", str(statement))
    assert done.returncode == 1 and "bad signature" in done.stderr


def test_verify_without_a_statement_beside_the_pdf(tmp_path: Path) -> None:
    pdf = tmp_path / "acme-2025-01.pdf"
    pdf.write_bytes(b"%PDF-1.7\n")
    key = tmp_path / "k.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    done = _preuve("verify", str(pdf), "--key", str(key))
    assert done.returncode == 1 and "no statement beside" in done.stderr


# --- verify --ledger, in process: the ledger module is another part's; a stand-in with its interface -----------


def _fake_ledger(monkeypatch: pytest.MonkeyPatch, result: tuple[bool, list[str], Any]) -> list[Any]:
    module = types.ModuleType("preuve.store.ledger")
    calls: list[Any] = []

    def verify_export(lines: list[bytes]) -> tuple[bool, list[str], Any]:
        calls.append(lines)
        return result

    module.verify_export = verify_export  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "preuve.store.ledger", module)
    return calls


@pytest.mark.parametrize(
    ("result", "code", "message"),
    [
        ((True, [], LEDGER_HEAD), 0, "ends at the attested head"),
        ((True, [], types.SimpleNamespace(seq=7, entry_hash=LEDGER_HEAD)), 0, "ends at the attested head"),
        ((True, [], "ef" * 32), 1, f"the statement attests head {LEDGER_HEAD}"),
        ((False, ["entry 3 was edited"], None), 1, "entry 3 was edited"),
    ],
    ids=["intact", "intact-head-object", "other-head", "broken"],
)
def test_verify_with_a_ledger_export(
    keyed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, result: Any, code: int, message: str
) -> None:
    _, statement = _attest(keyed, tmp_path / "out")
    export = tmp_path / "acme-2025-01.jsonl"
    export.write_text('{"seq": 1}\n{"seq": 2}\n')
    calls = _fake_ledger(monkeypatch, result)
    done = CliRunner().invoke(
        app, ["verify", str(statement), "--key", _show(keyed)["public_key_file"], "--ledger", str(export)]
    )
    assert done.exit_code == code, done.output
    assert message in done.output
    assert calls == [[b'{"seq": 1}\n', b'{"seq": 2}\n']]  # the lines as written, for the ledger's line numbers


def _real_export(client: str, month: str, count: int) -> tuple[list[str], str]:
    """An export in the documented format of `preuve.store.ledger.export_month`, and its head's entry hash."""
    ledger = pytest.importorskip("preuve.store.ledger")
    if not hasattr(ledger, "verify_export"):
        pytest.skip("preuve.store.ledger.verify_export is not there yet")
    genesis = "0" * 64
    lines = [
        ledger.canonical(
            {"type": "head-before", "client": client, "month": month, "seq": 0, "entry_hash": genesis}
        ).decode()
    ]
    prev = genesis
    start = int(datetime(2025, 1, 2, tzinfo=UTC).timestamp() * 1_000_000)
    for seq in range(1, count + 1):
        recorded = start + seq * 3_600_000_000
        payload = {"status": "passed", "files": seq}
        entry_hash = ledger.entry_hash(client, seq, "drill", recorded, payload, prev)
        line = {"type": "entry", "client": client, "seq": seq, "kind": "drill", "recorded_at": recorded,
                "payload": payload, "prev_hash": prev, "entry_hash": entry_hash}  # fmt: skip
        lines.append(ledger.canonical(line).decode())
        prev = entry_hash
    return lines, prev


def test_verify_with_the_real_ledger_export(keyed: Path, tmp_path: Path) -> None:
    lines, head = _real_export("acme", "2025-01", 3)
    out = tmp_path / "out"
    out.mkdir()
    pdf = out / "acme-2025-01.pdf"
    pdf.write_bytes(_signed_pdf(keyed))
    key = load_signing_key(keyed / "keys")
    statement = build_statement(
        pdf.name,
        hashlib.sha256(pdf.read_bytes()).hexdigest(),
        {"client": "acme", "ledger": {"head": head, "seq": 3}, "signing": _signing(keyed)},
    )
    envelope = out / "acme-2025-01.statement.json"
    envelope.write_text(json.dumps(sign_envelope(statement, key, keyid_of(key))))
    export = tmp_path / "acme-2025-01.jsonl"
    export.write_text("\n".join(lines) + "\n")
    public_key = _show(keyed)["public_key_file"]

    done = _preuve("verify", str(envelope), "--key", public_key, "--ledger", str(export))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ends at the attested head" in done.stdout
    assert _preuve("verify", str(pdf), "--key", public_key, "--ledger", str(export)).returncode == 0

    data = bytearray(export.read_bytes())
    data[data.rindex(b'"files":') + 8] ^= 0x01  # one byte of the last entry's payload
    export.write_bytes(bytes(data))
    edited = _preuve("verify", str(envelope), "--key", public_key, "--ledger", str(export))
    assert edited.returncode == 1 and "INVALID" in edited.stderr

    export.write_text("\n".join(lines[:-1]) + "\n")  # the last entry removed: a valid chain, but not the head
    short = _preuve("verify", str(envelope), "--key", public_key, "--ledger", str(export))
    assert short.returncode == 1 and "the statement attests head" in short.stderr
