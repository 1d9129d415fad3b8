"""The wall clock. Read at the edges (the worker, the API, the command line) and handed
inward as ``now``; processors never read it (they may not import services)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
