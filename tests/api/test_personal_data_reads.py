"""Reading a complainant's personal data is itself recorded, and the command center lists it."""

from __future__ import annotations

from tests.api.conftest import ApiWorld
from workorder_pipeline.schemas.signal import SignalKind


def test_every_read_of_a_complainant_is_recorded_and_listed_for_the_command_center(api: ApiWorld) -> None:
    complaint = next(o for o in api.orders() if o.kind is SignalKind.complaint and o.unit == "squad-1")
    read = api.client.get(f"/orders/{complaint.id}/complainant", headers=api.headers("squad-1"))
    assert read.status_code == 200, read.text
    listed = api.client.get(
        "/personal-data-reads", params={"work_order_id": complaint.id}, headers=api.headers("command_center")
    )
    assert listed.status_code == 200, listed.text
    newest = listed.json()[0]
    assert (newest["reader"], newest["unit"], newest["work_order_id"]) == ("squad-1", "squad-1", complaint.id)
    assert newest["route"] == "GET /orders/{order_id}/complainant"
    assert newest["at"].endswith("Z") or "+" in newest["at"]


def test_a_refused_read_is_not_recorded_as_a_read(api: ApiWorld) -> None:
    complaint = next(o for o in api.orders() if o.kind is SignalKind.complaint)
    refused = api.client.get(f"/orders/{complaint.id}/complainant", headers=api.headers("supervisor"))
    assert refused.status_code == 403
    listed = api.client.get(
        "/personal-data-reads", params={"work_order_id": complaint.id}, headers=api.headers("command_center")
    )
    assert all(read["role"] != "supervisor" for read in listed.json())


def test_only_the_command_center_lists_the_reads(api: ApiWorld) -> None:
    for who in ("squad-1", "supervisor"):
        assert api.client.get("/personal-data-reads", headers=api.headers(who)).status_code == 403
