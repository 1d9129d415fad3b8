"""The migrations build exactly the schema storage/tables.py describes."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from workorder_pipeline.storage.database import MIGRATIONS, create_engine, migrate
from workorder_pipeline.storage.tables import metadata, suppressed_signal


def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_a_sqlite_time_stored_on_a_whole_second_before_the_fix_is_found_after_upgrading(
    sqlite_url: str,
) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0010")
        with engine.begin() as conn:  # as the batch writer spelled it before the fix
            conn.exec_driver_sql(
                "INSERT INTO suppressed_signal (source_key, kind, reason, rule_key, detail, unit, route_key,"
                " occurred_at, received_at, violation_key, payload) VALUES ('k', 'vehicle_alarm',"
                " 'threshold', 'r', 'd', 'squad-1', 'root', '2026-11-22 01:31:00',"
                " '2026-11-22 01:31:00', NULL, '{}')"
            )
        migrate(sqlite_url)
        second = datetime(2026, 11, 22, 1, 31, tzinfo=UTC)
        with engine.connect() as conn:
            found = conn.execute(
                sa.select(suppressed_signal.c.source_key).where(suppressed_signal.c.received_at >= second)
            ).scalars()
            assert list(found) == ["k"]
    finally:
        engine.dispose()


def test_escalations_fired_before_the_notifications_upgrade_are_not_notified_after_it(
    database_url: str,
) -> None:
    """The rows are written as the schema just before 0021 had them (raw SQL on the reflected
    tables: today's code writes columns of later migrations)."""
    from datetime import timedelta

    from alembic.script import ScriptDirectory

    from workorder_pipeline.processors.notify_routing import NotifyRouter
    from workorder_pipeline.schemas.notifications import NotificationPolicy
    from workorder_pipeline.services.notifications import Notifier
    from workorder_pipeline.storage.notifications import NotificationStore
    from workorder_pipeline.storage.tables import escalation

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    before = ScriptDirectory.from_config(config).get_revision("0021").down_revision
    assert isinstance(before, str)
    engine = create_engine(database_url)
    created = datetime(2026, 11, 23, tzinfo=UTC)
    fired = created + timedelta(days=3)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, before)
            connection.commit()
        with engine.begin() as conn:
            old_order = sa.Table("work_order", sa.MetaData(), autoload_with=conn)
            old_escalation = sa.Table("escalation", sa.MetaData(), autoload_with=conn)
            times = {"created_at": created, "updated_at": created, "first_seen_at": created}
            conn.execute(
                sa.insert(old_order).values(
                    id="WO-1", kind="vehicle_alarm", status="dispatched", unit="squad-1", priority="P1",
                    route_key="r", due_at=created + timedelta(days=1), last_seen_at=created,
                    dispatched_at=created, summary="s", occurrences=1, **times,
                )
            )  # fmt: skip
            for level in ("reminder", "overdue", "leadership"):
                conn.execute(
                    sa.insert(old_escalation).values(
                        work_order_id="WO-1", level=level, due_at=created + timedelta(days=1),
                        unit="squad-1", fired_at=fired,
                    )
                )  # fmt: skip
        migrate(database_url)
        policy = NotificationPolicy.model_validate(
            {
                "console_url": "https://console.example/orders/{order_id}",
                "receivers": [
                    {
                        "id": "hook",
                        "via": {"channel": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "S"},
                    }
                ],
                "route": {"receivers": ["hook"]},
                "urgent": {"priorities": []},
            }
        )
        notifier = Notifier(NotificationStore(engine), policy, NotifyRouter(policy), {}, {})
        assert notifier.plan(fired) == 0
        # What fires after the upgrade is told: the old ones were skipped, not the routing.
        with engine.begin() as conn:
            conn.execute(
                sa.insert(escalation).values(
                    work_order_id="WO-1", level="red_card", due_at=created + timedelta(days=2),
                    unit="squad-1", fired_at=fired,
                )
            )  # fmt: skip
        assert notifier.plan(fired) == 1
    finally:
        engine.dispose()


