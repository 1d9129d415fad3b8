"""The HTTP API on in-memory ports (tests/fakes.py): what a caller sees for every verdict the
worker can record, for a broker that does not answer, for ids that are not theirs, and for
reads of personal data. The same routes on the real database and broker: tests/api."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient

from tests.fakes import FakeWorker, InMemoryApiStore
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token, new_token
from workorder_pipeline.api.routes.commands import REFUSAL_STATUS
from workorder_pipeline.schemas.commands import RefusalCode, WorkOrderCommand
from workorder_pipeline.schemas.records import DecidedCommand, OrderPage, OrderQuery
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, Subject, WorkOrder, WorkOrderStatus

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
Verdict = Callable[[WorkOrderCommand], DecidedCommand | None]

#: What a caller sees for each refusal code, spelled out (not read from the API's table).
SEEN_STATUS = {
    RefusalCode.forbidden: 403,
    RefusalCode.unknown_order: 404,
    RefusalCode.invalid_state: 409,
    RefusalCode.no_change: 409,
    RefusalCode.not_later: 409,
    RefusalCode.missing_field: 422,
    RefusalCode.too_few_officers: 422,
    RefusalCode.callback_incomplete: 422,
    RefusalCode.unknown_unit: 422,
    RefusalCode.unprocessable: 422,
    RefusalCode.too_late: 409,
    RefusalCode.extension_pending: 409,
    RefusalCode.no_extension_pending: 409,
    RefusalCode.over_limit: 422,
    RefusalCode.exceeds_request: 422,
    RefusalCode.reason_not_allowed: 422,
    RefusalCode.needs_new_feedback: 409,
}


def order(order_id: str, unit: str, **fields: Any) -> WorkOrder:
    defaults: dict[str, Any] = {
        "id": order_id,
        "kind": SignalKind.vehicle_alarm,
        "status": WorkOrderStatus.dispatched,
        "unit": unit,
        "priority": Priority.P2,
        "route_key": "alarm.freight",
        "created_at": NOW - timedelta(hours=1),
        "due_at": NOW + timedelta(days=1),
        "subject": Subject(plate="苏F12345"),
        "summary": "overspeed level 2",
        "source_ids": (f"js-key-vehicles/{order_id}",),
        "first_seen_at": NOW - timedelta(hours=1),
        "last_seen_at": NOW - timedelta(hours=1),
    }
    return WorkOrder(**{**defaults, **fields})


def applied(command: WorkOrderCommand) -> DecidedCommand:
    return DecidedCommand(command.command_id, command.work_order_id, None, "accepted")


def refused(code: RefusalCode) -> Verdict:
    return lambda command: DecidedCommand(command.command_id, command.work_order_id, code, "no")


@dataclass
class World:
    store: InMemoryApiStore
    worker: FakeWorker
    client: TestClient
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def send(self, who: str, order_id: str, command_id: str, action: str = "accept") -> Any:
        body = {"command_id": command_id, "action": action}
        return self.client.post(f"/orders/{order_id}/commands", json=body, headers=self.as_(who))


def world(verdict: Verdict = applied, wait_s: float = 2.0) -> World:
    store = InMemoryApiStore()
    store.add(order("WO-1", "squad-1"))
    store.add(order("WO-2", "squad-2", copied_to=("squad-1",)))
    store.add(order("WO-3", "squad-2"))
    store.add(order("WO-C", "squad-1", kind=SignalKind.complaint), {"name": "张三", "phone": "13800000000"})
    tokens = {who: new_token() for who in ("squad-1", "squad-2", "command_center", "supervisor")}
    roles = {"command_center": Role.command_center, "supervisor": Role.supervisor}
    entries = [
        TokenEntry(
            name=who,
            role=roles.get(who, Role.unit),
            unit=None if who in roles else who,
            sha256=hash_token(token),
            expires_at=FAR_FUTURE,
        )
        for who, token in tokens.items()
    ]
    worker = FakeWorker(store, verdict)
    app = create_app(store, Tokens(entries), worker, wait_s=wait_s, clock=lambda: NOW)
    return World(store, worker, TestClient(app), tokens)


def test_every_refusal_code_has_an_http_status_and_none_is_a_success() -> None:
    assert set(REFUSAL_STATUS) == set(RefusalCode)
    assert all(400 <= status < 500 for status in REFUSAL_STATUS.values())


@pytest.mark.parametrize("code", list(RefusalCode))
def test_a_refused_command_is_answered_with_its_codes_status_both_ways(code: RefusalCode) -> None:
    api = world(refused(code))
    answer = api.send("squad-1", "WO-1", "c-1")
    assert (answer.status_code, answer.json()["outcome"]) == (SEEN_STATUS[code], code.value)
    later = api.client.get("/commands/c-1", headers=api.as_("squad-1"))
    assert (later.status_code, later.json()["outcome"]) == (SEEN_STATUS[code], code.value)


def test_an_applied_command_answers_200_with_the_order() -> None:
    api = world()
    answer = api.send("squad-1", "WO-1", "c-1")
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "applied" and answer.json()["reason"] == "accepted"
    assert answer.json()["order"]["id"] == "WO-1"
    assert [c.actor.unit for c in api.worker.published] == ["squad-1"]


def test_a_command_not_decided_in_time_is_202_and_pending_until_the_worker_decides() -> None:
    api = world(lambda _: None, wait_s=0.2)
    answer = api.send("squad-1", "WO-1", "c-1")
    assert (answer.status_code, answer.json()["outcome"]) == (202, "pending")
    assert answer.headers["Location"] == "/commands/c-1"
    assert api.client.get("/commands/c-1", headers=api.as_("squad-1")).status_code == 202
    api.store.verdicts["c-1"] = applied(api.worker.published[0])
    decided = api.client.get("/commands/c-1", headers=api.as_("squad-1"))
    assert (decided.status_code, decided.json()["outcome"]) == (200, "applied")


def test_a_broker_that_does_not_answer_gives_503_and_nothing_is_remembered() -> None:
    api = world()
    api.worker.broker_down = True
    assert api.send("squad-1", "WO-1", "c-1").status_code == 503
    assert api.store.sent == {} and api.store.verdicts == {}
    unknown = api.client.get("/commands/c-1", headers=api.as_("squad-1"))
    assert (unknown.status_code, unknown.json()["outcome"]) == (404, "unknown_command")


def test_a_command_id_used_for_another_order_is_409_and_not_published_again() -> None:
    api = world()
    assert api.send("squad-1", "WO-1", "c-1").status_code == 200
    again = api.send("command_center", "WO-3", "c-1", action="extend")
    assert (again.status_code, again.json()["outcome"]) == (409, "command_id_reused")
    assert "WO-1" not in again.text
    assert len(api.worker.published) == 1


def test_another_units_command_answers_exactly_like_one_never_sent() -> None:
    api = world()
    assert api.send("squad-1", "WO-1", "c-1").status_code == 200
    theirs = api.client.get("/commands/c-1", headers=api.as_("squad-2"))
    never = api.client.get("/commands/c-none", headers=api.as_("squad-2"))
    assert theirs.status_code == never.status_code == 404
    assert theirs.json() | {"command_id": "x"} == never.json() | {"command_id": "x"}


def test_a_squad_lists_its_own_and_copied_orders_and_not_another_units() -> None:
    api = world()
    listed = api.client.get("/orders", headers=api.as_("squad-1"))
    assert sorted(o["id"] for o in listed.json()) == ["WO-1", "WO-2", "WO-C"]
    assert api.client.get("/orders?unit=squad-2", headers=api.as_("squad-1")).status_code == 403
    assert api.client.get("/orders/WO-3", headers=api.as_("squad-1")).status_code == 404


def test_reading_a_complainant_is_recorded_and_listed_to_the_command_center_only() -> None:
    api = world()
    assert api.client.get("/orders/WO-C/complainant", headers=api.as_("supervisor")).status_code == 403
    found = api.client.get("/orders/WO-C/complainant", headers=api.as_("squad-1"))
    assert found.json() == {"name": "张三", "phone": "13800000000"}
    assert api.client.get("/personal-data-reads", headers=api.as_("squad-1")).status_code == 403
    reads = api.client.get("/personal-data-reads", headers=api.as_("command_center")).json()
    assert [(r["reader"], r["work_order_id"], r["route"]) for r in reads] == [
        ("squad-1", "WO-C", "GET /orders/{order_id}/complainant")
    ]


class _StoreThatBreaks(InMemoryApiStore):
    """A store whose listing fails with a ValueError quoting personal data, as a library's
    error may quote the row or the input it choked on."""

    def orders(self, query: OrderQuery, now: datetime) -> OrderPage:
        raise ValueError("cannot convert '13800000000' for 张三")


def test_an_unexpected_value_error_is_logged_without_its_text_and_answered_in_chinese() -> None:
    api = world()
    store = _StoreThatBreaks()
    app = create_app(store, api.client.app.state.tokens, api.worker, clock=lambda: NOW)  # type: ignore[attr-defined]
    with structlog.testing.capture_logs() as logs:
        response = TestClient(app).get("/orders", headers=api.as_("command_center"))
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": [], "msg": "请求：请求无法处理，请检查填写的内容后重试", "type": "value_error"}]
    }
    [logged] = [entry for entry in logs if entry["event"] == "api_value_error"]
    assert logged == {
        "event": "api_value_error",
        "log_level": "warning",
        "error": "ValueError",
        "method": "GET",
        "route": "/orders",
    }
