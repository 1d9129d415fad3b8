"""Failures a command-line user can act on: printed as one line, with a documented exit code
(README, "Exit codes"). The exceptions themselves are in schemas/errors.py."""

from __future__ import annotations

import socket

from workorder_pipeline.schemas.errors import ConfigurationError, UnavailableError, WorkOrderError

EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNAVAILABLE = 4

#: The exit code of each branch of schemas/errors.py that may end a command (an error takes
#: that of its nearest listed base). A branch not listed is not expected to reach the user:
#: its traceback is shown.
#: A command that answers "invalid" (1) for its own errors catches them itself.
EXIT_CODES: dict[type[WorkOrderError], int] = {
    ConfigurationError: EXIT_CONFIG,
    UnavailableError: EXIT_UNAVAILABLE,
}


class Unreachable(UnavailableError):
    """A server the command needs (the API, the broker) did not answer: exit code 4."""


def exit_code(error: WorkOrderError) -> int | None:
    """The exit code for ``error``, by the first of its classes in :data:`EXIT_CODES`."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return None


def first_reachable(addresses: str, timeout_s: float = 3.0) -> str | None:
    """The first ``host:port`` of a comma-separated list that accepts a TCP connection, or None."""
    for address in addresses.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return address
        except (OSError, ValueError):
            continue
    return None
