"""``GET /dead-letters/{id}/original``: a masked dead letter's original bytes, command center only.

Anyone else gets the answer of an id that does not exist (404), so the route tells nobody
which dead letters exist; every read is recorded in ``personal_data_read``.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, HTTPException

from workorder_pipeline.api.auth import Role
from workorder_pipeline.api.deps import Api, Caller
from workorder_pipeline.api.models import DeadLetterOriginal
from workorder_pipeline.schemas.records import PersonalDataRead

ROUTE = "GET /dead-letters/{dead_letter_id}/original"

router = APIRouter()


@router.get(
    "/dead-letters/{dead_letter_id}/original",
    response_model=DeadLetterOriginal,
    responses={404: {"description": "No such original (or it is past its retention), or not yours"}},
)
def dead_letter_original(dead_letter_id: str, caller: Caller, api: Api) -> DeadLetterOriginal:
    """The original of a dead letter published masked (its ``original_id``): it may hold
    personal data. Command center only; every read is recorded (see /personal-data-reads)."""
    found = api.store.dead_letter_original(dead_letter_id) if caller.role is Role.command_center else None
    if found is None:
        raise HTTPException(404, "没有这条死信原件，或已过保留期，或无权查看")
    read = PersonalDataRead(api.clock(), caller.name, caller.role.value, caller.unit, None, ROUTE, found.id)
    api.store.record_read(read)
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
