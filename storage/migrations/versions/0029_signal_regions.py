"""For the monthly report: each valid signal's region (行政区划代码) as a stored column of
work_order_source and suppressed_signal, the region routing used (processors/signals.py:
an alarm's location, a complaint's subject, a suspect list entry's busiest checkpoint region;
a check-in failure has none), so the report counts signals by region with one GROUP BY
instead of reading payloads. Backfilled from the payloads; a suspect's from the list's own
checkpoint regions (the policy's corrections, policy/reference/checkpoints.yaml, are not
read by a migration).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_TABLES = ("work_order_source", "suppressed_signal")
#: Where each kind's region is in its payload (../shared/contracts.md).
_PATHS = {"vehicle_alarm": ("location", "region_code"), "complaint": ("subject", "region_code")}
_BATCH = 1000


def upgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as table:
            table.add_column(sa.Column("region_code", sa.String(12), nullable=True))
    bind = op.get_bind()
    for name in _TABLES:
        for kind, (outer, inner) in _PATHS.items():
            region = f"json_extract(payload, '$.{outer}.{inner}')"
            if bind.dialect.name == "postgresql":
                region = f"payload->'{outer}'->>'{inner}'"
            op.execute(f"UPDATE {name} SET region_code = substr({region}, 1, 12) WHERE kind = '{kind}'")
        _suspects(bind, name)


def _suspects(bind: sa.Connection, name: str) -> None:
    """A suspect's region: the one of its checkpoints with the most passes (ties: the busier
    single checkpoint, then the lower code), as processors/signals.busiest_checkpoint_region."""
    table = sa.table(name, sa.column("source_key"), sa.column("payload"), sa.column("region_code"))
    rows = bind.execute(sa.text(f"SELECT source_key, payload FROM {name} WHERE kind = 'suspect'")).all()
    updates = [{"key": key, "region": _busiest(payload)} for key, payload in rows]
    statement = (
        sa.update(table)
        .where(table.c.source_key == sa.bindparam("key"))
        .values(region_code=sa.bindparam("region"))
    )
    for first in range(0, len(updates), _BATCH):
        chunk = [row for row in updates[first : first + _BATCH] if row["region"] is not None]
        if chunk:
            bind.execute(statement, chunk)


def _busiest(payload: Any) -> str | None:
    data = json.loads(payload) if isinstance(payload, str) else payload
    totals: dict[str, int] = {}
    peaks: dict[str, int] = {}
    for checkpoint in (data or {}).get("checkpoints") or []:
        region, passes = checkpoint.get("region_code"), checkpoint.get("passes")
        if isinstance(region, str) and isinstance(passes, int):
            totals[region] = totals.get(region, 0) + passes
            peaks[region] = max(peaks.get(region, 0), passes)
    if not totals:
        return None
    return min(totals, key=lambda region: (-totals[region], -peaks[region], region))[:12]


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as table:
            table.drop_column("region_code")
