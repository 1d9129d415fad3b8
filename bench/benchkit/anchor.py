"""The Quix Streams anchor (``bench/anchor_quix.py``) run in its own venv, its rows read back.

quixstreams is not a dependency of the project: the anchor runs with the python of a venv
given by ``--anchor-venv`` or ``WO_ANCHOR_VENV`` (README, "Performance"), as a subprocess of
the benchmark, on the benchmark's broker.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchkit.common import REPO_ROOT, BenchmarkError
from benchkit.results import Row

ANCHOR_SCRIPT = REPO_ROOT / "bench" / "anchor_quix.py"
ANCHOR_VENV_ENV = "WO_ANCHOR_VENV"
#: What each of the anchor's modes measures, as the row's name.
ANCHOR_ROWS = {
    "raw": "Quix anchor: confluent-kafka consume (raw)",
    "parse": "Quix anchor: Quix Streams app, parse only",
    "dedupe": "Quix anchor: Quix Streams dedupe app",
}
# The anchor prints e.g. "dedupe       9,433 msg/s    107.0 us CPU/msg", or "parse FAILED <stderr>".
_ROW = re.compile(
    r"^(?P<mode>raw|parse|dedupe)\s+(?P<rate>[\d,]+(?:\.\d+)?) msg/s\s+(?P<cpu>[\d,.]+) us CPU/msg\s*$"
)
_FAILED = re.compile(r"^(?P<mode>raw|parse|dedupe) FAILED\b(?P<why>.*)$")


@dataclass(frozen=True)
class AnchorVenv:
    """The venv's python, or why there is none (the anchor is then skipped)."""

    python: Path | None
    reason: str = ""


def find_anchor_venv(given: str | None, environ: dict[str, str] | None = None) -> AnchorVenv:
    """``--anchor-venv`` if given, else ``$WO_ANCHOR_VENV``; a python must be in its bin/."""
    environ = dict(os.environ) if environ is None else environ
    where = given or environ.get(ANCHOR_VENV_ENV, "")
    if not where:
        return AnchorVenv(None, f"no --anchor-venv and no {ANCHOR_VENV_ENV}: the Quix anchor is skipped")
    python = Path(where) / "bin" / "python"
    if not python.is_file():
        return AnchorVenv(None, f"{python} does not exist: the Quix anchor is skipped")
    return AnchorVenv(python)


def parse_anchor_output(text: str) -> list[Row]:
    """The anchor's rows from its standard output (a failed mode becomes a FAILED row)."""
    rows: list[Row] = []
    for line in text.splitlines():
        if match := _ROW.match(line.strip()):
            rows.append(
                Row(
                    ANCHOR_ROWS[match["mode"]],
                    rate=float(match["rate"].replace(",", "")),
                    cpu_us=float(match["cpu"].replace(",", "")),
                )
            )
        elif match := _FAILED.match(line.strip()):
            rows.append(Row(f"{ANCHOR_ROWS[match['mode']]}: FAILED", note=match["why"].strip()[:200]))
    return rows


def run_anchor(
    python: Path, messages: int, bootstrap: str, workdir: Path, timeout_s: float = 1800
) -> list[Row]:
    """Run the anchor on ``bootstrap`` with ``messages`` alarms; its rows, or BenchmarkError.

    In ``workdir``: its Quix apps keep their RocksDB state in the current directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [str(python), str(ANCHOR_SCRIPT), str(messages), bootstrap],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=workdir,
            # Another venv's python: our checkout on its path could shadow its packages.
            env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"the Quix anchor took over {timeout_s:g} s") from exc
    rows = parse_anchor_output(done.stdout)
    if done.returncode != 0 or not rows:
        raise BenchmarkError(
            f"the Quix anchor exited with {done.returncode} and {len(rows)} rows:\n"
            f"{done.stdout[-1000:]}\n{done.stderr[-2000:]}"
        )
    return rows
