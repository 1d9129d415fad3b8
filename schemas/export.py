"""JSON Schemas of the messages the pipeline publishes and takes in, generated from the models.

``docs/contracts/*.schema.json`` are these, written by ``wo contracts export``; a test
checks the committed files never drift from the models.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from workorder_pipeline.schemas.commands import EscalationMessage, LifecycleEvent, WorkOrderCommand
from workorder_pipeline.schemas.deadletter import DeadLetter
from workorder_pipeline.schemas.inbound import CheckinFailure, Complaint, Suspect, VehicleAlarm
from workorder_pipeline.schemas.workorder import DispatchedWorkOrder

#: File stem -> (model, whether we publish it). What we publish is described as we
#: serialize it; what we take in, as we validate it.
MESSAGES: dict[str, tuple[type[BaseModel], bool]] = {
    "workorder-dispatched-1": (DispatchedWorkOrder, True),
    "dead-letter-1": (DeadLetter, True),
    "vehicle-alarm-1": (VehicleAlarm, False),
    "suspect-1": (Suspect, False),
    "checkin-failure-1": (CheckinFailure, False),
    "complaint-1": (Complaint, False),
    "workorder-command-1": (WorkOrderCommand, False),
    "workorder-lifecycle-1": (LifecycleEvent, True),
    "workorder-escalation-1": (EscalationMessage, True),
}


def json_schema(model: type[BaseModel], published: bool) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="serialization" if published else "validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def rendered_schemas() -> dict[str, str]:
    """File name -> file text, for every message."""
    return {
        f"{name}.schema.json": json.dumps(json_schema(model, published), indent=2, ensure_ascii=False) + "\n"
        for name, (model, published) in MESSAGES.items()
    }
