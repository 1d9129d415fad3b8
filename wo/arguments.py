"""Argument types shared by the ``wo`` commands (a bad value is a usage error: exit 2)."""

from __future__ import annotations

import argparse
from datetime import datetime


def aware_time(text: str) -> datetime:
    """An ISO 8601 time with its offset: a time without one is ambiguous, so refused."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. +08:00")
    return value
