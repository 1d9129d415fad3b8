"""Monthly reports made, kept on disk and read back: the leader makes last month's in the
first hours of each month (streams/background.py); the API and ``wo report`` list and serve
them. One directory, one file per month and format (``report-YYYY-MM.pdf``), written whole
(a temporary file renamed), so a reader never sees half a report."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workorder_pipeline.processors.figures import Period
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.schemas.report import MonthlyReport
from workorder_pipeline.services.figures import period_named
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
        self, reads: ReportReads, facts: FigureFactsReader, weights: ScoreWeights, directory: Path
    ) -> None:
        self._reads = reads
        self._figures = figures_from(facts, weights)
        self.directory = directory

    def make(self, period: Period, now: datetime) -> MonthlyReport:
        return monthly_report(self._reads, period, now, self._figures)

    def document(self, month: str, fmt: ReportFormat, now: datetime) -> bytes:
        """The kept report of ``month`` (YYYY-MM), or one made now when none is kept;
        ValueError for anything but a month."""
        period = _month(month, now)
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


def _month(text: str, now: datetime) -> Period:
    if not re.fullmatch(r"\d{4}-\d{2}", text):
        raise ValueError(f"month {text!r}: give it as YYYY-MM, e.g. 2026-11")
    return period_named(text, now)
