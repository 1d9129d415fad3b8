"""The escalation tick looks only at orders whose next check has come (work_order.next_check_at,
processors/next_check.py): an order whose deadline or clocks moved must still get every
reminder, card and escalation at its new time, once. Real databases, signed commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.integration.pipeline_support import REPO_ROOT
from tests.integration.test_signed_commands import POLICY, SENDERS
from tests.integration.test_workflow_commands import CALENDAR, CLOCKS, Sender, night_ban_alarm
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = [pytest.mark.integration]

#: A Monday. The sample night-ban alarm is P1: due 24 h after it is created, squad-1's,
#: accepted within 1 h (a reminder 30 min before).
CREATED = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
DEADLINE_LEVELS = ("reminder", "overdue", "leadership")


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


@pytest.fixture
def handler(repository: WorkOrderRepository) -> CommandHandler:
    return CommandHandler(repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS, clocks=CLOCKS)


def ticker(escalations: Escalations) -> Callable[[datetime], list[tuple[str, str]]]:
    """One leader tick at ``at``: (level, recipient) of what it published."""

    def tick(at: datetime) -> list[tuple[str, str]]:
        escalations.fire(at)
        messages = escalations.pending()
        escalations.published(messages, at)
        return [(m.level, m.recipient) for m in messages]

    return tick


def levels(published: list[tuple[str, str]], wanted: tuple[str, ...] = DEADLINE_LEVELS) -> list[str]:
    return [level for level, _ in published if level in wanted]


def test_an_extension_granted_moves_the_reminder_and_escalations_to_the_new_deadline(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    order_id = night_ban_alarm(repository, CREATED)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    send = Sender(handler, order_id)
    tick(CREATED)  # the tick has looked at it: its next check is stored
    for action in ("accept", "start"):
        assert send(action, "squad-1", CREATED + timedelta(minutes=5)).outcome == "applied"
    asked = send(
        "request_extension",
        "squad-1",
        CREATED + timedelta(hours=1),
        note="等待当事人",
        extension={"hours": 24},
    )
    assert asked.outcome == "applied", asked.refusal
    granted = send(
        "approve_extension", "command-center", CREATED + timedelta(hours=2), extension={"hours": 24}
    )
    assert granted.outcome == "applied", granted.refusal
    stored = repository.get(order_id)
    assert stored is not None and stored.due_at == CREATED + timedelta(hours=48)

    # The old deadline's moments pass without a word; the new one's fire, each once, on time.
    assert levels(tick(CREATED + timedelta(hours=18))) == []
    assert levels(tick(CREATED + timedelta(hours=24))) == []
    assert levels(tick(CREATED + timedelta(hours=36) - timedelta(seconds=1))) == []
    assert levels(tick(CREATED + timedelta(hours=36))) == ["reminder"]
    assert levels(tick(CREATED + timedelta(hours=48) - timedelta(seconds=1))) == []
    assert levels(tick(CREATED + timedelta(hours=48))) == ["overdue"]
    assert levels(tick(CREATED + timedelta(hours=72))) == ["leadership"]
    assert levels(tick(CREATED + timedelta(days=10))) == []


def test_a_reassigned_order_gets_the_new_units_acceptance_reminders_at_their_time(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    order_id = night_ban_alarm(repository, CREATED)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    acceptance = ("accept_reminder", "accept_overdue")
    assert levels(tick(CREATED + timedelta(hours=1)), acceptance) == ["accept_reminder", "accept_overdue"]
    # Next on its clocks: the reminder at hour 18. A reassignment at hour 3 restarts the
    # acceptance clock (1 h): squad-2 is reminded at 3:30 and the command center told at 4:00.
    moved = Sender(handler, order_id)(
        "reassign", "command-center", CREATED + timedelta(hours=3), to_unit="squad-2"
    )
    assert moved.outcome == "applied", moved.refusal
    assert tick(CREATED + timedelta(hours=3, minutes=29)) == []
    assert tick(CREATED + timedelta(hours=3, minutes=30)) == [("accept_reminder", "squad-2")]
    assert tick(CREATED + timedelta(hours=4)) == [("accept_overdue", "command-center")]
    assert tick(CREATED + timedelta(hours=5)) == []


def test_a_returned_order_rerouted_escalates_at_its_deadline_moved_by_the_wait(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    order_id = night_ban_alarm(repository, CREATED)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    send = Sender(handler, order_id)
    assert send("accept", "squad-1", CREATED).outcome == "applied"
    tick(CREATED + timedelta(minutes=5))
    assert (
        send("return", "squad-1", CREATED + timedelta(minutes=10), reason="unclear_ownership").outcome
        == "applied"
    )
    # While returned the clock stops: nothing at the old reminder time.
    assert levels(tick(CREATED + timedelta(hours=2))) == []
    rerouted = send("reassign", "command-center", CREATED + timedelta(hours=3, minutes=10), to_unit="squad-2")
    assert rerouted.outcome == "applied", rerouted.refusal
    new_due = CREATED + timedelta(hours=27)  # three hours waited, added to the deadline
    assert (repository.get(order_id) or pytest.fail("order gone")).due_at == new_due
    assert levels(tick(CREATED + timedelta(hours=24))) == ["reminder"]  # 75% of the 27 h
    assert levels(tick(new_due - timedelta(seconds=1))) == []
    # A P1 order's red card comes when its deadline passes (policy: cards_by_priority), to the
    # unit holding it now; the overdue supervision to the command center.
    assert sorted(tick(new_due)) == [("overdue", "command-center"), ("red_card", "squad-2")]
    assert levels(tick(new_due + timedelta(hours=24))) == ["leadership"]


def test_a_deadline_brought_forward_by_the_calendar_escalates_at_the_earlier_time(
    repository: WorkOrderRepository,
) -> None:
    order_id = night_ban_alarm(repository, CREATED)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    tick(CREATED + timedelta(hours=1))  # acceptance and yellow card fired: next, the reminder at 18
    # A recount (services/deadlines) brings the deadline forward to hour 12: reminder at 9.
    repository.set_deadline(
        order_id, CREATED + timedelta(hours=12), False, "recount", CREATED + timedelta(hours=2)
    )
    assert levels(tick(CREATED + timedelta(hours=9))) == ["reminder"]
    assert levels(tick(CREATED + timedelta(hours=12))) == ["overdue"]


def test_a_check_that_read_the_order_before_a_command_does_not_hide_the_change(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    """The tick reads an order, a command moves its clocks, then the tick stores the next
    check it computed from the old row: that must not stick."""
    order_id = night_ban_alarm(repository, CREATED)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    tick(CREATED + timedelta(hours=1))  # acceptance and yellow card fired: next, the reminder at 18
    (read,) = [row for chunk in repository.orders_to_check(CREATED + timedelta(days=30)) for row in chunk]
    moved = Sender(handler, order_id)(
        "reassign", "command-center", CREATED + timedelta(hours=3), to_unit="squad-2"
    )
    assert moved.outcome == "applied", moved.refusal
    repository.set_next_checks([(read, CREATED + timedelta(days=30))])
    assert tick(CREATED + timedelta(hours=3, minutes=30)) == [("accept_reminder", "squad-2")]


def test_a_returned_order_the_tick_had_looked_at_goes_to_leadership_if_not_rerouted(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    order_id = night_ban_alarm(repository, CREATED)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    send = Sender(handler, order_id)
    assert send("accept", "squad-1", CREATED).outcome == "applied"
    tick(CREATED + timedelta(minutes=5))  # next on its clocks: the reminder at hour 18
    returned_at = CREATED + timedelta(minutes=10)
    assert send("return", "squad-1", returned_at, reason="unclear_ownership").outcome == "applied"
    assert tick(returned_at + timedelta(hours=4) - timedelta(seconds=1)) == []
    assert tick(returned_at + timedelta(hours=4)) == [("reroute_overdue", "leadership")]
    assert tick(returned_at + timedelta(days=3)) == []  # its clock stopped: no reminder, no overdue


def test_a_restarted_leader_looks_at_every_open_order_once_more(repository: WorkOrderRepository) -> None:
    """A process without the calendar saw everything fire (no next check left); the next
    process has the calendar's cards: its first tick finds them, with nothing re-sent."""
    order_id = night_ban_alarm(repository, CREATED)
    first = ticker(Escalations(repository, POLICY.deadlines))
    assert levels(first(CREATED + timedelta(days=3))) == list(DEADLINE_LEVELS)
    assert first(CREATED + timedelta(days=4)) == []
    restarted = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    cards = restarted(CREATED + timedelta(days=4))
    assert sorted(level for level, _ in cards) == [
        "accept_overdue",
        "accept_reminder",
        "red_card",
        "yellow_card",
    ]
    assert restarted(CREATED + timedelta(days=5)) == []
    assert [row["type"] for row in repository.history(order_id)].count("escalated") == 6


