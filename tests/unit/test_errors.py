"""One hierarchy of the product's exceptions, and the CLI's exit codes taken from it."""

from __future__ import annotations

import pytest

from workorder_pipeline.config.settings import SettingsError
from workorder_pipeline.schemas.errors import WorkOrderError
from workorder_pipeline.services.policy_files import PolicyError
from workorder_pipeline.services.ports import CommandNotPublished
from workorder_pipeline.services.sender_keys import SigningKeyError
from workorder_pipeline.storage.database import DatabaseUnavailable
from workorder_pipeline.storage.dedupe_slots import DedupeSlotTaken
from workorder_pipeline.streams.kafka.admin import TopicSetupError
from workorder_pipeline.streams.outputs import TransactionsUnavailable
from workorder_pipeline.streams.resilience import Stopped, TopicsNotReady
from workorder_pipeline.wo.embedded_broker import BrokerStartError
from workorder_pipeline.wo.errors import Unreachable, exit_code
from workorder_pipeline.wo.publish import PublishError

PRODUCT_ERRORS = [
    SettingsError("x"),
    PolicyError([]),
    TransactionsUnavailable("x"),
    Unreachable("x"),
    DatabaseUnavailable("x"),
    CommandNotPublished("x"),
    TopicSetupError("x"),
    BrokerStartError("x"),
    PublishError("x"),
    SigningKeyError("x"),
    DedupeSlotTaken(),
    TopicsNotReady("x"),
    Stopped("x"),
]


@pytest.mark.parametrize("error", PRODUCT_ERRORS, ids=lambda e: type(e).__name__)
def test_every_product_error_has_the_one_base(error: Exception) -> None:
    assert isinstance(error, WorkOrderError)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SettingsError("x"), 3),
        (PolicyError([]), 3),
        (TransactionsUnavailable("x"), 3),
        (Unreachable("x"), 4),
        (DatabaseUnavailable("x"), 4),
        (TopicSetupError("x"), None),
        (BrokerStartError("x"), None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_the_exit_code_of_an_error_comes_from_its_branch(error: WorkOrderError, code: int | None) -> None:
    assert exit_code(error) == code


def test_broker_errors_stay_runtime_errors_for_callers_that_catch_those() -> None:
    assert isinstance(TopicSetupError("x"), RuntimeError)
    assert isinstance(BrokerStartError("x"), RuntimeError)
    assert isinstance(TransactionsUnavailable("x"), RuntimeError)
