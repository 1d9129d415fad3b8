"""The one retry of a unit of work: after a lost race, the whole unit once more."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from workorder_pipeline.storage.transaction import LostRace

Result = TypeVar("Result")


def once_more_if_raced(attempt: Callable[[], Result]) -> Result:
    """Run ``attempt`` (a unit of work from its ``with`` to what it returns); if another
    worker's transaction committed the same unique row first (storage.transaction), run it
    once more: it then sees the winner's rows. Each attempt builds its own result, so only
    the committed one's is returned. Losing again raises what that means (LostRace.error:
    e.g. storage.dedupe_slots.DedupeSlotTaken, a conflict the caller waits out)."""
    try:
        return attempt()
    except LostRace:
        pass
    try:
        return attempt()
    except LostRace as again:
        raise again.error from again.error.__cause__
