"""The notifications' tables (issue 21): who is told of what, and every attempt to tell them."""

from __future__ import annotations

import sqlalchemy as sa

from workorder_pipeline.storage.schema_base import UtcDateTime, metadata

#: A message to one receiver about one order, level, deadline and repeat round: its id is
#: derived from them (processors.notify_routing.notification_id), so it is planned once
#: whichever worker plans it, however often (migration 0021).
notification = sa.Table(
    "notification",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("level", sa.String(24), nullable=False),
    sa.Column("deadline", UtcDateTime(), nullable=False),
    sa.Column("receiver", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("round", sa.Integer(), nullable=False, server_default="0"),
    #: pending, sent or failed (services.notifications.NotificationStatus).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    #: The next attempt's earliest time: quiet hours' end, or the backoff's.
    sa.Column("send_after", UtcDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    #: A worker sending it holds it until then; a worker killed mid-send lets it go then.
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Column("failed_at", UtcDateTime(), nullable=True),
    #: For a delivery_failed notice: the notification that failed.
    sa.Column("about", sa.String(40), nullable=True),
    sa.Index("ix_notification_due", "status", "send_after"),
    sa.Index("ix_notification_order", "work_order_id"),
)

#: Every attempt to send a notification and its result (shown in the order's history).
notification_attempt = sa.Table(
    "notification_attempt",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("notification_id", sa.String(40), sa.ForeignKey("notification.id"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    #: sending (written before the send), then delivered, rejected, unreachable,
    #: misconfigured; interrupted when the worker died before it knew.
    sa.Column("outcome", sa.String(16), nullable=False),
    #: HTTP status, the platform's errcode or the SMTP reply code.
    sa.Column("response_code", sa.String(32), nullable=True),
    sa.Column("detail", sa.String(300), nullable=False, server_default=""),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("notification_id", "attempt", name="uq_notification_attempt"),
)

#: The recipients of a notification that have it, when a receiver is several (an SMS
#: receiver's phones): recorded as each is taken, so a retry sends only to the others
#: (migration 0033). ``recipient`` is services.notifications.recipient_key: a digest, not
#: the phone.
notification_recipient = sa.Table(
    "notification_recipient",
    metadata,
    sa.Column("notification_id", sa.String(40), sa.ForeignKey("notification.id"), primary_key=True),
    sa.Column("recipient", sa.String(64), primary_key=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=False),
)
