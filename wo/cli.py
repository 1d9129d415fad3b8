"""``wo``: run the pipeline, publish events, check policy, migrate the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from workorder_pipeline.config.settings import Settings, load_settings
from workorder_pipeline.processors.intake import Rejection
from workorder_pipeline.schemas.errors import WorkOrderError
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.policy_files import PolicyError, load_policy
from workorder_pipeline.wo.arguments import aware_time
from workorder_pipeline.wo.errors import EXIT_USAGE, exit_code
from workorder_pipeline.wo.logs import configure_logging
from workorder_pipeline.wo.notify_rules import add_rules_notify, print_notifications

if TYPE_CHECKING:
    from workorder_pipeline.services.rules import Explanation

    #: What ``add_subparsers`` returns (the parsers of one level of commands).
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        command: int = args.command(settings, args)
    except WorkOrderError as exc:
        code = exit_code(exc)
        if code is None:
            raise
        print(f"wo: {exc}", file=sys.stderr)
        return code
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wo",
        description="Work-order pipeline of the transport law-enforcement command center.",
        epilog="Settings come from WO_* environment variables or the TOML file named by WO_CONFIG_FILE.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run the whole pipeline (embedded broker unless WO_KAFKA_BOOTSTRAP)"
    )
    run.add_argument(
        "--processes",
        type=_positive,
        default=1,
        metavar="N",
        help="N worker processes of one consumer group (one per core); broker and API started once",
    )
    # Set by `wo run --processes N` for each of its children (wo/processes.py).
    run.add_argument("--worker-process", type=int, default=None, help=argparse.SUPPRESS)
    run.set_defaults(command=_run)
    _add_publish(commands)
    _add_rules(commands)
    contracts = commands.add_parser("contracts", help="message contracts")
    contracts_commands = contracts.add_subparsers(required=True, metavar="CONTRACTS_COMMAND")
    export = contracts_commands.add_parser("export", help="write the JSON Schemas of every message")
    export.add_argument("directory", nargs="?", type=Path, default=Path("docs/contracts"))
    export.set_defaults(command=_contracts_export)

    from workorder_pipeline.wo import figures, keys, officers, orders, report

    orders.add_commands(commands)
    keys.add_commands(commands)
    figures.add_commands(commands)
    officers.add_commands(commands)
    report.add_commands(commands)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date, then exit")
    migrate.set_defaults(command=_migrate)
    return parser


def _add_publish(commands: Subcommands) -> None:
    publish = commands.add_parser("publish", help="publish JSON-lines files of events to the inbound topics")
    publish.add_argument("files", nargs="+", type=Path, metavar="FILE")
    publish.add_argument(
        "--topic",
        help="topic for every file (default: from the file name or its first message's schema)",
    )
    publish.add_argument("--key", type=Path, help="sign commands with this key file (wo keys make)")
    publish.set_defaults(command=_publish)


def _add_rules(commands: Subcommands) -> None:
    rules = commands.add_parser("rules", help="policy tools")
    rules_commands = rules.add_subparsers(required=True, metavar="RULES_COMMAND")
    check = rules_commands.add_parser("check", help="validate the policy files, reporting every error")
    check.add_argument("directory", nargs="?", type=Path, help="policy directory (default: WO_POLICY_DIR)")
    check.set_defaults(command=_rules_check)
    _add_rules_explain(rules_commands)
    add_rules_notify(rules_commands)
    replay_ = rules_commands.add_parser(
        "replay", help="run stored signals through a candidate policy and show what would change"
    )
    replay_.add_argument(
        "--from", dest="start", type=aware_time, required=True, help="received from (ISO 8601)"
    )
    replay_.add_argument(
        "--to", dest="end", type=aware_time, required=True, help="received before (ISO 8601)"
    )
    replay_.add_argument("--rules", type=Path, required=True, help="the candidate policy directory")
    replay_.add_argument("--limit", type=int, default=50, help="changed signals to list (default 50)")
    replay_.set_defaults(command=_rules_replay)


def _add_rules_explain(rules_commands: Subcommands) -> None:
    explain = rules_commands.add_parser(
        "explain", help="show what the pipeline would do with an event, step by step, and why"
    )
    explain.add_argument("event", type=Path, metavar="EVENT.json", help="one event (JSON), or - for stdin")
    explain.add_argument(
        "--rules", type=Path, help="policy directory to explain with (default: WO_POLICY_DIR)"
    )
    explain.add_argument(
        "--no-state", action="store_true", help="ignore the database: explain as if no order were open"
    )
    explain.add_argument(
        "--at", type=aware_time, help="received at this time (ISO 8601 with offset; default: now)"
    )
    explain.add_argument(
        "--topic", help="as received on this inbound topic (default: the topic of the contract it names)"
    )
    explain.set_defaults(command=_rules_explain)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"须为正整数: {text}")
    return value


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.wo.pipeline import run_pipeline

    if args.worker_process is not None:
        structlog.contextvars.bind_contextvars(process=args.worker_process)
        return run_pipeline(settings, child=True)
    if args.processes > 1:
        from workorder_pipeline.wo.processes import run_processes

        return run_processes(settings, args.processes)
    return run_pipeline(settings)


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.sender_keys import SigningKeyError, read_signing_key
    from workorder_pipeline.wo.publish import PublishError, publish_files

    try:
        key = read_signing_key(args.key) if args.key else None
        reports = publish_files(settings, args.files, topic=args.topic, signing_key=key)
    except (PublishError, SigningKeyError) as exc:
        print(f"wo publish: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        print(f"{report.path}: {report.sent} sent to {report.topic}")
    print(f"{sum(r.sent for r in reports)} messages sent to {settings.bootstrap_servers}")
    return 0


def _rules_check(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.policy_set import load_policy_set

    directory = args.directory or settings.policy_dir
    try:
        loaded = load_policy_set(directory)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    policy, reference = loaded.policy, loaded.reference
    routes = len(policy.routing.route.walk())
    print(
        f"{directory}: ok ({len(policy.units.units)} units, {routes} routes, "
        f"{len(reference.whitelist)} whitelisted, {len(reference.key_supervision)} under key supervision, "
        f"{len(loaded.platforms.platforms)} platforms expected)"
    )
    print_notifications(loaded.notifications)
    return 0


def _rules_explain(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.intake import intake_limits
    from workorder_pipeline.services.policy_set import load_policy_set
    from workorder_pipeline.services.rules import explain
    from workorder_pipeline.storage.database import create_engine
    from workorder_pipeline.storage.repository import WorkOrderRepository

    try:
        raw = sys.stdin.buffer.read() if str(args.event) == "-" else args.event.read_bytes()
    except OSError as exc:
        print(f"wo rules explain: {args.event}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    directory = args.rules or settings.policy_dir
    try:
        loaded = load_policy_set(directory)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    repository = None if args.no_state else WorkOrderRepository(create_engine(settings.database_url))
    now = args.at or utc_now()
    contracts = settings.topics.inbound()
    if args.topic is not None and args.topic not in contracts:
        print(
            f"wo rules explain: {args.topic!r} is not an inbound topic ({', '.join(contracts)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    contract = contracts[args.topic] if args.topic else None
    limits = intake_limits(settings)
    result = explain(
        raw.strip(), loaded.compiled, loaded.reference, now, loaded.calendar, repository, limits, contract
    )
    print(f"received    {for_people(now)}{' (--at)' if args.at else ''}")
    if isinstance(result, Rejection):
        print(f"rejected ({result.reason.value}): {result.detail}")
        print("the message would go to the dead-letter topic")
        return 1
    _print_explanation(result)
    return 0


def _print_explanation(result: Explanation) -> None:
    signal, outcome = result.signal, result.outcome
    print(f"signal      {signal.kind.value} {signal.source_id}, occurred {for_people(signal.occurred_at)}")
    print(f"subject     plate={signal.plate} enterprise={signal.enterprise_id} region={signal.region_code}")
    fields = ", ".join(f"{k}={v}" for k, v in signal.attributes.items() if v is not None)
    print(f"fields      {fields}")
    print(f"dedupe key  {outcome.dedupe_key or '(none)'}")
    print(f"state       {'open orders in the database' if result.with_state else 'none (--no-state)'}")
    print("steps:")
    for step in outcome.steps:
        print(f"  {step.name:<16} {step.outcome:<14} {step.reason}")
    if result.already_recorded_as:
        print(f"already     recorded as {result.already_recorded_as}: a re-delivery would change nothing")
        print("            (the steps below are what a new signal like it would get)")
    print(f"decision    {outcome.action.value}", end="")
    if outcome.suppression:
        print(f": suppressed by {outcome.suppression.rule_key} ({outcome.suppression.reason.value})")
    elif outcome.merge_into:
        print(f": merged into {outcome.merge_into.id} ({outcome.merge_into.unit})")
    elif result.order is not None:
        order = result.order
        print(f": {order.unit}, {order.priority.value}, route {' > '.join(outcome.route.path)}")
        provisional = " (provisional: that year's holiday schedule is not published yet)"
        print(
            f"deadline    {result.time_limit} for {signal.kind.value} at {order.priority.value}: "
            f"due {for_people(order.due_at)}{provisional if order.deadline_provisional else ''}"
        )


def _rules_replay(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.intake import intake_limits
    from workorder_pipeline.services.policy_files import load_reference
    from workorder_pipeline.services.rules import replay_stored
    from workorder_pipeline.storage.database import create_engine
    from workorder_pipeline.storage.repository import WorkOrderRepository

    try:
        current, candidate = load_policy(settings.policy_dir), load_policy(args.rules)
        reference = load_reference(settings.policy_dir)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    repository = WorkOrderRepository(create_engine(settings.database_url))
    limits = intake_limits(settings)
    now = utc_now()
    report = replay_stored(repository, args.start, args.end, current, candidate, reference, now, limits)
    print(f"{report.signals} stored signals received from {for_people(args.start)} to {for_people(args.end)}")
    print(f"{'':<12}{'current':>10}{'candidate':>11}")
    for action, label in (("create", "created"), ("merge", "merged"), ("suppress", "suppressed")):
        current_count = sum(n for a, n in report.current.items() if a.value == action)
        candidate_count = sum(n for a, n in report.candidate.items() if a.value == action)
        print(f"{label:<12}{current_count:>10}{candidate_count:>11}")
    print(
        f"changed: {len(report.changes)} signals; unit {report.changed('unit')}, "
        f"route {report.changed('route_key')}, priority {report.changed('priority')}, "
        f"action {report.changed('action')}"
    )
    for change in report.changes[: args.limit]:
        print(f"  {change.kind} {change.source_id}: {change.current} -> {change.candidate}")
    if len(report.changes) > args.limit:
        print(f"  ... {len(report.changes) - args.limit} more (--limit)")
    return 0


def _contracts_export(_settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.schemas.export import rendered_schemas

    args.directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_schemas().items():
        (args.directory / name).write_text(text, encoding="utf-8")
        print(args.directory / name)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from workorder_pipeline.storage.database import migrate

    migrate(settings.database_url)
    log.info("database_migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
