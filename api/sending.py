"""Sending a lifecycle command and waiting for the worker's verdict: one way for the HTTP
API and the console. The command is put on ``workorders.commands`` (signed by the
publisher) and decided by the worker's command handler (services/commands.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from workorder_pipeline.api.deps import Parts
from workorder_pipeline.api.guard import validation_errors
from workorder_pipeline.api.models import CommandRequest
from workorder_pipeline.processors.intake import Rejection, decode_command
from workorder_pipeline.schemas.commands import WorkOrderCommand
from workorder_pipeline.schemas.records import DecidedCommand
from workorder_pipeline.services.ports import CommandNotPublished


def build_command(
    body: CommandRequest, order_id: str, acting_unit: str, now: datetime, officer_id: str | None = None
) -> WorkOrderCommand:
    """The command ``body`` asks for, under the rules every command meets (strict types, no
    U+0000, 64-bit integers, bounded size: processors.intake), so nothing is put on the topic
    that the worker would refuse to read. 422 (RequestValidationError) otherwise.
    ``officer_id``: the signed-in officer who sends it (the console)."""
    actor: dict[str, object] = {"unit": acting_unit, "officer_ids": body.officer_ids}
    if officer_id is not None:
        actor["officer_id"] = officer_id
    document = {
        **body.model_dump(mode="json", exclude={"officer_ids", "command_id", "at"}, exclude_none=True),
        "schema": "workorder-command/1",
        "command_id": body.command_id or f"api-{uuid.uuid4()}",
        "work_order_id": order_id,
        "actor": actor,
        "at": (body.at or now).isoformat(),
    }
    command = decode_command(json.dumps(document, ensure_ascii=False).encode())
    if isinstance(command, Rejection):
        raise RequestValidationError(validation_errors("body", command))
    return command


async def send_and_wait(api: Parts, command: WorkOrderCommand) -> DecidedCommand | None:
    """Publish the command (503 when the broker does not take it: nothing is recorded), then
    wait for the worker's verdict; None when it did not come within ``wait_s``."""
    try:
        await asyncio.to_thread(api.publisher.publish, command)
    except CommandNotPublished as exc:
        raise HTTPException(503, "指令未能送入队列，未作任何记录，请稍后用同一 command_id 重发") from exc
    await asyncio.to_thread(api.store.record_sent, command.command_id, command.work_order_id, api.clock())
    deadline = time.monotonic() + api.wait_s
    while time.monotonic() < deadline:
        known = await asyncio.to_thread(api.store.decided, command.command_id)
        if known is not None:
            return known
        await asyncio.sleep(0.1)
    return None
