"""What the services and the API need from the outside world, as protocols: the adapters
(streams/kafka, storage) implement them, and the API depends on these, not on them."""

from __future__ import annotations

from typing import Protocol

from schemas.commands import WorkOrderCommand


class CommandPublisher(Protocol):
    def publish(self, command: WorkOrderCommand) -> None:
        """Put the command on the commands topic; raise CommandNotPublished if it cannot."""


class CommandNotPublished(Exception):
    pass
