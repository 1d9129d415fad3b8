"""Signed commands: the canonical form a sender signs, and the check of a signature.

A command (``workorder-command/1``) travels on ``workorders.commands`` with two Kafka
headers: ``wo-key-id`` (which key signed it) and ``wo-signature`` (base64 of the Ed25519
signature). What is signed is ``DOMAIN + key_id + "\\n" + canonical(command)``, where the
canonical form is the JSON object with its keys sorted at every level, no insignificant
whitespace, non-ASCII characters as UTF-8 (not escaped): re-serializing the command in
transit does not break the signature, changing any value does. docs/signing.md has a test
vector a third party can check.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from workorder_pipeline.schemas.senders import SenderKeys

KEY_ID_HEADER = "wo-key-id"
SIGNATURE_HEADER = "wo-signature"
DOMAIN = b"workorder-command/1 signature\n"


class SignatureRefusal(StrEnum):
    """Why a command's signature does not let it be applied (its refusal code)."""

    unsigned = "unsigned"
    unknown_key = "unknown_key"
    retired_key = "retired_key"
    bad_signature = "bad_signature"
    beyond_rights = "beyond_rights"


def canonical(command: Mapping[str, Any]) -> bytes:
    return json.dumps(command, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_bytes(key_id: str, command: Mapping[str, Any]) -> bytes:
    return DOMAIN + key_id.encode() + b"\n" + canonical(command)


def sign(command: Mapping[str, Any], key_id: str, private_key: Ed25519PrivateKey) -> list[tuple[str, bytes]]:
    """The Kafka headers that carry the command's signature."""
    signature = private_key.sign(signed_bytes(key_id, command))
    return [(KEY_ID_HEADER, key_id.encode()), (SIGNATURE_HEADER, base64.b64encode(signature))]


def check(
    command: Mapping[str, Any], headers: Iterable[tuple[str, bytes]], keys: SenderKeys, acting_unit: str
) -> SignatureRefusal | None:
    """None when a listed, active key signed exactly this command and may act as its unit."""
    found = {name: value for name, value in headers}
    key_id_raw, signature_raw = found.get(KEY_ID_HEADER), found.get(SIGNATURE_HEADER)
    if not key_id_raw or not signature_raw:
        return SignatureRefusal.unsigned
    try:
        key_id = key_id_raw.decode("utf-8")
        signature = base64.b64decode(signature_raw, validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return SignatureRefusal.bad_signature
    key = keys.find(key_id)
    if key is None:
        return SignatureRefusal.unknown_key
    if key.retired:
        return SignatureRefusal.retired_key
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key_bytes).verify(
            signature, signed_bytes(key_id, command)
        )
    except (InvalidSignature, ValueError):
        return SignatureRefusal.bad_signature
    if not key.may_act_as(acting_unit):
        return SignatureRefusal.beyond_rights
    return None
