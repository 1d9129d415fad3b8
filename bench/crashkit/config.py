"""The crash test's settings, fixed values and its own error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from workorder_pipeline.config.settings import ProcessingGuarantee
from workorder_pipeline.wo.kafka_cluster import BrokerKind

REPO_ROOT = Path(__file__).resolve().parents[2]
WO = REPO_ROOT / ".venv" / "bin" / "wo"
POLICY_DIR = REPO_ROOT / "policy"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
PARTITIONS = 6
OFFICERS = ["JS0682-0117", "JS0682-0342"]
#: What a worker logs (through aiokafka) when the group gives it partitions.
ASSIGNED = b"Setting newly assigned partitions"

Database = Literal["sqlite", "postgres"]


class CrashTestError(RuntimeError):
    """The run could not be carried out (not a finding about the pipeline)."""


@dataclass(frozen=True)
class CrashConfig:
    signals: int = 20_000
    kills: int = 20
    workers: int = 1
    database: Database = "postgres"
    broker: BrokerKind = BrokerKind.KAFKA
    #: The workers' WO_PROCESSING_GUARANTEE; exactly once fails the run on any re-published order.
    guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once
    seed: int = 1
    #: A database to use as is (already created, not dropped); default: create one.
    database_url: str | None = None
    #: Messages published per chunk; chunks are spread over the kill phase.
    chunk: int = 500
    #: The share of kills that land while the worker starts or joins the group: uniform in
    #: ``startup_kill_s`` seconds after its start. The others land uniform in
    #: ``working_kill_s`` seconds after it was given partitions, while batches are in flight.
    startup_kill_share: float = 0.3
    startup_kill_s: tuple[float, float] = (0.5, 8.0)
    working_kill_s: tuple[float, float] = (0.5, 8.0)
    #: Seconds between a SIGKILL and the restart: uniform in [0, this].
    restart_delay_s: float = 1.0
    #: Commands go for orders of signals published this many chunks earlier.
    command_lag_chunks: int = 1
    #: How long a chunk's commands wait for their orders to be dispatched (then go anyway).
    command_wait_s: float = 4.0
    #: Bound of the final wait for the consumer group to commit everything.
    catch_up_timeout_s: float = 300.0
    #: Where logs go; default: a temporary directory, removed unless the run failed.
    workdir: Path | None = None
    keep_workdir: bool = False

    def __post_init__(self) -> None:
        if self.signals < 1 or self.kills < 0 or self.workers not in (1, 2) or self.chunk < 1:
            raise ValueError("signals >= 1, kills >= 0, workers 1 or 2, chunk >= 1")
        for low, high in (self.startup_kill_s, self.working_kill_s):
            if not 0 <= low <= high:
                raise ValueError(f"bad range of seconds before a kill: {low}, {high}")
