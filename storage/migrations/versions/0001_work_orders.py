"""Work orders, their sources and their append-only audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "work_order",
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
    )
    op.create_index("ix_work_order_unit_status", "work_order", ["unit", "status"])
    op.create_index("ix_work_order_status_due_at", "work_order", ["status", "due_at"])
    op.create_index("ix_work_order_plate", "work_order", ["plate"])
    op.create_index("ix_work_order_enterprise_id", "work_order", ["enterprise_id"])

    op.create_table(
        "work_order_source",
        sa.Column("source_key", sa.String(300), primary_key=True),
        sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("payload", _json, nullable=False),
    )
    op.create_index("ix_work_order_source_work_order_id", "work_order_source", ["work_order_id"])

    op.create_table(
        "work_order_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("detail", _json, nullable=False),
    )
    op.create_index("ix_work_order_event_work_order_id", "work_order_event", ["work_order_id", "id"])

    # The audit trail is append-only: the database itself refuses edits.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION work_order_event_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'work_order_event is append-only'; END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER work_order_event_append_only BEFORE UPDATE OR DELETE ON work_order_event "
            "FOR EACH ROW EXECUTE FUNCTION work_order_event_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER work_order_event_no_{operation.lower()} BEFORE {operation} "
                "ON work_order_event BEGIN SELECT RAISE(ABORT, 'work_order_event is append-only'); END"
            )


def downgrade() -> None:
    op.drop_table("work_order_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS work_order_event_append_only()")
    op.drop_table("work_order_source")
    op.drop_table("work_order")
