"""Tokens name a unit that exists, expire, and can be revoked: refused like unknown ones."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token, load_tokens, new_token
from workorder_pipeline.services.policy_files import PolicyError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
UNITS = {"squad-1", "squad-2", "command-center"}


def entry(token: str, **changes: object) -> TokenEntry:
    fields: dict[str, object] = {
        "name": "desk",
        "role": Role.unit,
        "unit": "squad-1",
        "sha256": hash_token(token),
        "expires_at": NOW + timedelta(days=1),
    }
    return TokenEntry.model_validate({**fields, **changes})


def test_a_valid_token_names_its_holder() -> None:
    token = new_token()
    found = Tokens([entry(token)]).principal(token, NOW)
    assert found is not None and (found.name, found.unit) == ("desk", "squad-1")


@pytest.mark.parametrize(
    "changes",
    [{"expires_at": NOW}, {"expires_at": NOW - timedelta(seconds=1)}, {"revoked": True}],
    ids=["expiring-now", "expired", "revoked"],
)
def test_an_expired_or_revoked_token_is_refused_like_an_unknown_one(changes: dict[str, object]) -> None:
    token = new_token()
    assert Tokens([entry(token, **changes)]).principal(token, NOW) is None
    assert Tokens([entry(token)]).principal(new_token(), NOW) is None


def test_a_tokens_file_naming_a_unit_that_does_not_exist_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f'  - {{"name": "a", "role": "unit", "unit": "squad-1", "sha256": "{"a" * 64}",'
        ' "expires_at": "2027-01-01T00:00:00+08:00"}\n'
        "  - name: b\n    role: unit\n    unit: squad-99\n"
        f"    sha256: {'b' * 64}\n    expires_at: 2027-01-01T00:00:00+08:00\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"tokens\.yaml:5: tokens\.1\.unit: no unit 'squad-99'"):
        load_tokens(path, UNITS)


def test_a_token_without_expiry_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - name: a\n    role: supervisor\n    sha256: {'a' * 64}\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"tokens\.0\.expires_at"):
        load_tokens(path, UNITS)


def test_wo_api_token_refuses_a_unit_that_does_not_exist() -> None:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "wo"), "api", "token", "desk", "--unit", "squad-99"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "no unit 'squad-99'" in done.stderr


def test_wo_api_token_writes_an_entry_that_loads_and_expires(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "wo"), "api", "token", "desk", "--unit", "squad-1", "--days", "7"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    token = done.stderr.split("#   ", 1)[1].split()[0]
    (tmp_path / "tokens.yaml").write_text("tokens:\n" + done.stdout, encoding="utf-8")
    tokens = load_tokens(tmp_path / "tokens.yaml", UNITS)
    assert tokens.principal(token, datetime.now(UTC)) is not None
    assert tokens.principal(token, datetime.now(UTC) + timedelta(days=7, minutes=1)) is None
