"""``policy/platforms.yaml``: the publishing platforms we expect and their cadence (see
schemas/platforms.py). Loaded by services/policy_set for ``wo run`` and ``wo rules check``."""

from __future__ import annotations

from pathlib import Path

from workorder_pipeline.schemas.platforms import PlatformRegistry
from workorder_pipeline.services.policy_files import load_model

PLATFORMS_FILE = "platforms.yaml"


def load_platforms(directory: Path) -> PlatformRegistry:
    """The registry of ``directory/platforms.yaml`` (empty when the file is absent: no
    platform is then judged silent). PolicyError names file, line and field of each problem."""
    path = directory / PLATFORMS_FILE
    if not path.exists():
        return PlatformRegistry()
    return load_model(path, PlatformRegistry)
