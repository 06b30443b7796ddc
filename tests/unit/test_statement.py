"""The DSSE-wrapped in-toto statement: shape, canonical bytes, tampering, and agreement with securesystemslib."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]  # documented; no __all__

from preuve.reports.keys import keyid_of
from preuve.reports.statement import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    InvalidStatement,
    build_statement,
    canonical_json,
    pae,
    sign_envelope,
    verify_envelope,
)

PDF_DIGEST = hashlib.sha256(b"%PDF-1.7 attestation").hexdigest()
PREDICATE: dict[str, Any] = {
    "client": "acme",
    "month": "2025-01",
    "verdict": "partly",
    "restorable": True,
    "ledger": {"head": "ab" * 32, "sequence": 42},
    "rpo_compliance": 0.9875,
    "note": "Sauvegarde vérifiée",
}


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _signed(key: Ed25519PrivateKey, predicate: dict[str, Any] | None = None) -> dict[str, Any]:
    statement = build_statement("acme-2025-01.pdf", PDF_DIGEST, predicate if predicate is not None else PREDICATE)
    return sign_envelope(statement, key, keyid_of(key))


def _keys(*keys: Ed25519PrivateKey) -> dict[str, Any]:
    return {keyid_of(k): k.public_key() for k in keys}


def test_keyid_is_sha256_of_the_raw_public_key(key: Ed25519PrivateKey) -> None:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert len(raw) == 32
    assert keyid_of(key) == keyid_of(key.public_key()) == hashlib.sha256(raw).hexdigest()


def test_statement_shape() -> None:
    statement = build_statement("acme-2025-01.pdf", PDF_DIGEST.upper(), PREDICATE)
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "acme-2025-01.pdf", "digest": {"sha256": PDF_DIGEST}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": PREDICATE,
    }
    with pytest.raises(ValueError, match="SHA-256"):
        build_statement("x.pdf", "abc", {})
    with pytest.raises(ValueError):
        build_statement("x.pdf", PDF_DIGEST, {"bad": float("nan")})


def test_pae_matches_the_dsse_specification() -> None:
    # the example in DSSE's protocol.md
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "  # lengths in bytes, not characters


def test_envelope_shape_and_canonical_payload(key: Ed25519PrivateKey) -> None:
    envelope = _signed(key)
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"], validate=True)
    statement = json.loads(payload)
    assert payload == canonical_json(statement)
    assert b" " not in payload.replace(b"Sauvegarde v\xc3\xa9rifi\xc3\xa9e", b"")
    assert list(statement) == sorted(statement)
    assert envelope["signatures"] == [{"keyid": keyid_of(key), "sig": envelope["signatures"][0]["sig"]}]
    assert len(base64.b64decode(envelope["signatures"][0]["sig"])) == 64


def test_sign_then_verify(key: Ed25519PrivateKey) -> None:
    verified = verify_envelope(_signed(key), _keys(Ed25519PrivateKey.generate(), key))
    assert verified.keyid == keyid_of(key)
    assert verified.subject.name == "acme-2025-01.pdf"
    assert verified.subject.sha256 == PDF_DIGEST
    assert verified.predicate_type == PREDICATE_TYPE
    assert verified.predicate == PREDICATE
    assert verified.raw["_type"] == STATEMENT_TYPE


def test_sign_refuses_a_keyid_that_is_not_the_keys(key: Ed25519PrivateKey) -> None:
    statement = build_statement("a.pdf", PDF_DIGEST, {})
    with pytest.raises(ValueError, match="fingerprint"):
        sign_envelope(statement, key, keyid_of(Ed25519PrivateKey.generate()))


def _flip_payload_byte(envelope: dict[str, Any]) -> dict[str, Any]:
    payload = bytearray(base64.b64decode(envelope["payload"]))
    index = payload.index(b"partly")
    payload[index] ^= 0x01  # "partly" -> "qartly": still valid JSON, one byte different
    return {**envelope, "payload": base64.b64encode(bytes(payload)).decode()}


def _flip_signature_byte(envelope: dict[str, Any]) -> dict[str, Any]:
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[10] ^= 0x80
    return {**envelope, "signatures": [{**envelope["signatures"][0], "sig": base64.b64encode(bytes(sig)).decode()}]}


@pytest.mark.parametrize("tamper", [_flip_payload_byte, _flip_signature_byte], ids=["payload", "signature"])
def test_one_changed_byte_is_a_bad_signature(key: Ed25519PrivateKey, tamper: Any) -> None:
    with pytest.raises(InvalidStatement, match="bad signature"):
        verify_envelope(tamper(_signed(key)), _keys(key))


def test_another_key(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidStatement, match="unknown key"):
        verify_envelope(_signed(other), _keys(key))
    # another key claiming our keyid
    forged = _signed(other)
    forged["signatures"][0]["keyid"] = keyid_of(key)
    with pytest.raises(InvalidStatement, match="bad signature"):
        verify_envelope(forged, _keys(key))


def test_signature_without_keyid_is_tried_against_every_key(key: Ed25519PrivateKey) -> None:
    envelope = _signed(key)
    envelope["signatures"][0].pop("keyid")
    assert verify_envelope(envelope, _keys(Ed25519PrivateKey.generate(), key)).keyid == keyid_of(key)


def test_urlsafe_base64_is_accepted(key: Ed25519PrivateKey) -> None:
    envelope = _signed(key, {"blob": "???>>>~~~"})  # characters whose base64 holds '+' or '/'
    urlsafe = {
        **envelope,
        "payload": base64.urlsafe_b64encode(base64.b64decode(envelope["payload"])).decode(),
    }
    assert urlsafe["payload"] != envelope["payload"]
    assert verify_envelope(urlsafe, _keys(key)).predicate == {"blob": "???>>>~~~"}


def _resigned(key: Ed25519PrivateKey, payload: bytes, payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    sig = key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid_of(key), "sig": base64.b64encode(sig).decode()}],
    }


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda e: [e], "not a JSON object"),
        (lambda e: {**e, "payloadType": "application/json"}, "wrong payloadType"),
        (lambda e: {k: v for k, v in e.items() if k != "payloadType"}, "no payloadType"),
        (lambda e: {**e, "signatures": []}, "no signatures"),
        (lambda e: {**e, "signatures": ["x"]}, "not an object"),
        (lambda e: {**e, "payload": e["payload"][:-2] + "*="}, "not valid base64"),
        (lambda e: {**e, "payload": 12}, "not a base64 string"),
        (lambda e: {**e, "signatures": [{**e["signatures"][0], "sig": "%%%"}]}, "not valid base64"),
    ],
)
def test_malformed_envelopes(key: Ed25519PrivateKey, mangle: Any, message: str) -> None:
    with pytest.raises(InvalidStatement, match=message):
        verify_envelope(mangle(_signed(key)), _keys(key))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"_type": "https://in-toto.io/Statement/v0.1"}', "_type"),
        (b'{"_type": "https://in-toto.io/Statement/v1", "subject": []}', "no subject"),
        (
            b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": {"sha1": "00"}}]}',
            "sha256",
        ),
        (
            b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": {"sha256": "'
            + PDF_DIGEST.encode()
            + b'"}}], "predicate": {}}',
            "predicateType",
        ),
    ],
)
def test_a_validly_signed_but_malformed_statement_is_refused(
    key: Ed25519PrivateKey, payload: bytes, message: str
) -> None:
    with pytest.raises(InvalidStatement, match=message):
        verify_envelope(_resigned(key, payload), _keys(key))


def test_a_signature_over_another_payload_type_does_not_verify(key: Ed25519PrivateKey) -> None:
    envelope = _resigned(key, canonical_json(build_statement("a.pdf", PDF_DIGEST, {})), "application/json")
    envelope["payloadType"] = PAYLOAD_TYPE  # the type is covered by the signature (PAE)
    with pytest.raises(InvalidStatement, match="bad signature"):
        verify_envelope(envelope, _keys(key))


# --- an independent implementation: securesystemslib --------------------------------------------------------------


def _sslib_key(key: Ed25519PrivateKey) -> SSlibKey:
    return SSlibKey.from_crypto(key.public_key(), keyid=keyid_of(key))


def test_securesystemslib_verifies_our_envelope(key: Ed25519PrivateKey) -> None:
    envelope = _signed(key)
    theirs = Envelope.from_dict(copy.deepcopy(envelope))
    accepted = theirs.verify([_sslib_key(key)], 1)
    assert list(accepted) == [keyid_of(key)]
    assert theirs.pae() == pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    assert json.loads(theirs.payload)["predicate"] == PREDICATE
    # and refuses a tampered one, as we do
    with pytest.raises(VerificationError):
        Envelope.from_dict(_flip_payload_byte(envelope)).verify([_sslib_key(key)], 1)


def test_we_verify_an_envelope_signed_by_securesystemslib(key: Ed25519PrivateKey) -> None:
    statement = build_statement("acme-2025-01.pdf", PDF_DIGEST, PREDICATE)
    payload = json.dumps(statement, indent=2).encode()  # not canonical: we check the bytes as signed
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(key, _sslib_key(key)))
    verified = verify_envelope(json.loads(json.dumps(envelope.to_dict())), _keys(key))
    assert verified.predicate == PREDICATE
    assert verified.keyid == keyid_of(key)


_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=50, deadline=None)
@given(predicate=st.dictionaries(st.text(max_size=10), _json, max_size=6))
def test_any_json_predicate_round_trips(key: Ed25519PrivateKey, predicate: dict[str, Any]) -> None:
    assert verify_envelope(_signed(key, predicate), _keys(key)).predicate == predicate
