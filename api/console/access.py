"""What the administrator's page shows of the API's tokens and the command-signing keys.

Both live in files read when ``wo run`` starts (WO_API_TOKENS_FILE, policy/senders.yaml), on
each worker's machine. The console does not write them: a change made here would not reach
the running API nor the other workers, and a revocation that seems done while the token
still works is worse than none. The page lists what this worker uses, makes a token to hand
over once (with the line to add to the file), and says how to change the files."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workorder_pipeline.api.auth import Role, TokenEntry
from workorder_pipeline.schemas.senders import ANY_UNIT, SenderKey, SenderKeys
from workorder_pipeline.schemas.times import for_people

#: The API's roles in words.
ROLE_TEXT = {
    Role.unit: "中队",
    Role.command_center: "指挥中心",
    Role.supervisor: "督查",
    Role.administrator: "系统管理员",
}


@dataclass(frozen=True, slots=True)
class ApiAccess:
    """Where this worker's tokens and trusted keys come from, and the keys it trusts."""

    tokens_file: Path | None = None
    policy_dir: Path | None = None
    #: The keys the worker's command handler trusts (senders.yaml and the API's own key).
    senders: SenderKeys = field(default_factory=SenderKeys)


def token_rows(entries: tuple[TokenEntry, ...], units: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """Each token as a row: who, role, unit, until when, whether it works. Never the secret
    (it was never kept) nor its hash."""
    rows = []
    for entry in sorted(entries, key=lambda e: (e.revoked, e.name)):
        state = "已吊销" if entry.revoked else "已过期" if entry.expires_at <= now else "有效"
        rows.append(
            {
                "name": entry.name,
                "role": ROLE_TEXT[entry.role],
                "unit": units.get(entry.unit, entry.unit) if entry.unit else "—",
                "expires": for_people(entry.expires_at),
                "state": state,
            }
        )
    return rows


def key_rows(keys: SenderKeys, units: dict[str, str]) -> list[dict[str, Any]]:
    def acts_as(key: SenderKey) -> str:
        return "、".join("全部单位" if u == ANY_UNIT else units.get(u, u) for u in key.acts_as)

    return [
        {
            "key_id": key.key_id,
            "sender": key.sender,
            "acts_as": acts_as(key),
            "state": "已停用" if key.retired else "在用",
        }
        for key in sorted(keys.senders, key=lambda k: (k.retired, k.sender, k.key_id))
    ]
