#!/usr/bin/env python
"""CPU of each piece of the intake's path per vehicle alarm, no database, no broker: the
least thread CPU time of many short samples, which a shared, noisy machine disturbs far
less than one long run (a sample another job slowed down is never the least).

    .venv/bin/python bench/intake_pieces.py                          # this checkout
    .venv/bin/python bench/intake_pieces.py --tree ../other-checkout  # another one's code

Compare two checkouts by alternating runs (A, B, A, B, ...): pieces one change does not
touch stay within ~10% of each other between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PIECES = (
    "decode",
    "to_signal",
    "state_keys",
    "triage",
    "route",
    "open_order",
    "register",
    "payload",
    "audit",
    "dispatch_json",
)


def pieces(tree: Path, alarms: int) -> dict[str, Callable[[], object]]:
    """Each piece as a call over ``alarms`` alarms, with ``tree``'s code."""
    sys.path[:0] = [str(tree), str(tree / "bench")]
    from benchkit.common import AlarmStream

    from workorder_pipeline.processors.compiled_policy import compile_policy
    from workorder_pipeline.processors.intake import decode_event
    from workorder_pipeline.processors.merging import BatchMerges
    from workorder_pipeline.processors.routing import route_signal
    from workorder_pipeline.processors.signals import to_signal
    from workorder_pipeline.processors.triage import BatchTriageState, ReferenceIndex, state_keys, triage
    from workorder_pipeline.processors.workorders import open_work_order

    try:  # the audit detail's own module since 2026-12-06; a checkout before that: intake's
        from workorder_pipeline.services.intake_audit import audit_detail
    except ImportError:
        from workorder_pipeline.services.intake import _audit as audit_detail  # type: ignore[attr-defined,no-redef]
    from workorder_pipeline.services.calendar_files import load_calendar
    from workorder_pipeline.services.policy_files import load_policy, load_reference

    policy_dir = tree / "policy"
    policy = compile_policy(load_policy(policy_dir))
    reference, calendar = ReferenceIndex(load_reference(policy_dir)), load_calendar(policy_dir)
    raws = [m.value for m in AlarmStream("PR").take(alarms)]
    events: list[Any] = [decode_event(raw, "vehicle-alarm/1") for raw in raws]
    signals = [to_signal(event) for event in events]
    now = datetime.now(UTC)
    outcomes = [triage(signal, policy, reference, BatchTriageState(), now) for signal in signals]
    orders = [open_work_order(o, policy.source.deadlines, calendar, now) for o in outcomes]

    def register() -> object:
        merges = BatchMerges()
        for order in orders:
            merges.register(order, order.source_ids[0])
        return merges.registered()

    return {
        "decode": lambda: [decode_event(raw, "vehicle-alarm/1") for raw in raws],
        "to_signal": lambda: [to_signal(event) for event in events],
        "state_keys": lambda: [state_keys(signal, policy) for signal in signals],
        "triage": lambda: [triage(s, policy, reference, BatchTriageState(), now) for s in signals],
        "route": lambda: [route_signal(signal, policy.routes) for signal in signals],
        "open_order": lambda: [open_work_order(o, policy.source.deadlines, calendar, now) for o in outcomes],
        "register": register,
        "payload": lambda: [event.model_dump(mode="json", by_alias=True) for event in events],
        "audit": lambda: [audit_detail(outcome, "t/0/1", due_at=now) for outcome in outcomes],
        "dispatch_json": lambda: [o.dispatch_message().model_dump_json(by_alias=True) for o in orders],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--alarms", type=int, default=200)
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--only", default=",".join(PIECES), help="comma-separated pieces")
    args = parser.parse_args()
    calls = pieces(args.tree.resolve(), args.alarms)
    figures = []
    for name in args.only.split(","):
        call, least = calls[name], float("inf")
        for _ in range(args.samples):
            started = time.thread_time_ns()
            call()
            least = min(least, time.thread_time_ns() - started)
        figures.append(f"{name} {least / args.alarms / 1000:.1f}")
    print(f"{args.tree.resolve().name} (µs per alarm, least of {args.samples}): " + " | ".join(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
