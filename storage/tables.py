"""The database schema. Alembic migrations (storage/migrations) create and evolve it. The
notifications' tables and the console's accounts live beside it (storage/*_tables.py); every
table is reachable from here."""

from __future__ import annotations

import sqlalchemy as sa

from workorder_pipeline.storage.notification_tables import notification as notification
from workorder_pipeline.storage.notification_tables import notification_attempt as notification_attempt
from workorder_pipeline.storage.notification_tables import notification_recipient as notification_recipient
from workorder_pipeline.storage.officer_tables import console_session as console_session
from workorder_pipeline.storage.officer_tables import officer as officer
from workorder_pipeline.storage.schema_base import Json as Json
from workorder_pipeline.storage.schema_base import UtcDateTime as UtcDateTime
from workorder_pipeline.storage.schema_base import metadata as metadata

#: One order per dedupe key holds its slot (storage/dedupe_slots.py).
DEDUPE_SLOT_INDEX = "uq_work_order_dedupe_slot"
#: The escalation tick's way in: orders with a next check, closed ones left out.
NEXT_CHECK_INDEX = "ix_work_order_next_check"

work_order = sa.Table(
    "work_order",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),
    sa.Column("priority", sa.String(2), nullable=False),
    sa.Column("route_key", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=False),
    sa.Column("dispatched_at", UtcDateTime(), nullable=True),
    sa.Column("plate", sa.String(16), nullable=True),
    sa.Column("enterprise_id", sa.String(18), nullable=True),
    sa.Column("enterprise_name", sa.String(256), nullable=True),
    sa.Column("region_code", sa.String(6), nullable=True),
    sa.Column("place", sa.String(256), nullable=True),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("occurrences", sa.Integer(), nullable=False),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("upstream_due_at", UtcDateTime(), nullable=True),
    sa.Column("dedupe_key", sa.String(300), nullable=True),
    sa.Column("suggested_disposition", sa.String(32), nullable=True),
    sa.Column("violation_key", sa.String(300), nullable=True),
    sa.Column("deadline_provisional", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("working_days", sa.Integer(), nullable=True),
    # The order's clocks (see processors/lifecycle.py).
    sa.Column("accepted_at", UtcDateTime(), nullable=True),
    sa.Column("first_feedback_at", UtcDateTime(), nullable=True),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Column("disposition", sa.String(32), nullable=True),
    sa.Column("closed_on_time", sa.Boolean(), nullable=True),
    sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("returned_at", UtcDateTime(), nullable=True),
    sa.Column("returned_seconds", sa.Float(), nullable=False, server_default="0"),
    # The workflow of issue 18 (processors/clocks.py, processors/extensions.py).
    sa.Column("accept_due_at", UtcDateTime(), nullable=True),
    sa.Column("rework_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("extension_requests", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("pending_extension_days", sa.Integer(), nullable=True),
    sa.Column("pending_extension_hours", sa.Float(), nullable=True),
    sa.Column("extension_requested_at", UtcDateTime(), nullable=True),
    sa.Column("extended_working_days", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("extended_hours", sa.Float(), nullable=False, server_default="0"),
    #: Units with a copy of the order, comma-separated (routes with ``continue``).
    sa.Column("copied_to", sa.String(512), nullable=False, server_default=""),
    #: Open orders on the same plate or enterprise when it was registered, sorted, comma-separated.
    sa.Column("related_ids", sa.Text(), nullable=False, server_default=""),
    #: The dedupe key while this is the order its later signals merge into; NULL otherwise
    #: (closed, superseded): one holder per key (storage/dedupe_slots.py).
    sa.Column("dedupe_slot", sa.String(300), nullable=True),
    #: A complaint's category (投诉类别), from its first signal (migration 0020); NULL otherwise.
    sa.Column("category", sa.String(32), nullable=True),
    #: When the escalation tick must next look at the order (processors/next_check.py): a
    #: change to its clocks sets it to created_at (look at the next tick); NULL: nothing left
    #: to fire until it changes (migration 0023).
    sa.Column("next_check_at", UtcDateTime(), nullable=True),
    sa.Index(
        NEXT_CHECK_INDEX,
        "next_check_at",
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
        sqlite_where=sa.text("next_check_at IS NOT NULL"),
    ),
    sa.Index("ix_work_order_unit_status", "unit", "status"),
    sa.Index("ix_work_order_dedupe_key", "dedupe_key", "last_seen_at"),
    sa.Index("ix_work_order_violation_key", "violation_key"),
    sa.Index("ix_work_order_status_due_at", "status", "due_at"),
    sa.Index("ix_work_order_plate", "plate"),
    sa.Index("ix_work_order_enterprise_id", "enterprise_id"),
    #: The figures read a period's cohort: the orders created in it (migration 0018).
    sa.Index("ix_work_order_created_at", "created_at"),
    sa.Index(DEDUPE_SLOT_INDEX, "dedupe_slot", unique=True),
    # Only the rows their readers look for (migration 0030): no entry per new order.
    sa.Index(
        "ix_work_order_category",
        "category",
        postgresql_where=sa.text("category IS NOT NULL"),
        sqlite_where=sa.text("category IS NOT NULL"),
    ),
    sa.Index(
        "ix_work_order_closed_at",
        "closed_at",
        postgresql_where=sa.text("closed_at IS NOT NULL"),
        sqlite_where=sa.text("closed_at IS NOT NULL"),
    ),
)
_PROVISIONAL = work_order.c.deadline_provisional.is_(True)
#: The orders whose deadline a worker recomputes when it starts (storage/deadline_store.py).
sa.Index(
    "ix_work_order_deadline_provisional",
    work_order.c.deadline_provisional,
    postgresql_where=_PROVISIONAL,
    sqlite_where=_PROVISIONAL,
)

#: An order with an extension request waiting for the command center (延期申请待审批).
PENDING_EXTENSION = work_order.c.extension_requested_at.is_not(None)
#: Only the orders with a pending request, by unit and due_at: the command center's list of
#: them (storage/extension_requests_read.py) reads these rows, not every order (by unit: a
#: unit's list is read in order, with no sort, and the planner prefers it to the unit's
#: index of every order).
sa.Index(
    "ix_work_order_pending_extension",
    work_order.c.unit,
    work_order.c.due_at,
    sqlite_where=PENDING_EXTENSION,
    postgresql_where=PENDING_EXTENSION,
)

#: The command center's queues (api/console/routes_center.py), newest first, read through
#: partial indexes of the few orders each holds (migration 0025): the predicates are the
#: queue filters of storage/orders_read.list_orders, word for word, for the planner to match.
for _name, _where in (
    (
        "ix_work_order_extension_asked_created",
        sa.text("pending_extension_days IS NOT NULL OR pending_extension_hours IS NOT NULL"),
    ),
    (
        "ix_work_order_awaiting_callback_created",
        sa.text("kind = 'complaint' AND status = 'feedback_submitted'"),
    ),
    ("ix_work_order_running_created", sa.text("status NOT IN ('closed', 'returned')")),
):
    sa.Index(_name, work_order.c.created_at, sqlite_where=_where, postgresql_where=_where)

#: Every publisher id merged into an order: the idempotence guard (one row per signal).
work_order_source = sa.Table(
    "work_order_source",
    metadata,
    sa.Column("source_key", sa.String(300), primary_key=True),
    sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    # The validated event as the publisher sent it, extra fields included.
    sa.Column("payload", Json, nullable=False),
    # topic/partition/offset it was read from (migration 0008: NULL before it).
    sa.Column("position", sa.String(300), nullable=True),
    #: The region routing used (Signal.region_code; migration 0029); NULL: none (check-ins).
    sa.Column("region_code", sa.String(12), nullable=True),
    sa.Index("ix_work_order_source_work_order_id", "work_order_id"),
    sa.Index("ix_work_order_source_received_at", "received_at"),
)

#: Signals triage decided make no order, with the rule and reason: never dropped silently.
suppressed_signal = sa.Table(
    "suppressed_signal",
    metadata,
    sa.Column("source_key", sa.String(300), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("rule_key", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),
    sa.Column("route_key", sa.String(64), nullable=False),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("violation_key", sa.String(300), nullable=True),
    sa.Column("payload", Json, nullable=False),
    #: As work_order_source.region_code (migration 0029).
    sa.Column("region_code", sa.String(12), nullable=True),
    sa.Index("ix_suppressed_signal_received_at", "received_at"),
    sa.Index("ix_suppressed_signal_violation_key", "violation_key"),
)

#: The audit trail: append-only (triggers in the migration refuse UPDATE and DELETE).
work_order_event = sa.Table(
    "work_order_event",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("detail", Json, nullable=False),
    sa.Index("ix_work_order_event_work_order_id", "work_order_id", "id"),
    #: Recent rows of one type: the extension decisions to notify (migration 0024).
    sa.Index("ix_work_order_event_type_at", "type", "at"),
)

#: Commands already handled: a re-sent command_id has no second effect.
processed_command = sa.Table(
    "processed_command",
    metadata,
    sa.Column("command_id", sa.String(128), primary_key=True),
    sa.Column("work_order_id", sa.String(40), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("outcome", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
)

#: Reminders and escalations: one row per order, level and deadline, so each fires once.
escalation = sa.Table(
    "escalation",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),  # the order's unit when it fired
    sa.Column("fired_at", UtcDateTime(), nullable=False),
    sa.Column("published_at", UtcDateTime(), nullable=True),
    #: When its notifications were planned (storage/notifications.py; migration 0021).
    sa.Column("notified_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("work_order_id", "level", "due_at", name="uq_escalation_once"),
    sa.Index("ix_escalation_unpublished", "published_at"),
    #: The monthly report's escalations of a month (migration 0028).
    sa.Index("ix_escalation_fired_at", "fired_at"),
    sa.Index("ix_escalation_unnotified", "notified_at"),
)

#: Messages announcing a change, written in the change's own transaction and published
#: after it: a crash between the two re-publishes them, it never loses them.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    #: Which topic: "lifecycle" or "dispatched" (names resolved by the worker's settings).
    sa.Column("topic", sa.String(32), nullable=False),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("published_at", UtcDateTime(), nullable=True),
    #: Exactly once: topic/partition/offset of the command it announces (migration 0014).
    sa.Column("position", sa.String(300), nullable=True),
    sa.Index("ix_outbox_unpublished", "published_at", "id"),
    sa.Index("ix_outbox_position", "position"),
)

#: Who read a complainant's personal data, when and through which route (执法全过程记录):
#: written with every read, listed for the command center.
personal_data_read = sa.Table(
    "personal_data_read",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("reader", sa.String(200), nullable=False),  # the token's holder
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("unit", sa.String(64), nullable=True),
    #: The order whose complainant was read; or None, and the dead letter whose original was.
    sa.Column("work_order_id", sa.String(40), nullable=True),
    sa.Column("dead_letter_id", sa.String(40), nullable=True),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Index("ix_personal_data_read_at", "at"),
    sa.Index("ix_personal_data_read_order", "work_order_id"),
)


#: Commands the HTTP API put on the commands topic, so that ``GET /commands/{id}`` can tell
#: one sent and not decided yet (202) from one never seen (404).
api_command = sa.Table(
    "api_command",
    metadata,
    sa.Column("command_id", sa.String(128), primary_key=True),
    sa.Column("work_order_id", sa.String(128), nullable=False),
    sa.Column("sent_at", UtcDateTime(), nullable=False),
)


#: The original bytes of a dead letter the topic carries masked (it may hold personal data):
#: readable by the command center only, deleted after WO_DEAD_LETTER_RETENTION_DAYS.
dead_letter_original = sa.Table(
    "dead_letter_original",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("partition", sa.Integer(), nullable=False),
    sa.Column("offset", sa.BigInteger(), nullable=False),
    sa.Column("key", sa.LargeBinary(), nullable=True),
    #: None for a tombstone.
    sa.Column("value", sa.LargeBinary(), nullable=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("dead_lettered_at", UtcDateTime(), nullable=False),
    sa.Index("ix_dead_letter_original_at", "dead_lettered_at"),
)


#: The newest event time heard from each publishing platform (storage/platforms_seen.py):
#: platform silence is judged on it, so it survives worker restarts (migration 0016).
platform_seen = sa.Table(
    "platform_seen",
    metadata,
    sa.Column("platform", sa.String(64), primary_key=True),
    #: Newest event time of a valid signal, never later than its receipt.
    sa.Column("last_event_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)


#: Every dead letter the pipeline published (the topic carries the message; this row only
#: what it was and why), for the monthly report: id from its position, so a re-delivery counts
#: once (migration 0020).
dead_letter_log = sa.Table(
    "dead_letter_log",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_dead_letter_log_at", "at"),
)


#: One row (id 1): the digest of the clock rules (deadlines policy, calendar, the clocks' code)
#: the last complete review of every open order's next check was made by (migration 0032).
clock_review = sa.Table(
    "clock_review",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("reviewed_at", UtcDateTime(), nullable=True),
)
