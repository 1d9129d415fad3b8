"""Bearer tokens: one per unit or role, from a file, stored as SHA-256 hashes.

Tokens are random (``wo api token`` makes them, 32 bytes): a plain hash is enough to keep
the file from being a list of passwords, and every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.workorder import COMMAND_CENTER


class Role(StrEnum):
    #: A squad: sees and acts on the orders assigned to it.
    unit = "unit"
    #: The command center: sees everything, reassigns, extends, sends back for rework.
    command_center = "command_center"
    #: Leadership and supervision: reads everything, acts on nothing.
    supervisor = "supervisor"


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Who holds it (for logs and revocation)")
    role: Role
    unit: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _unit_role_names_a_unit(self) -> TokenEntry:
        if self.role is Role.unit and not self.unit:
            raise ValueError("a token of role 'unit' names its unit")
        return self


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: list[TokenEntry] = []


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    unit: str | None

    @property
    def acting_unit(self) -> str | None:
        """The unit commands are sent as: the squad's own, or the command center's."""
        return COMMAND_CENTER if self.role is Role.command_center else self.unit

    def may_see(self, order_unit: str) -> bool:
        return self.role is not Role.unit or self.unit == order_unit


class Tokens:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = entries

    def principal(self, token: str) -> Principal | None:
        digest = hash_token(token)
        found = None
        for entry in self._entries:  # no early exit: every check costs the same
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return Principal(name=found.name, role=found.role, unit=found.unit) if found else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def load_tokens(path: Path) -> Tokens:
    from services.policy_files import load_model

    return Tokens(load_model(path, TokenFile).tokens)
