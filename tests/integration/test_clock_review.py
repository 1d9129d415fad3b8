"""A worker process's first escalation tick looks at every open order only when the clock
rules (deadlines policy, calendar, the clocks' code) differ from those of the last complete
review: a restart with the same rules reads only the orders whose next check came (at
50,000 open orders the full review took 36 s). Real databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_escalation_schedule import CREATED, repository, ticker  # noqa: F401
from tests.integration.test_signed_commands import POLICY
from tests.integration.test_workflow_commands import CALENDAR, night_ban_alarm
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = [pytest.mark.integration]


class CountingRepository(WorkOrderRepository):
    """The real repository, counting the orders each tick reads; it can fail the first
    storing of next checks (a worker stopped in the middle of its review)."""

    def __init__(self, inner: WorkOrderRepository, fail_storing: bool = False) -> None:
        super().__init__(inner.engine)
        self.read = 0
        self._fail_storing = fail_storing

    def orders_to_check(
        self, now: datetime, every_open: bool = False, chunk: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        for orders in super().orders_to_check(now, every_open, chunk):
            self.read += len(orders)
            yield orders

    def set_next_checks(self, checks: Any) -> None:
        if self._fail_storing:
            self._fail_storing = False
            raise ConnectionError("the database went away mid-review")
        super().set_next_checks(checks)


def test_a_restarted_leader_with_the_same_rules_reads_only_the_orders_whose_check_came(
    repository: WorkOrderRepository,  # noqa: F811
) -> None:
    night_ban_alarm(repository, CREATED)
    first = CountingRepository(repository)
    ticker(Escalations(first, POLICY.deadlines, CALENDAR))(CREATED)
    assert first.read == 1  # never reviewed: every open order
    restarted = CountingRepository(repository)
    assert ticker(Escalations(restarted, POLICY.deadlines, CALENDAR))(CREATED + timedelta(minutes=1)) == []
    assert restarted.read == 0


def test_a_changed_reminder_rule_is_applied_to_open_orders_by_the_next_process(
    repository: WorkOrderRepository,  # noqa: F811
) -> None:
    """P1, 24 h: the reminder at 75% is at hour 18 and that is the stored next check; a
    policy reminding at 10% makes it due at hour 2.4, and a restart with it must see so."""
    order_id = night_ban_alarm(repository, CREATED)
    ticker(Escalations(repository, POLICY.deadlines))(CREATED)
    same = CountingRepository(repository)
    assert ticker(Escalations(same, POLICY.deadlines))(CREATED + timedelta(hours=3)) == []
    assert same.read == 0
    earlier = POLICY.deadlines.model_copy(update={"reminder_at": 0.1})
    changed = CountingRepository(repository)
    assert ticker(Escalations(changed, earlier))(CREATED + timedelta(hours=3)) == [("reminder", "squad-1")]
    assert changed.read == 1
    assert [row["type"] for row in repository.history(order_id)].count("reminder_sent") == 1


def test_a_review_cut_short_is_made_again_by_the_next_process(
    repository: WorkOrderRepository,  # noqa: F811
) -> None:
    night_ban_alarm(repository, CREATED)
    stopped = CountingRepository(repository, fail_storing=True)
    with pytest.raises(ConnectionError):
        Escalations(stopped, POLICY.deadlines, CALENDAR).fire(CREATED)
    again = CountingRepository(repository)
    ticker(Escalations(again, POLICY.deadlines, CALENDAR))(CREATED + timedelta(minutes=1))
    assert again.read == 1
    after = CountingRepository(repository)
    ticker(Escalations(after, POLICY.deadlines, CALENDAR))(CREATED + timedelta(minutes=2))
    assert after.read == 0
