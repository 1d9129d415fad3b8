"""Officers' accounts of the web console: who signs in, in which unit, with which role."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

#: 执法证号: the enforcement certificate number, the officer's sign-in name and the id
#: commands name officers by (``actor.officer_ids``).
CERTIFICATE_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CertificateNo = Annotated[str, StringConstraints(pattern=CERTIFICATE_NO.pattern)]
#: No control characters: U+0000 is refused by PostgreSQL, a line break breaks the pages' lists.
OfficerName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class OfficerRole(StrEnum):
    """What an officer does; api.auth maps each onto the API's rights (one table for both)."""

    officer = "officer"  # 执法队员
    squad_leader = "squad_leader"  # 中队长
    duty_officer = "duty_officer"  # 指挥中心值班员
    supervisor = "supervisor"  # 督查
    administrator = "administrator"  # 系统管理员


#: How the console and ``wo officers list`` name each role.
ROLE_NAMES = {
    OfficerRole.officer: "执法队员",
    OfficerRole.squad_leader: "中队长",
    OfficerRole.duty_officer: "指挥中心值班员",
    OfficerRole.supervisor: "督查",
    OfficerRole.administrator: "系统管理员",
}


class Officer(BaseModel):
    """An account as everyone but the password check sees it (no hash)."""

    model_config = ConfigDict(frozen=True)

    certificate_no: CertificateNo
    name: OfficerName
    unit: str
    role: OfficerRole
    disabled: bool = False
    created_at: datetime


class ConsoleSession(BaseModel):
    """A signed-in browser: the cookie holds a random token, the database only its hash."""

    model_config = ConfigDict(frozen=True)

    certificate_no: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


class OfficerExists(ValueError):
    """An account with this certificate number exists already."""
