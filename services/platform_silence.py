"""Whether a publishing platform is silent now, on the working-day calendar: the judgement
(processors.platform_silence) bound to the calendar, for the leader's gauges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.platform_silence import PlatformState, judge
from workorder_pipeline.schemas.platforms import ExpectedPlatform

#: (platform, its newest event time or None, now) -> silent?
SilenceJudge = Callable[[ExpectedPlatform, datetime | None, datetime], bool]


def silence_judge(calendar: WorkCalendar) -> SilenceJudge:
    def is_silent(platform: ExpectedPlatform, last_seen: datetime | None, now: datetime) -> bool:
        return judge(platform, last_seen, now, calendar) is not PlatformState.heard

    return is_silent