def alarm_orders(repository: WorkOrderRepository, now: datetime, count: int) -> list[str]:
    """``count`` night-ban alarms about different coaches, each its own order, dispatched."""
    line = (REPO_ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[3]
    messages = []
    for n in range(count):
        alarm = json.loads(line)
        alarm["alarm_id"], alarm["plate"] = f"JSKV-20261120-9{n:05d}", f"苏F9{n:04d}"
        messages.append(InboundMessage(Topics().vehicle_alarms, 0, n, None, json.dumps(alarm).encode()))
    intake = Intake(compile_policy(POLICY), repository, Topics().inbound())
    orders = intake.handle(messages, now).created
    intake.dispatched(orders, now)
    assert len(orders) == count
    return [order.id for order in orders]


def test_a_tick_stores_every_orders_next_check_but_one_a_command_changed_meanwhile(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    """The tick stores a chunk's next checks in one statement: the orders a command changed
    after the tick read them keep the check the command asked for, the others take the tick's."""
    moved_id, *kept = alarm_orders(repository, CREATED, 4)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))
    assert len(levels(tick(CREATED + timedelta(hours=1)), ("accept_overdue",))) == 4
    read = [row for chunk in repository.orders_to_check(CREATED + timedelta(days=30)) for row in chunk]
    assert sorted(row["id"] for row in read) == sorted([moved_id, *kept])
    moved = Sender(handler, moved_id)(
        "reassign", "command-center", CREATED + timedelta(hours=3), to_unit="squad-2"
    )
    assert moved.outcome == "applied", moved.refusal
    later = CREATED + timedelta(days=30)
    repository.set_next_checks([(row, later) for row in read])

    assert tick(CREATED + timedelta(hours=3, minutes=30)) == [("accept_reminder", "squad-2")]
    due_before = [
        row["id"] for chunk in repository.orders_to_check(later - timedelta(seconds=1)) for row in chunk
    ]
    assert kept[0] not in due_before and kept[1] not in due_before and kept[2] not in due_before
    due_then = [row["id"] for chunk in repository.orders_to_check(later) for row in chunk]
    assert set(kept) <= set(due_then)


