"""Failures a command-line user can act on: printed as one line, with a documented exit code."""

from __future__ import annotations

import socket


class Unreachable(Exception):
    """A server the command needs (the API, the broker) did not answer: exit code 4."""


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
