"""``wo``: run the pipeline, publish events, check policy, migrate the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from config.settings import Settings, SettingsError, load_settings
from services.policy_files import PolicyError, load_policy
from wo.logs import configure_logging

log = structlog.get_logger(__name__)

EXIT_USAGE = 2
EXIT_CONFIG = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"wo: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    command: int = args.command(settings, args)
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
    run.set_defaults(command=_run)

    publish = commands.add_parser("publish", help="publish JSON-lines files of events to the inbound topics")
    publish.add_argument("files", nargs="+", type=Path, metavar="FILE")
    publish.add_argument(
        "--topic",
        help="topic for every file (default: from the file name or its first message's schema)",
    )
    publish.set_defaults(command=_publish)

    rules = commands.add_parser("rules", help="policy tools")
    rules_commands = rules.add_subparsers(required=True, metavar="RULES_COMMAND")
    check = rules_commands.add_parser("check", help="validate the policy files, reporting every error")
    check.add_argument("directory", nargs="?", type=Path, help="policy directory (default: WO_POLICY_DIR)")
    check.set_defaults(command=_rules_check)

    contracts = commands.add_parser("contracts", help="message contracts")
    contracts_commands = contracts.add_subparsers(required=True, metavar="CONTRACTS_COMMAND")
    export = contracts_commands.add_parser("export", help="write the JSON Schemas of every message")
    export.add_argument("directory", nargs="?", type=Path, default=Path("docs/contracts"))
    export.set_defaults(command=_contracts_export)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date, then exit")
    migrate.set_defaults(command=_migrate)
    return parser


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from wo.pipeline import run_pipeline

    try:
        return run_pipeline(settings)
    except PolicyError as exc:
        print(f"wo: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    from wo.publish import PublishError, publish_files

    try:
        reports = publish_files(settings, args.files, topic=args.topic)
    except PublishError as exc:
        print(f"wo publish: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        print(f"{report.path}: {report.sent} sent to {report.topic}")
    print(f"{sum(r.sent for r in reports)} messages sent to {settings.bootstrap_servers}")
    return 0


def _rules_check(settings: Settings, args: argparse.Namespace) -> int:
    directory = args.directory or settings.policy_dir
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    routes = len(policy.routing.route.walk())
    print(f"{directory}: ok ({len(policy.units.units)} units, {routes} routes)")
    return 0


def _contracts_export(_settings: Settings, args: argparse.Namespace) -> int:
    from schemas.export import rendered_schemas

    args.directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_schemas().items():
        (args.directory / name).write_text(text, encoding="utf-8")
        print(args.directory / name)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from storage.database import migrate

    migrate(settings.database_url)
    log.info("database_migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
