"""The crash suite: ``wo run`` workers SIGKILLed at random moments (``pytest -m crash``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here: pyproject.toml's marker list belongs to the whole suite.
    config.addinivalue_line(
        "markers",
        "crash: SIGKILLs and restarts wo run workers under load, then audits for duplicates, "
        "losses and commands applied twice (bench/crash_test.py at CI size)",
    )