def test_complaint_orders_stored_before_the_category_column_get_their_ticket_s_category(
    database_url: str,
) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    engine = create_engine(database_url)
    at = datetime(2026, 11, 22, 1, 31, tzinfo=UTC)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0017")
            connection.commit()
        with engine.begin() as conn:
            old = sa.Table("work_order", sa.MetaData(), autoload_with=conn)
            sources = sa.Table("work_order_source", sa.MetaData(), autoload_with=conn)
            common = {"status": "closed", "unit": "squad-1", "priority": "P2", "route_key": "r"}
            times = {
                "created_at": at,
                "updated_at": at,
                "due_at": at,
                "first_seen_at": at,
                "last_seen_at": at,
            }
            orders = [("CP-1", "complaint"), ("CP-2", "complaint"), ("VA-1", "vehicle_alarm")]
            for order_id, kind in orders:
                conn.execute(
                    sa.insert(old).values(
                        id=order_id, kind=kind, summary="s", occurrences=1, **common, **times
                    )
                )
            payloads = [
                ("complaint:a", "CP-1", {"category": "detour", "complainant": {"phone": "13800000000"}}),
                ("complaint:b", "CP-2", {"category": "not-in-the-contract"}),
                ("vehicle_alarm:c", "VA-1", {"category": "detour"}),
            ]
            for key, order_id, payload in payloads:
                conn.execute(
                    sa.insert(sources).values(
                        source_key=key, work_order_id=order_id, kind="x", received_at=at, payload=payload
                    )
                )
        migrate(database_url)
        with engine.connect() as conn:
            found = {
                row.id: row.category for row in conn.execute(sa.text("SELECT id, category FROM work_order"))
            }
        assert found == {"CP-1": "detour", "CP-2": None, "VA-1": None}
    finally:
        engine.dispose()


def test_signals_stored_before_the_region_column_get_the_region_routing_used(database_url: str) -> None:
    """An alarm's location, a complaint's subject, a suspect's busiest checkpoint region (summed
    passes; a tie: the busier single checkpoint); a check-in failure and a suspect without
    checkpoints have none."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    engine = create_engine(database_url)
    at = datetime(2026, 11, 22, 1, 31, tzinfo=UTC)
    payloads = {
        "vehicle_alarm:a": {"platform_id": "p", "location": {"lat": 1, "lon": 2, "region_code": "320682"}},
        "complaint:b": {"category": "detour", "subject": {"region_code": "320681"}, "complainant": {}},
        "complaint:c": {"category": "detour", "subject": {}},
        # 320601: 2 + 2 passes; 320602: 4 in one checkpoint; tie on 4: the busier checkpoint wins.
        "suspect:d": {
            "checkpoints": [
                {"id": "k1", "region_code": "320601", "passes": 2},
                {"id": "k2", "region_code": "320601", "passes": 2},
                {"id": "k3", "region_code": "320602", "passes": 4},
            ]
        },
        "suspect:e": {"checkpoints": []},
        "checkin_failure:f": {"platform_id": "p", "enterprise": {"id": "x"}},
    }
    expected = {
        "vehicle_alarm:a": "320682",
        "complaint:b": "320681",
        "complaint:c": None,
        "suspect:d": "320602",
        "suspect:e": None,
        "checkin_failure:f": None,
    }
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0028")
            connection.commit()
        with engine.begin() as conn:
            orders = sa.Table("work_order", sa.MetaData(), autoload_with=conn)
            sources = sa.Table("work_order_source", sa.MetaData(), autoload_with=conn)
            suppressed = sa.Table("suppressed_signal", sa.MetaData(), autoload_with=conn)
            conn.execute(
                sa.insert(orders).values(
                    id="WO-1", kind="complaint", summary="s", occurrences=1, status="closed", unit="squad-1",
                    priority="P2", route_key="r", created_at=at, updated_at=at, due_at=at, first_seen_at=at,
                    last_seen_at=at,
                )
            )  # fmt: skip
            for key, payload in payloads.items():
                kind = key.split(":")[0]
                conn.execute(
                    sa.insert(sources).values(
                        source_key=key, work_order_id="WO-1", kind=kind, received_at=at, payload=payload
                    )
                )
                conn.execute(
                    sa.insert(suppressed).values(
                        source_key=key, kind=kind, reason="threshold", rule_key="r", detail="d",
                        unit="squad-1", route_key="r", occurred_at=at, received_at=at, payload=payload,
                    )
                )  # fmt: skip
        migrate(database_url)
        for table in ("work_order_source", "suppressed_signal"):
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT source_key, region_code FROM {table}"))
                assert {key: region for key, region in rows} == expected, table
    finally:
        engine.dispose()
