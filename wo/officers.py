"""``wo officers add|disable|enable|list``: officers' accounts of the web console (an
administrator's tool; the password is read without echo, or from stdin with --password-stdin)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.officers import ROLE_NAMES, OfficerExists, OfficerRole
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.officers import Officers, PasswordTooShort


def add_commands(commands: Any) -> None:
    officers = commands.add_parser("officers", help="officers' accounts of the web console")
    sub = officers.add_subparsers(required=True, metavar="OFFICERS_COMMAND")
    add = sub.add_parser("add", help="make an account (the password is asked for, without echo)")
    add.add_argument("certificate_no", help="执法证号: the officer's sign-in name")
    add.add_argument("--name", required=True, help="姓名")
    add.add_argument("--unit", required=True, help="a unit of units.yaml")
    add.add_argument("--role", required=True, choices=[r.value for r in OfficerRole])
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    add.set_defaults(command=_add)
    for name, disabled, text in (("disable", True, "停用"), ("enable", False, "启用")):
        parser = sub.add_parser(name, help=f"{name} an account ({text}); disabling signs it out everywhere")
        parser.add_argument("certificate_no")
        parser.set_defaults(command=_set_disabled, disabled=disabled)
    listing = sub.add_parser("list", help="the accounts (of one unit: its roster)")
    listing.add_argument("--unit", help="only this unit's")
    listing.set_defaults(command=_list)


def _service(settings: Settings) -> Officers:
    from workorder_pipeline.storage.database import create_engine
    from workorder_pipeline.storage.officer_store import OfficerStore

    return Officers(OfficerStore(create_engine(settings.database_url)))


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码: ")
    if getpass.getpass("再次输入密码: ") != first:
        raise PasswordTooShort("两次输入的密码不一致")
    return first


def _add(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.policy_files import load_policy

    if args.unit not in load_policy(settings.policy_dir).units.ids():
        print(f"wo officers add: units.yaml 中没有单位 {args.unit}", file=sys.stderr)
        return 2
    try:
        officer = _service(settings).add(
            args.certificate_no, args.name, args.unit, OfficerRole(args.role), _password(args), utc_now()
        )
    except PasswordTooShort as exc:
        print(f"wo officers add: {exc}", file=sys.stderr)
        return 2
    except OfficerExists:
        print(f"wo officers add: 执法证号 {args.certificate_no} 已有账号", file=sys.stderr)
        return 1
    except ValueError as exc:  # the certificate number or the name is not one an account can have
        print(f"wo officers add: {exc}", file=sys.stderr)
        return 2
    print(f"已创建账号 {officer.certificate_no} {officer.name}（{officer.unit}，{ROLE_NAMES[officer.role]}）")
    return 0


def _set_disabled(settings: Settings, args: argparse.Namespace) -> int:
    officer = _service(settings).set_disabled(args.certificate_no, args.disabled, utc_now())
    if officer is None:
        print(f"wo officers: 没有执法证号为 {args.certificate_no} 的账号", file=sys.stderr)
        return 1
    print(f"账号 {officer.certificate_no} 已{'停用' if officer.disabled else '启用'}")
    return 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    officers = _service(settings).officers(args.unit, utc_now())
    for o in officers:
        state = "已停用" if o.disabled else "在用"
        fields = (
            o.unit,
            o.certificate_no,
            o.name,
            ROLE_NAMES[o.role],
            state,
            f"创建于 {for_people(o.created_at)}",
        )
        print("\t".join(fields))
    print(f"共 {len(officers)} 个账号")
    return 0
