"""``GET /dead-letters/{id}/original``: a masked dead letter's original bytes, command center only.

Anyone else gets the answer of an id that does not exist (404), so the route tells nobody
which dead letters exist; every read is recorded in ``personal_data_read``.
"""

# No ``from __future__ import annotations``: FastAPI reads the route's annotations, whose
# dependency is a local of ``add_routes``.

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException

from api.auth import Principal, Role
from api.models import DeadLetterOriginal
from storage.dead_letters import DeadLetterOriginals
from storage.personal_data import PersonalDataRead, PersonalDataReads

ROUTE = "GET /dead-letters/{dead_letter_id}/original"


def add_routes(
    app: FastAPI,
    principal: Callable[..., Principal],
    originals: DeadLetterOriginals,
    reads: PersonalDataReads,
    clock: Callable[[], datetime],
) -> None:
    """``principal``: the dependency that finds the caller (401 without a valid token)."""

    @app.get(
        "/dead-letters/{dead_letter_id}/original",
        response_model=DeadLetterOriginal,
        responses={404: {"description": "No such original (or it is past its retention), or not yours"}},
    )
    def dead_letter_original(
        dead_letter_id: str, caller: Annotated[Principal, Depends(principal)]
    ) -> DeadLetterOriginal:
        """The original of a dead letter published masked (its ``original_id``): it may hold
        personal data. Command center only; every read is recorded (see /personal-data-reads)."""
        found = originals.get(dead_letter_id) if caller.role is Role.command_center else None
        if found is None:
            raise HTTPException(404, f"no dead-letter original {dead_letter_id}")
        reads.record(
            PersonalDataRead(
                clock(), caller.name, caller.role.value, caller.unit, None, ROUTE, dead_letter_id=found.id
            )
        )
        return DeadLetterOriginal(
            id=found.id,
            topic=found.topic,
            partition=found.partition,
            offset=found.offset,
            key=_b64(found.key),
            value=_b64(found.value),
            reason=found.reason.value,
            dead_lettered_at=found.dead_lettered_at,
        )


def _b64(raw: bytes | None) -> str | None:
    return base64.b64encode(raw).decode() if raw is not None else None
