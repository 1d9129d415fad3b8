"""The monthly report's read port (services.ports.ReportReads) on the pipeline's database."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from workorder_pipeline.storage import report_inflow, report_orders
from workorder_pipeline.storage.report_inflow import Window
from workorder_pipeline.storage.tables import work_order

#: Order columns the report counts by.
_ORDER_FIELDS = frozenset({"kind", "category", "region_code"})


class ReportStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def signals_by_kind(self, window: Window) -> Counter[str]:
        with self._engine.connect() as conn:
            return report_inflow.signals_by_kind(conn, window)

    def signals_by_platform(self, window: Window) -> Counter[str]:
        with self._engine.connect() as conn:
            return report_inflow.signals_by_platform(conn, window)

    def signals_by_category(self, window: Window) -> Counter[str]:
        with self._engine.connect() as conn:
            return report_inflow.signals_by_category(conn, window)

    def signals_by_region(self, window: Window) -> Counter[str]:
        with self._engine.connect() as conn:
            return report_inflow.signals_by_region(conn, window)

    def orders_by_platform(self, window: Window) -> Counter[str]:
        with self._engine.connect() as conn:
            return report_inflow.orders_by_platform(conn, window)

    def orders_by(self, field: str, window: Window) -> Counter[str]:
        if field not in _ORDER_FIELDS:
            raise ValueError(f"orders are not counted by {field!r}")
        with self._engine.connect() as conn:
            return report_inflow.orders_by(conn, work_order.c[field], window)

    def suppressed_by_reason(self, window: Window) -> Counter[str]:
        with self._engine.connect() as conn:
            return report_inflow.suppressed_by_reason(conn, window)

    def dead_letters_by(self, field: str, window: Window) -> Counter[str]:
        if field not in ("reason", "topic"):
            raise ValueError(f"dead letters are not counted by {field!r}")
        with self._engine.connect() as conn:
            return report_inflow.dead_letters_by(conn, field, window)

    def recurring(self, subject: str, window: Window, top: int) -> list[dict[str, Any]]:
        if subject not in ("plate", "enterprise_id"):
            raise ValueError(f"no recurrence by {subject!r}")
        with self._engine.connect() as conn:
            return report_orders.recurring(conn, subject, window, top)

    def categories_by_place(self, window: Window, top: int) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return report_orders.categories_by_place(conn, window, top)

    def repeated_checkin_failures(self, window: Window, at_least: int) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return report_orders.repeated_checkin_failures(conn, window, at_least)

    def returns(self, window: Window) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return report_orders.returns(conn, window)

    def orders_by_route(self, window: Window) -> dict[str, int]:
        with self._engine.connect() as conn:
            return report_orders.orders_by_route(conn, window)

    def clocks(self, window: Window) -> list[tuple[str, datetime, datetime | None, datetime | None]]:
        with self._engine.connect() as conn:
            return report_orders.clocks(conn, window)

    def overdue(self, window: Window, top: int) -> tuple[list[dict[str, Any]], int]:
        with self._engine.connect() as conn:
            return report_orders.overdue(conn, window, top)

    def escalated(self, window: Window, top: int) -> tuple[list[dict[str, Any]], int]:
        with self._engine.connect() as conn:
            return report_orders.escalated(conn, window, top)