def test_an_order_published_a_day_late_fires_every_clock_that_came_due_meanwhile(
    repository: WorkOrderRepository,
) -> None:
    """An order is looked at first at its first clock, which for an order the broker took only
    a day after it was registered (an outage) has long passed: the next tick fires them all."""
    registered = CREATED
    intake = Intake(compile_policy(POLICY), repository, Topics().inbound())
    line = (REPO_ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[3]
    (order,) = intake.handle(
        [InboundMessage(Topics().vehicle_alarms, 0, 0, None, line.encode())], registered
    ).created
    published = registered + timedelta(hours=25)
    intake.dispatched([order], published)
    tick = ticker(Escalations(repository, POLICY.deadlines, CALENDAR))

    fired = tick(published)

    assert sorted(fired) == [
        ("accept_overdue", "command-center"),
        ("accept_reminder", "squad-1"),
        ("overdue", "command-center"),
        ("red_card", "squad-1"),
        ("reminder", "squad-1"),
        ("yellow_card", "squad-1"),
    ]
    assert tick(published + timedelta(minutes=1)) == []


def test_a_next_check_without_a_time_zone_is_refused_and_nothing_is_stored(
    repository: WorkOrderRepository,
) -> None:
    """PostgreSQL would read a naive time as UTC, eight hours off a time meant in China."""
    alarm_orders(repository, CREATED, 2)
    later = CREATED + timedelta(days=30)
    read = [row for chunk in repository.orders_to_check(later) for row in chunk]
    naive = datetime(2026, 11, 24, 8, 0)
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive datetime"):
        repository.set_next_checks([(read[0], naive), (read[1], naive)])  # no aware one to go by
    assert [row for chunk in repository.orders_to_check(later) for row in chunk] == read
