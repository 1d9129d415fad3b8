"""Everything policy/ holds, loaded by one function for ``wo run``, ``wo rules check`` and
``wo rules explain``: a directory one of them accepts, all accept. The policy is compiled
here, once, for triage and routing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.compiled_policy import CompiledPolicy, compile_policy
from workorder_pipeline.processors.notify_routing import NotifyRouter
from workorder_pipeline.schemas.notifications import NotificationPolicy
from workorder_pipeline.schemas.platforms import PlatformRegistry
from workorder_pipeline.schemas.policy import Policy, ReferenceData
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.services.calendar_files import load_calendar
from workorder_pipeline.services.notification_files import load_notifications
from workorder_pipeline.services.platform_files import load_platforms
from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem, load_policy, load_reference
from workorder_pipeline.services.sender_keys import load_senders

Loaded = TypeVar("Loaded")


@dataclass(frozen=True, slots=True)
class PolicySet:
    policy: Policy
    #: ``policy`` compiled, once: what triage and routing read for every signal.
    compiled: CompiledPolicy
    reference: ReferenceData
    calendar: WorkCalendar
    senders: SenderKeys
    #: The publishing platforms expected and their cadence (platform silence).
    platforms: PlatformRegistry
    #: policy/notifications.yaml (None: the file is absent, nobody is notified) and its
    #: routes compiled once.
    notifications: NotificationPolicy | None = None
    notify_router: NotifyRouter | None = None


def load_policy_set(directory: Path) -> PolicySet:
    """Policy, reference lists, calendar, senders' keys, expected platforms and who is
    notified; one PolicyError listing every problem."""
    problems: list[PolicyProblem] = []

    def attempt(load: Callable[[Path], Loaded]) -> Loaded | None:
        try:
            return load(directory)
        except PolicyError as exc:
            problems.extend(exc.problems)
            return None

    policy, reference, calendar = attempt(load_policy), attempt(load_reference), attempt(load_calendar)
    platforms = attempt(load_platforms)
    # Checked against the units only once they loaded: otherwise every unit would look unknown.
    senders = attempt(lambda found: load_senders(found, policy.units.ids())) if policy is not None else None
    notifications = (
        attempt(lambda found: load_notifications(found, policy.units.ids())) if policy is not None else None
    )
    if problems or policy is None or reference is None or calendar is None or senders is None:
        raise PolicyError(problems)
    if platforms is None:
        raise PolicyError(problems)
    router = NotifyRouter(notifications) if notifications is not None else None
    compiled = compile_policy(policy)
    return PolicySet(policy, compiled, reference, calendar, senders, platforms, notifications, router)
