"""The senders' public keys (``policy/senders.yaml``) and a sender's own private key file.

The pipeline reads only public keys. A sender's private key file (made by ``wo keys make``)
holds its key id on the first line and the key in PKCS#8 PEM after it; it never leaves the
sender (the HTTP API of ``wo run`` is a sender too: ``WO_API_SIGNING_KEY_FILE``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from workorder_pipeline.processors.command_signing import sign
from workorder_pipeline.schemas.errors import InputError
from workorder_pipeline.schemas.senders import ANY_UNIT, SenderKey, SenderKeys
from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem, line_finder, load_model

SENDERS_FILE = "senders.yaml"


def load_senders(directory: Path, units: Collection[str]) -> SenderKeys:
    """The public keys of ``directory/senders.yaml`` (none when the file is absent); every
    ``acts_as`` unit must exist. PolicyError names file, line and field of each problem."""
    path = directory / SENDERS_FILE
    if not path.exists():
        return SenderKeys()
    keys = load_model(path, SenderKeys)
    line_of = line_finder(path)
    problems = [
        PolicyProblem(
            path,
            line_of(("senders", index, "acts_as", position)),
            f"senders.{index}.acts_as",
            f"no unit {unit!r}",
        )
        for index, key in enumerate(keys.senders)
        for position, unit in enumerate(key.acts_as)
        if unit != ANY_UNIT and unit not in units
    ]
    if problems:
        raise PolicyError(problems)
    return keys


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    def public(self, sender: str, acts_as: tuple[str, ...]) -> SenderKey:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return SenderKey(
            key_id=self.key_id, sender=sender, acts_as=acts_as, public_key=base64.b64encode(raw).decode()
        )


def signed_headers(key: SigningKey, value: bytes) -> list[tuple[str, bytes]]:
    """The signature headers of a command as sent (``value``: its JSON bytes)."""
    return sign(json.loads(value), key.key_id, key.private_key)


class SigningKeyError(InputError):
    pass


def new_signing_key(key_id: str) -> SigningKey:
    return SigningKey(key_id, Ed25519PrivateKey.generate())


def write_signing_key(key: SigningKey, path: Path) -> None:
    """The key file, readable by its owner only."""
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(f"key_id: {key.key_id}\n".encode() + pem)


def read_signing_key(path: Path) -> SigningKey:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: {exc.strerror}") from exc
    head, _, pem = text.partition(b"\n")
    if not head.startswith(b"key_id: ") or b"-----BEGIN PRIVATE KEY-----" not in pem:
        raise SigningKeyError(f"{path}: not a key file of `wo keys make` (key_id line, then a PEM key)")
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: the PEM key cannot be read: {exc}") from exc
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return SigningKey(head[len(b"key_id: ") :].decode().strip(), private_key)


def policy_dir_with_sender(
    source_dir: Path, target_dir: Path, sender: str, acts_as: tuple[str, ...]
) -> SigningKey:
    """A copy of the policy directory ``source_dir`` in ``target_dir`` whose senders.yaml also
    lists a new key of ``sender`` (for tests and drills that put commands on the topic
    themselves); the new key, to sign with."""
    shutil.copytree(source_dir, target_dir, dirs_exist_ok=True)
    path = target_dir / SENDERS_FILE
    keys = load_model(path, SenderKeys) if path.exists() else SenderKeys()
    key = new_signing_key(f"{''.join(c if c.isalnum() else '-' for c in sender)[:40]}-{os.urandom(4).hex()}")
    keys = keys.with_key(key.public(sender, acts_as))
    path.write_text(yaml.safe_dump(keys.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    return key
