"""Monthly reports made, kept on disk and read back: the leader makes last month's in the
first hours of each month (streams/background.py); the API and ``wo report`` list and serve
them. One directory, one file per month and format (``report-YYYY-MM.pdf``), written whole
(a temporary file renamed), so a reader never sees half a report."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from workorder_pipeline.processors.figures import Period, month_label
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.schemas.report import MonthlyReport
from workorder_pipeline.services.ports import FigureFactsReader, ReportReads
from workorder_pipeline.services.report import figures_from, monthly_report
from workorder_pipeline.services.report_formats.documents import ReportFormat, render

_FILE = re.compile(r"^report-(\d{4}-\d{2})\.(html|pdf|xlsx)$")


@dataclass(frozen=True, slots=True)
class KeptReport:
    month: str
    format: ReportFormat
    size: int
    made_at: datetime


class MonthlyReports:
    def __init__(
        self,
        reads: ReportReads,
        facts: FigureFactsReader,
        weights: ScoreWeights,
        directory: Path,
        unit_names: Mapping[str, str],
    ) -> None:
        self._reads = reads
        self._figures = figures_from(facts, weights)
        self.directory = directory
        #: The policy's (schemas.policy.Units.names): units are shown by name.
        self._unit_names = dict(unit_names)

    def make(self, period: Period, now: datetime) -> MonthlyReport:
        return monthly_report(self._reads, period, now, self._figures, unit_names=self._unit_names)

    def document(self, month: str, fmt: ReportFormat, now: datetime) -> bytes:
        """The kept report of ``month`` (YYYY-MM), or one made now when none is kept;
        MonthRefused for anything but a month report_period accepts."""
        period = report_period(month, now)
        kept = self._path(period.label, fmt)
        if kept.exists():
            return kept.read_bytes()
        return render(self.make(period, now), fmt)

    def keep_last_month(self, now: datetime) -> list[Path]:
        """Make and keep the report of the month before ``now``'s (China time) in every
        format not kept yet; the files written."""
        period = Period.last_month(now)
        missing = [fmt for fmt in ReportFormat if not self._path(period.label, fmt).exists()]
        if not missing:
            return []
        report = self.make(period, now)
        return [self._write(self._path(period.label, fmt), render(report, fmt)) for fmt in missing]

    def kept(self) -> list[KeptReport]:
        """Every kept report, newest month first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            name = _FILE.match(path.name)
            if name is not None:
                stat = path.stat()
                made = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                found.append(KeptReport(name[1], ReportFormat(name[2]), stat.st_size, made))
        return sorted(found, key=lambda r: (r.month, r.format.value), reverse=True)

    def _path(self, month: str, fmt: ReportFormat) -> Path:
        return self.directory / f"report-{month}.{fmt.value}"

    def _write(self, path: Path, content: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".making-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


#: The first month a report is made for: nothing earlier was ever stored.
FIRST_YEAR = 2000


class MonthProblem(StrEnum):
    not_a_month = "not_a_month"
    too_early = "too_early"
    in_future = "in_future"


_PROBLEMS = {
    MonthProblem.not_a_month: (
        "give the month as YYYY-MM in ASCII digits, month 01-12, e.g. 2026-11",
        "月份应为 YYYY-MM（半角数字，月份 01–12，例如 2026-11）",
    ),
    MonthProblem.too_early: (
        f"no report before {FIRST_YEAR}-01",
        f"只受理 {FIRST_YEAR} 年 1 月及以后的月份",
    ),
    MonthProblem.in_future: (
        "that month has not begun (China time)",
        "该月份尚未到来（只受理本月及以前的月份，北京时间）",
    ),
}


class MonthRefused(ValueError):
    """Not a month a report can be made for; the message never quotes what was given."""

    def __init__(self, problem: MonthProblem) -> None:
        super().__init__(_PROBLEMS[problem][0])
        self.problem = problem

    @property
    def zh(self) -> str:
        return _PROBLEMS[self.problem][1]


def report_period(text: str, now: datetime) -> Period:
    """The calendar month (China time) ``text`` names as ``YYYY-MM``, from FIRST_YEAR to the
    month ``now`` is in: what the CLI, the API and the console accept; MonthRefused otherwise."""
    named = month_label(text)
    if named is None:
        raise MonthRefused(MonthProblem.not_a_month)
    year, month = named
    if year < FIRST_YEAR:
        raise MonthRefused(MonthProblem.too_early)
    current = Period.this_month(now).label
    if f"{year:04d}-{month:02d}" > current:
        raise MonthRefused(MonthProblem.in_future)
    return Period.month(year, month)
