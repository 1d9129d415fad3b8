"""``wo keys make``: a sender's Ed25519 key pair for signing commands (docs/signing.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.sender_keys import new_signing_key, write_signing_key


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="signing keys of command senders")
    sub = keys.add_subparsers(required=True, metavar="KEYS_COMMAND")
    make = sub.add_parser("make", help="make a key pair: the private key to a file, the policy entry printed")
    make.add_argument("sender", help="who signs with it: 'api', 'squad-1 system', ...")
    make.add_argument("--acts-as", required=True, help="comma-separated units it may act as, or *")
    make.add_argument("--key-id", help="default: <sender>-<yyyymmdd>")
    make.add_argument("--out", type=Path, required=True, help="the private key file to write (mode 600)")
    make.set_defaults(command=_make)


def _make(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.policy_files import load_policy

    acts_as = tuple(unit.strip() for unit in args.acts_as.split(",") if unit.strip())
    units = load_policy(settings.policy_dir).units.ids()
    unknown = [unit for unit in acts_as if unit != "*" and unit not in units]
    if not acts_as or unknown:
        print(f"wo keys make: no unit {', '.join(unknown) or '(none given)'} in units.yaml", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"wo keys make: {args.out} exists; a key file is never overwritten", file=sys.stderr)
        return 2
    slug = "".join(c if c.isalnum() else "-" for c in args.sender.lower()).strip("-") or "sender"
    key_id = args.key_id or f"{slug}-{utc_now():%Y%m%d}"
    key = new_signing_key(key_id)
    write_signing_key(key, args.out)
    entry = key.public(args.sender, acts_as).model_dump(exclude_defaults=True)
    entry["acts_as"] = list(entry["acts_as"])
    print(f"# private key written to {args.out} (give it to the sender only); add to policy/senders.yaml:")
    print(yaml.safe_dump({"senders": [entry]}, allow_unicode=True, sort_keys=False).split("\n", 1)[1], end="")
    return 0
