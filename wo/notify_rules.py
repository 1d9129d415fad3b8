"""``wo rules notify``: who would be told of a notification, through which channel and
when (quiet hours, China time), by the routes ``wo run`` compiles; and the notifications
part of ``wo rules check``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.processors.notify_routing import NotifyEvent, send_after
from workorder_pipeline.schemas.notifications import NotificationLevel, NotificationPolicy
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.schemas.workorder import Priority
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.policy_files import PolicyError
from workorder_pipeline.wo.arguments import aware_time

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def add_rules_notify(rules_commands: Subcommands) -> None:
    notify = rules_commands.add_parser(
        "notify", help="show who would be told of a notification, through which channel, and when"
    )
    notify.add_argument("--unit", required=True, help="the order's unit")
    notify.add_argument("--level", required=True, choices=[level.value for level in NotificationLevel])
    notify.add_argument("--priority", required=True, choices=[p.value for p in Priority])
    notify.add_argument("--kind", required=True, choices=[k.value for k in SignalKind])
    notify.add_argument("--at", type=aware_time, help="at this time (ISO 8601 with offset; default: now)")
    notify.add_argument("--rules", type=Path, help="policy directory (default: WO_POLICY_DIR)")
    notify.set_defaults(command=rules_notify)


def rules_notify(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.policy_set import load_policy_set

    try:
        loaded = load_policy_set(args.rules or settings.policy_dir)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    policy, router = loaded.notifications, loaded.notify_router
    if policy is None or router is None:
        print("no notifications.yaml: nobody is told")
        return 0
    event = NotifyEvent(
        args.unit, NotificationLevel(args.level), Priority(args.priority), SignalKind(args.kind)
    )
    now = args.at or utc_now()
    urgent = router.urgent(event)
    print(f"at          {for_people(now)}{' (--at)' if args.at else ''}")
    print(f"urgent      {'yes: sent through quiet hours' if urgent else 'no'}")
    receivers = router.receivers(event)
    if not receivers:
        print("receivers   none: no route sends it anywhere")
    for receiver_id in receivers:
        receiver = policy.receiver(receiver_id)
        quiet = receiver.quiet_hours
        window = f"quiet {quiet.start:%H:%M}-{quiet.end:%H:%M}" if quiet else "no quiet hours"
        when = send_after(quiet, urgent, now)
        sent = "now" if when == now else for_people(when)
        print(f"  {receiver_id:<24} {receiver.via.channel.value:<9} {window:<22} sent {sent}")
    return 0


def print_notifications(notifications: NotificationPolicy | None) -> None:
    """``wo rules check``'s lines about notifications.yaml: unset secrets are warned of, not
    refused (the check runs where the secrets are not)."""
    from workorder_pipeline.services.notification_files import unset_secrets

    if notifications is None:
        print("notifications: none (no notifications.yaml): nobody is notified")
        return
    print(f"notifications: {len(notifications.receivers)} receivers")
    for unset in unset_secrets(notifications, os.environ):
        print(f"  warning: secret not set here, deliveries through it fail: {unset}")
