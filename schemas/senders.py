"""Who may send lifecycle commands: the public keys of the senders (``policy/senders.yaml``).

Each sender (the HTTP API of ``wo run``, a unit's own system) signs its commands with an
Ed25519 private key it alone holds; the pipeline holds only the public keys, with the units
each key may act as. Two active keys per sender at most (one being rotated in); a retired
key stays listed so that commands signed with it are refused with that reason.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: ``acts_as`` entry meaning every unit (the API: it authenticates each caller itself).
ANY_UNIT = "*"
MAX_ACTIVE_KEYS_PER_SENDER = 2


def _ed25519_public_key(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    return value


class SenderKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    sender: str = Field(min_length=1, max_length=100)
    acts_as: tuple[str, ...] = Field(min_length=1, description="unit ids, or * for any unit")
    public_key: Annotated[str, AfterValidator(_ed25519_public_key)] = Field(description="base64, 32 bytes")
    retired: bool = False

    def may_act_as(self, unit: str) -> bool:
        return ANY_UNIT in self.acts_as or unit in self.acts_as

    @property
    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)


class SenderKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    senders: tuple[SenderKey, ...] = ()

    @model_validator(mode="after")
    def _unique_ids_and_two_active_keys_per_sender(self) -> SenderKeys:
        ids = Counter(key.key_id for key in self.senders)
        repeated = sorted(key_id for key_id, count in ids.items() if count > 1)
        if repeated:
            raise ValueError(f"key_id repeated: {', '.join(repeated)}")
        active = Counter(key.sender for key in self.senders if not key.retired)
        crowded = sorted(sender for sender, count in active.items() if count > MAX_ACTIVE_KEYS_PER_SENDER)
        if crowded:
            raise ValueError(
                f"more than {MAX_ACTIVE_KEYS_PER_SENDER} active keys for {', '.join(crowded)}: "
                "retire the old one"
            )
        return self

    def with_key(self, key: SenderKey) -> SenderKeys:
        return SenderKeys(senders=(*self.senders, key))

    def find(self, key_id: str) -> SenderKey | None:
        return next((key for key in self.senders if key.key_id == key_id), None)
