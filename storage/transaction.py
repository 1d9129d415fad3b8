"""What a unit of work's transaction reports when another worker's transaction won a race.

Two workers recording the same thing at once (a publisher id, a dedupe key's open order, a
command_id) make the later one's transaction fail on a unique index. Done again from its
start, the work sees the winner's rows (a known signal, an order to merge into, a command
handled already). The service runs its unit of work once more on LostRace
(services.unit_of_work); ``error`` is what losing again means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError


class LostRace(Exception):
    """A unique index refused a row another transaction committed first."""

    def __init__(self, error: Exception) -> None:
        # Never the error's message: it quotes the statement's values.
        super().__init__("another transaction committed the same unique row first")
        #: What to raise if the work, done again, loses again.
        self.error = error


def _as_is(exc: IntegrityError) -> Exception:
    return exc


@contextmanager
def races_reported(meaning: Callable[[IntegrityError], Exception] = _as_is) -> Iterator[None]:
    """Raise LostRace for a unique index's refusal in the block (``meaning``: what losing twice means)."""
    try:
        yield
    except IntegrityError as exc:
        raise LostRace(meaning(exc)) from exc
