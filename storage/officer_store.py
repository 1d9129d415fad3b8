"""Officers' accounts and console sessions (services.ports.OfficerStore) on the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from workorder_pipeline.schemas.officers import ConsoleSession, Officer, OfficerExists, OfficerRole
from workorder_pipeline.storage.tables import console_session, officer


class OfficerStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def officer_work(self, now: datetime) -> Iterator[OfficerBatch]:
        with self._engine.begin() as conn:
            yield OfficerBatch(conn, now)


def _officer(row: Any) -> Officer:
    return Officer(
        certificate_no=row["certificate_no"],
        name=row["name"],
        unit=row["unit"],
        role=OfficerRole(row["role"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
    )


class OfficerBatch:
    """services.ports.OfficerBatch over one connection (one transaction)."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self.now = now

    def officer(self, certificate_no: str) -> tuple[Officer, str] | None:
        row = (
            self._conn.execute(sa.select(officer).where(officer.c.certificate_no == certificate_no))
            .mappings()
            .first()
        )
        return None if row is None else (_officer(row), row["password_hash"])

    def officers(self, unit: str | None) -> list[Officer]:
        query = sa.select(officer).order_by(officer.c.unit, officer.c.certificate_no)
        if unit is not None:
            query = query.where(officer.c.unit == unit)
        return [_officer(row) for row in self._conn.execute(query).mappings()]

    def add_officer(self, account: Officer, password_hash: str) -> None:
        values = {**account.model_dump(), "role": account.role.value}
        try:
            with self._conn.begin_nested():
                self._conn.execute(
                    officer.insert().values(**values, password_hash=password_hash, updated_at=self.now)
                )
        except IntegrityError as exc:
            raise OfficerExists(f"an account {account.certificate_no} exists") from exc

    def update_officer(
        self, certificate_no: str, *, disabled: bool | None, password_hash: str | None
    ) -> None:
        values: dict[str, Any] = {"updated_at": self.now}
        if disabled is not None:
            values["disabled"] = disabled
        if password_hash is not None:
            values["password_hash"] = password_hash
        self._conn.execute(
            sa.update(officer).where(officer.c.certificate_no == certificate_no).values(**values)
        )

    def session(self, token_sha256: str) -> ConsoleSession | None:
        row = (
            self._conn.execute(
                sa.select(console_session).where(console_session.c.token_sha256 == token_sha256)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return ConsoleSession.model_validate({k: v for k, v in row.items() if k != "token_sha256"})

    def open_session(self, token_sha256: str, session: ConsoleSession) -> None:
        self._conn.execute(console_session.insert().values(token_sha256=token_sha256, **session.model_dump()))

    def touch_session(self, token_sha256: str) -> None:
        self._conn.execute(
            sa.update(console_session)
            .where(console_session.c.token_sha256 == token_sha256)
            .values(last_seen_at=self.now)
        )

    def close_sessions(self, *, token_sha256: str | None = None, certificate_no: str | None = None) -> None:
        query = sa.delete(console_session)
        if token_sha256 is not None:
            query = query.where(console_session.c.token_sha256 == token_sha256)
        elif certificate_no is not None:
            query = query.where(console_session.c.certificate_no == certificate_no)
        else:
            raise ValueError("close one session or one officer's sessions, never all")
        self._conn.execute(query)
