"""A span of time and the time left before a deadline, as a person reads them in Chinese:
the console, the CLI and the notifications say them the same way."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """``2天3小时``, ``3小时5分钟``, ``45分钟``: to the minute under a day; past a day, days
    and hours (the minutes no longer matter to the reader). The sign is ignored."""
    minutes = int(abs(seconds)) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时"
    if hours:
        return f"{hours}小时{minutes}分钟"
    return f"{minutes}分钟"


def time_left(seconds: float) -> str:
    """``剩余 3小时5分钟`` before the deadline, ``已超期 1天2小时`` past it."""
    return ("剩余 " if seconds >= 0 else "已超期 ") + duration_text(seconds)
