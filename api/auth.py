"""Bearer tokens: one per unit or role, from a file, stored as SHA-256 hashes.

Tokens are random (``wo api token`` makes them, 32 bytes): a plain hash is enough to keep
the file from being a list of passwords, and every comparison is constant-time. Each token
names a unit of ``units.yaml`` (checked when it is made and when the file is loaded), has
an expiry, and can be revoked in the file: an expired or revoked token is refused exactly
like an unknown one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workorder_pipeline.schemas.officers import Officer, OfficerRole
from workorder_pipeline.schemas.times import UtcDatetime
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrder

#: How long a token made by ``wo api token`` is valid unless told otherwise.
DEFAULT_TOKEN_DAYS = 90


class Role(StrEnum):
    #: A squad: sees and acts on the orders assigned to it.
    unit = "unit"
    #: The command center: sees everything, reassigns, extends, sends back for rework.
    command_center = "command_center"
    #: Leadership and supervision: reads everything, acts on nothing.
    supervisor = "supervisor"
    #: Keeps the console's accounts: reads everything, acts on no order.
    administrator = "administrator"


#: The console's officers' roles on the API's rights: one table for both ways in. A squad
#: leader has an officer's rights on orders (the same unit's); the console tells them apart.
OFFICER_RIGHTS: dict[OfficerRole, Role] = {
    OfficerRole.officer: Role.unit,
    OfficerRole.squad_leader: Role.unit,
    OfficerRole.duty_officer: Role.command_center,
    OfficerRole.supervisor: Role.supervisor,
    OfficerRole.administrator: Role.administrator,
}


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Who holds it (for logs and revocation)")
    role: Role
    unit: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    expires_at: UtcDatetime = Field(description="After this the token is refused (re-issue it)")
    revoked: bool = Field(default=False, description="Set to true to refuse the token at once")

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

    @property
    def may_act(self) -> bool:
        """Whether it sends commands at all (which ones, on which orders: processors.lifecycle)."""
        return self.role in (Role.unit, Role.command_center)

    @property
    def may_read_figures(self) -> bool:
        """The figures units are judged by: the command center and supervisors."""
        return self.role in (Role.command_center, Role.supervisor)

    @property
    def may_read_reports(self) -> bool:
        """The monthly analysis reports (研判报告): the same readers as the figures."""
        return self.may_read_figures

    @property
    def may_administer(self) -> bool:
        return self.role is Role.administrator

    def may_see(self, order: WorkOrder) -> bool:
        """Its own orders and those copied to it (抄送: read only); other roles see all."""
        return self.role is not Role.unit or self.unit == order.unit or self.unit in order.copied_to

    def may_read_personal_data(self, order: WorkOrder) -> bool:
        """The complainant's data: for the callback, the assigned unit and the command center."""
        return self.may_act and self.is_assigned(order)

    def is_assigned(self, order: WorkOrder) -> bool:
        """The order's own unit, or a role that sees every order (not a unit it was copied to)."""
        return self.role is not Role.unit or self.unit == order.unit


def officer_principal(officer: Officer) -> Principal:
    """The rights of a signed-in officer (its certificate number names it)."""
    role = OFFICER_RIGHTS[officer.role]
    return Principal(name=officer.certificate_no, role=role, unit=officer.unit if role is Role.unit else None)


class Tokens:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = entries

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        """The tokens as loaded (hashes only: the secrets were never kept)."""
        return tuple(self._entries)

    def principal(self, token: str, now: datetime) -> Principal | None:
        """Who holds ``token``: None for an unknown, expired or revoked one (the same answer)."""
        digest = hash_token(token)
        found = None
        for entry in self._entries:  # no early exit: every check costs the same
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        if found is None or found.revoked or found.expires_at <= now:
            return None
        return Principal(name=found.name, role=found.role, unit=found.unit)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def issue_token(name: str, role: Role, unit: str | None, days: int, now: datetime) -> tuple[str, TokenEntry]:
    """A new token (to hand over once) and its tokens-file entry (which keeps only its hash)."""
    token = new_token()
    expires_at = (now + timedelta(days=days)).replace(microsecond=0)
    entry = TokenEntry(name=name, role=role, unit=unit, sha256=hash_token(token), expires_at=expires_at)
    return token, entry


def entry_line(entry: TokenEntry) -> str:
    """The entry as one line to add under ``tokens:`` in the tokens file."""
    fields = {
        "name": entry.name,
        "role": entry.role.value,
        "unit": entry.unit,
        "sha256": entry.sha256,
        "expires_at": entry.expires_at.isoformat(),
    }
    return f"  - {json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False)}"


def load_tokens(path: Path, units: Collection[str]) -> Tokens:
    """The tokens file; every token's unit must be one of ``units`` (PolicyError otherwise)."""
    from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem, line_finder, load_model

    entries = load_model(path, TokenFile).tokens
    line_of = line_finder(path)
    problems = [
        PolicyProblem(
            path, line_of(("tokens", index, "unit")), f"tokens.{index}.unit", f"no unit {entry.unit!r}"
        )
        for index, entry in enumerate(entries)
        if entry.unit is not None and entry.unit not in units
    ]
    if problems:
        raise PolicyError(problems)
    return Tokens(entries)
