"""The failure drills: brokers of a three-node Apache Kafka cluster killed, stopped and
restarted under load (``pytest -m drill``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here: pyproject.toml's marker list belongs to the whole suite.
    config.addinivalue_line(
        "markers",
        "drill: kills, stops and restarts brokers of a three-node Kafka cluster under load, then "
        "audits for lost and duplicate orders (bench/failure_drills.py at CI size)",
    )
