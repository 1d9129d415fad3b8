"""``policy/notifications.yaml``: loaded and cross-checked (receivers and units named by
the routes exist), every problem with its file, line and field, by the one loader
``wo run``, ``wo rules check`` and ``wo rules explain`` share (services.policy_set).

Environment variables holding secrets are not required at load: ``wo rules check`` runs
where the secrets are not (CI). Those unset are listed by ``unset_secrets``; a delivery
through a receiver missing its secret fails as an attempt, is retried, and escalated."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from workorder_pipeline.schemas.notifications import NotificationPolicy, NotifyRoute, Receiver
from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem, line_finder, load_model

NOTIFICATIONS_FILE = "notifications.yaml"
Loc = tuple[str | int, ...]


def load_notifications(directory: Path, units: Collection[str]) -> NotificationPolicy | None:
    """None when the file is absent (nobody is notified); PolicyError listing every problem."""
    path = directory / NOTIFICATIONS_FILE
    if not path.exists():
        return None
    policy = load_model(path, NotificationPolicy)
    line_of = line_finder(path)
    receivers = {receiver.id for receiver in policy.receivers}
    problems: list[PolicyProblem] = []

    def problem(loc: Loc, message: str) -> None:
        problems.append(PolicyProblem(path, line_of(loc), ".".join(map(str, loc)), message))

    for loc, route in _routes(policy.route, ("route",)):
        for index, receiver in enumerate(route.receivers):
            if receiver not in receivers:
                problem((*loc, "receivers", index), f"no receiver {receiver!r} in receivers")
        for index, unit in enumerate(route.match.unit):
            if unit not in units:
                problem((*loc, "match", "unit", index), f"unit {unit!r} is not listed in units.yaml")
    chosen = policy.command_center_receiver
    if chosen is not None and chosen not in receivers:
        problem(("command_center_receiver",), f"no receiver {chosen!r} in receivers")
    if problems:
        raise PolicyError(problems)
    return policy


def _routes(route: NotifyRoute, loc: Loc) -> Iterator[tuple[Loc, NotifyRoute]]:
    yield loc, route
    for index, child in enumerate(route.routes):
        yield from _routes(child, (*loc, "routes", index))


def secret_names(receiver: Receiver) -> list[str]:
    """The environment variables ``receiver`` reads its secrets from."""
    via = receiver.via
    names = [getattr(via, field, None) for field in ("url_env", "secret_env", "password_env")]
    names += list(getattr(via, "credentials", {}).values())
    return [name for name in names if name]


def unset_secrets(policy: NotificationPolicy, environ: Mapping[str, str]) -> list[str]:
    """``receiver: VARIABLE`` for every secret not set in ``environ``."""
    return [
        f"{receiver.id}: {name}"
        for receiver in policy.receivers
        for name in secret_names(receiver)
        if not environ.get(name)
    ]
