"""Signed commands: the canonical form, the check of every way a signature can be wrong,
the sender-key policy, and the test vector of docs/signing.md."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from workorder_pipeline.processors.command_signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SignatureRefusal,
    canonical,
    check,
    sign,
)
from workorder_pipeline.schemas.senders import SenderKey, SenderKeys
from workorder_pipeline.services.policy_files import PolicyError
from workorder_pipeline.services.sender_keys import (
    load_senders,
    new_signing_key,
    read_signing_key,
    write_signing_key,
)

ROOT = Path(__file__).resolve().parents[2]
COMMAND = {
    "schema": "workorder-command/1",
    "command_id": "c-1",
    "work_order_id": "WO-VA-1",
    "action": "accept",
    "actor": {"unit": "squad-1", "officer_ids": ["JS0682-0117", "JS0682-0342"]},
    "at": "2026-12-05T09:30:00+08:00",
}
SQUAD = new_signing_key("squad-1-2026")
API = new_signing_key("api-2026")
RETIRED_SQUAD_KEY = SQUAD.public("squad-1 system", ("squad-1",)).model_copy(update={"retired": True})
KEYS = SenderKeys(senders=(SQUAD.public("squad-1 system", ("squad-1",)), API.public("api", ("*",))))


def test_a_command_signed_by_its_units_key_passes() -> None:
    assert check(COMMAND, sign(COMMAND, SQUAD.key_id, SQUAD.private_key), KEYS, "squad-1") is None


def test_the_api_key_may_act_as_any_unit() -> None:
    as_center = {**COMMAND, "actor": {"unit": "command-center", "officer_ids": []}}
    assert check(as_center, sign(as_center, API.key_id, API.private_key), KEYS, "command-center") is None


def test_another_serialization_of_the_same_command_still_verifies() -> None:
    headers = sign(COMMAND, SQUAD.key_id, SQUAD.private_key)
    reordered = json.loads(json.dumps(dict(reversed(list(COMMAND.items())))))
    assert check(reordered, headers, KEYS, "squad-1") is None


def _other_key_headers() -> list[tuple[str, bytes]]:
    return sign(COMMAND, SQUAD.key_id, Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    ("command", "headers", "keys", "unit", "refusal"),
    [
        (COMMAND, [], KEYS, "squad-1", SignatureRefusal.unsigned),
        (COMMAND, [(KEY_ID_HEADER, b"squad-1-2026")], KEYS, "squad-1", SignatureRefusal.unsigned),
        (COMMAND, sign(COMMAND, "nobody", SQUAD.private_key), KEYS, "squad-1", SignatureRefusal.unknown_key),
        (
            COMMAND,
            sign(COMMAND, SQUAD.key_id, SQUAD.private_key),
            SenderKeys(
                senders=(SQUAD.public("squad-1 system", ("squad-1",)).model_copy(update={"retired": True}),)
            ),
            "squad-1",
            SignatureRefusal.retired_key,
        ),
        (
            {**COMMAND, "action": "close"},
            sign(COMMAND, SQUAD.key_id, SQUAD.private_key),
            KEYS,
            "squad-1",
            SignatureRefusal.bad_signature,
        ),
        (COMMAND, _other_key_headers(), KEYS, "squad-1", SignatureRefusal.bad_signature),
        (
            COMMAND,
            [(KEY_ID_HEADER, b"squad-1-2026"), (SIGNATURE_HEADER, b"not base64!")],
            KEYS,
            "squad-1",
            SignatureRefusal.bad_signature,
        ),
        (
            COMMAND,
            [(KEY_ID_HEADER, b"\xff\xfe"), (SIGNATURE_HEADER, b"AAAA")],
            KEYS,
            "squad-1",
            SignatureRefusal.bad_signature,
        ),
        (
            {**COMMAND, "actor": {"unit": "command-center", "officer_ids": []}},
            sign(
                {**COMMAND, "actor": {"unit": "command-center", "officer_ids": []}},
                SQUAD.key_id,
                SQUAD.private_key,
            ),
            KEYS,
            "command-center",
            SignatureRefusal.beyond_rights,
        ),
    ],
    ids=[
        "no-headers",
        "no-signature",
        "unknown-key",
        "retired-key",
        "altered-after-signing",
        "signed-with-another-key",
        "signature-not-base64",
        "key-id-not-utf8",
        "squad-key-acting-as-command-center",
    ],
)
def test_every_wrong_signature_is_refused_with_its_reason(
    command: dict[str, object],
    headers: list[tuple[str, bytes]],
    keys: SenderKeys,
    unit: str,
    refusal: SignatureRefusal,
) -> None:
    assert check(command, headers, keys, unit) is refusal


def test_at_most_two_active_keys_per_sender() -> None:
    keys = [new_signing_key(f"k{n}").public("squad-1 system", ("squad-1",)) for n in range(3)]
    SenderKeys(senders=(*keys[:2], keys[2].model_copy(update={"retired": True})))  # rotation: fine
    with pytest.raises(ValidationError, match="more than 2 active keys for squad-1 system"):
        SenderKeys(senders=tuple(keys))


def test_a_sender_acting_as_a_unit_that_does_not_exist_is_refused_with_its_line(tmp_path: Path) -> None:
    key = SQUAD.public("squad-9 system", ("squad-99",))
    (tmp_path / "senders.yaml").write_text(
        f"senders:\n  - key_id: {key.key_id}\n    sender: x\n    acts_as:\n      - squad-99\n"
        f"    public_key: {key.public_key}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"senders\.yaml:5: senders\.0\.acts_as: no unit 'squad-99'"):
        load_senders(tmp_path, {"squad-1"})


def test_a_key_file_round_trips_and_is_private(tmp_path: Path) -> None:
    write_signing_key(SQUAD, tmp_path / "k.key")
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    again = read_signing_key(tmp_path / "k.key")
    assert again.key_id == SQUAD.key_id
    assert check(COMMAND, sign(COMMAND, again.key_id, again.private_key), KEYS, "squad-1") is None


def test_the_test_vector_of_docs_signing_md_is_right() -> None:
    page = (ROOT / "docs" / "signing.md").read_text(encoding="utf-8")
    seed = bytes.fromhex(re.search(r"seed \(32 bytes, hex\): `([0-9a-f]{64})`", page).group(1))  # type: ignore[union-attr]
    public = re.search(r"public key \(base64\): `([^`]+)`", page).group(1)  # type: ignore[union-attr]
    sent, canonical_text = re.findall(r"```json\n(.+?)\n```", page, re.S)
    signature = re.search(r"`wo-signature` \(base64\):\s+`([^`]+)`", page).group(1)  # type: ignore[union-attr]
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    raw_public = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64encode(raw_public).decode() == public
    assert canonical(json.loads(sent)).decode() == canonical_text
    headers = sign(json.loads(sent), "example-2026", private_key)
    assert dict(headers)[SIGNATURE_HEADER].decode() == signature
    keys = SenderKeys(
        senders=(SenderKey(key_id="example-2026", sender="x", acts_as=("squad-1",), public_key=public),)
    )
    assert check(json.loads(sent), headers, keys, "squad-1") is None
