"""The machine-readable attestation: an in-toto Statement v1 in a DSSE envelope signed with Ed25519.

Statement (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "CLIENT-YYYY-MM.pdf", "digest": {"sha256": "<hex>"}}],
     "predicateType": "https://preuve.example/attestation/v1",
     "predicate": {...}}

:data:`PREDICATE_TYPE` names the version of Preuve's predicate (the month's results and the ledger head). It is an
identifier, never fetched; it changes only when the predicate changes incompatibly (``.../v2``), so that a verifier
can tell which layout it reads.

Envelope (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md)::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": base64(statement bytes),
     "signatures": [{"keyid": "<sha256 of the raw Ed25519 public key>", "sig": base64(signature)}]}

The signature covers DSSE's pre-authentication encoding, ``"DSSEv1" SP len(type) SP type SP len(body) SP body``, and
never the JSON around it. The statement bytes are canonical JSON: sorted keys, no insignificant white space, UTF-8.
Verification checks the bytes exactly as signed, so it accepts envelopes produced by other DSSE implementations.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from preuve.reports.keys import keyid_of

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://preuve.example/attestation/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class InvalidStatement(Exception):
    """The envelope or the statement in it cannot be trusted; the message says why in one sentence."""


@dataclass(frozen=True)
class Subject:
    name: str
    sha256: str


@dataclass(frozen=True)
class Statement:
    """A verified statement: what it attests, and which key signed it."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]
    keyid: str
    raw: dict[str, Any]

    @property
    def subject(self) -> Subject:
        return self.subjects[0]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8; NaN and infinities are refused (JSON has no such numbers)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding; lengths are in bytes, written in decimal."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def build_statement(subject_name: str, subject_sha256: str, predicate: dict[str, Any]) -> dict[str, Any]:
    digest = subject_sha256.lower()
    if not _SHA256.match(digest):
        raise ValueError(f"subject digest {subject_sha256!r} is not a SHA-256 in hex")
    if not subject_name:
        raise ValueError("the subject needs a name (the PDF's file name)")
    canonical_json(predicate)  # fails now, not at signing, on values JSON cannot hold
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def sign_envelope(statement: dict[str, Any], private_key: Ed25519PrivateKey, keyid: str) -> dict[str, Any]:
    if keyid != keyid_of(private_key):
        raise ValueError("keyid is not the fingerprint of this private key")
    payload = canonical_json(statement)
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }


def _b64decode(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, as DSSE allows; anything else is malformed (no silent skipping of characters)."""
    if not isinstance(value, str):
        raise InvalidStatement(f"malformed envelope: {what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(value, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidStatement(f"malformed envelope: {what} is not valid base64") from None


def _verify_signature(envelope: dict[str, Any], public_keys: dict[str, Ed25519PublicKey]) -> tuple[str, bytes]:
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise InvalidStatement("malformed envelope: no payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise InvalidStatement(f"wrong payloadType {payload_type!r}: expected {PAYLOAD_TYPE!r}")
    payload = _b64decode(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise InvalidStatement("malformed envelope: no signatures")
    message = pae(payload_type, payload)
    unknown: list[str] = []
    tried = False
    for entry in signatures:
        if not isinstance(entry, dict):
            raise InvalidStatement("malformed envelope: a signature is not an object")
        keyid = entry.get("keyid", "")
        if not isinstance(keyid, str):
            raise InvalidStatement("malformed envelope: a signature's keyid is not a string")
        sig = _b64decode(entry.get("sig"), "signature")
        # The keyid is an unauthenticated hint; without one, every key is tried.
        candidates = [keyid] if keyid else list(public_keys)
        for candidate in candidates:
            key = public_keys.get(candidate)
            if key is None:
                unknown.append(candidate)
                continue
            tried = True
            try:
                key.verify(sig, message)
            except InvalidSignature:
                continue
            return candidate, payload
    if not tried:
        known = ", ".join(sorted(public_keys)) or "none"
        raise InvalidStatement(f"signed by an unknown key {', '.join(unknown) or '?'} (known keys: {known})")
    raise InvalidStatement("bad signature: the statement was altered, or was not signed with the key it names")


def _parse_statement(payload: bytes, keyid: str) -> Statement:
    try:
        raw = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidStatement("malformed statement: the payload is not JSON") from None
    if not isinstance(raw, dict):
        raise InvalidStatement("malformed statement: the payload is not a JSON object")
    if raw.get("_type") != STATEMENT_TYPE:
        raise InvalidStatement(f"malformed statement: _type is {raw.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    subjects_raw = raw.get("subject")
    if not isinstance(subjects_raw, list) or not subjects_raw:
        raise InvalidStatement("malformed statement: no subject")
    subjects: list[Subject] = []
    for item in subjects_raw:
        digest = item.get("digest") if isinstance(item, dict) else None
        sha256 = digest.get("sha256") if isinstance(digest, dict) else None
        name = item.get("name", "") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise InvalidStatement("malformed statement: each subject needs a name and a sha256 digest in hex")
        subjects.append(Subject(name, sha256))
    predicate_type = raw.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise InvalidStatement("malformed statement: no predicateType")
    predicate = raw.get("predicate", {})
    if not isinstance(predicate, dict):
        raise InvalidStatement("malformed statement: the predicate is not an object")
    return Statement(tuple(subjects), predicate_type, predicate, keyid, raw)


def verify_envelope(envelope: Any, public_keys: dict[str, Ed25519PublicKey]) -> Statement:
    """The statement in ``envelope`` once one of its signatures verifies with a key in ``public_keys`` (by keyid).

    Raises :class:`InvalidStatement` for a bad signature, an unknown keyid, a wrong payloadType or anything malformed.
    """
    if not isinstance(envelope, dict):
        raise InvalidStatement("malformed envelope: not a JSON object")
    keyid, payload = _verify_signature(envelope, public_keys)
    return _parse_statement(payload, keyid)


def load_envelope(text: str | bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise InvalidStatement("malformed envelope: not JSON") from None
    if not isinstance(envelope, dict):
        raise InvalidStatement("malformed envelope: not a JSON object")
    return envelope
