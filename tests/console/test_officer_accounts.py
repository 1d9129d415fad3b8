"""Officers' accounts and sign-in on real databases: hashes, refusals, throttling, idle
sessions, and the administrator's CLI (``wo officers``)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from workorder_pipeline.schemas.officers import OfficerExists, OfficerRole
from workorder_pipeline.services.officers import (
    IDLE_TIMEOUT,
    MAX_FAILURES_PER_ACCOUNT,
    MAX_FAILURES_PER_ADDRESS,
    Officers,
    PasswordTooShort,
    SignedIn,
    SignInRefusal,
)
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.officer_store import OfficerStore
from workorder_pipeline.wo.cli import main

NOW = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
PASSWORD = "长城-correct-horse-7"
#: Argon2id at a test's cost: the same algorithm, less memory and time.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def officers(database_url: str) -> Officers:
    migrate(database_url)
    service = Officers(OfficerStore(create_engine(database_url)), FAST_HASHER)
    service.add("JS0682-0117", "王强", "squad-1", OfficerRole.officer, PASSWORD, NOW)
    return service


def test_the_password_is_kept_as_an_argon2id_hash_only(officers: Officers, database_url: str) -> None:
    with create_engine(database_url).connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM officer")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_right_password_opens_a_session_and_its_token_is_not_stored(
    officers: Officers, database_url: str
) -> None:
    signed = officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", NOW)
    assert isinstance(signed, SignedIn) and signed.officer.name == "王强"
    with create_engine(database_url).connect() as conn:
        stored = conn.execute(sa.text("SELECT token_sha256, csrf_token FROM console_session")).one()
    assert signed.token not in stored[0]
    found = officers.session(signed.token, NOW + timedelta(minutes=1))
    assert found is not None and found[0].certificate_no == "JS0682-0117"


@pytest.mark.parametrize(
    "certificate_no, password", [("JS0682-0117", "wrong-password!"), ("JS9999", PASSWORD)]
)
def test_a_wrong_password_and_an_unknown_account_get_the_same_refusal(
    officers: Officers, certificate_no: str, password: str
) -> None:
    assert officers.sign_in(certificate_no, password, "10.0.0.1", NOW) is SignInRefusal.bad_credentials


def test_a_disabled_account_cannot_sign_in_and_its_open_sessions_end(officers: Officers) -> None:
    signed = officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", NOW)
    assert isinstance(signed, SignedIn)
    officers.set_disabled("JS0682-0117", True, NOW)
    assert officers.session(signed.token, NOW) is None
    assert officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", NOW) is SignInRefusal.bad_credentials
    assert officers.roster("squad-1", NOW) == []


def test_too_many_wrong_passwords_lock_the_account_even_against_the_right_one(officers: Officers) -> None:
    for attempt in range(MAX_FAILURES_PER_ACCOUNT):
        assert (
            officers.sign_in("JS0682-0117", "guess", f"10.0.1.{attempt}", NOW)
            is SignInRefusal.bad_credentials
        )
    assert officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", NOW) is SignInRefusal.throttled
    later = NOW + timedelta(minutes=16)
    assert isinstance(officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", later), SignedIn)


def test_one_address_guessing_many_accounts_is_throttled(officers: Officers) -> None:
    for attempt in range(MAX_FAILURES_PER_ADDRESS):
        officers.sign_in(f"JS-{attempt}", "guess", "10.9.9.9", NOW)
    assert officers.sign_in("JS0682-0117", PASSWORD, "10.9.9.9", NOW) is SignInRefusal.throttled
    assert isinstance(officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.2", NOW), SignedIn)


def test_an_idle_session_is_closed_and_stays_closed(officers: Officers) -> None:
    signed = officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", NOW)
    assert isinstance(signed, SignedIn)
    assert officers.session(signed.token, NOW + IDLE_TIMEOUT - timedelta(seconds=1)) is not None
    # Used just now: idle counts from the last use, not from sign-in.
    assert officers.session(signed.token, NOW + 2 * IDLE_TIMEOUT - timedelta(seconds=2)) is not None
    assert officers.session(signed.token, NOW + 3 * IDLE_TIMEOUT) is None
    assert officers.session(signed.token, NOW + 3 * IDLE_TIMEOUT + timedelta(seconds=1)) is None


def test_signing_out_ends_the_session(officers: Officers) -> None:
    signed = officers.sign_in("JS0682-0117", PASSWORD, "10.0.0.1", NOW)
    assert isinstance(signed, SignedIn)
    officers.sign_out(signed.token, NOW)
    assert officers.session(signed.token, NOW) is None


def test_an_account_is_made_once_with_a_long_enough_password(officers: Officers) -> None:
    with pytest.raises(OfficerExists):
        officers.add("JS0682-0117", "李四", "squad-2", OfficerRole.officer, PASSWORD, NOW)
    with pytest.raises(PasswordTooShort):
        officers.add("JS0682-0200", "李四", "squad-2", OfficerRole.officer, "short", NOW)
    with pytest.raises(ValueError):
        officers.add("<script>", "李四", "squad-2", OfficerRole.officer, PASSWORD, NOW)


def test_the_roster_lists_a_units_officers_only(officers: Officers) -> None:
    officers.add("JS0682-0342", "赵敏", "squad-1", OfficerRole.squad_leader, PASSWORD, NOW)
    officers.add("JS0682-0500", "钱多", "squad-2", OfficerRole.officer, PASSWORD, NOW)
    assert [o.certificate_no for o in officers.roster("squad-1", NOW)] == ["JS0682-0117", "JS0682-0342"]


def test_the_cli_adds_lists_and_disables_accounts(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WO_DATABASE_URL", sqlite_url)
    migrate(sqlite_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    add = ["officers", "add", "JS0682-0117", "--name", "王强", "--unit", "squad-1", "--role", "squad_leader"]
    assert main([*add, "--password-stdin"]) == 0
    assert "已创建账号 JS0682-0117 王强（squad-1，中队长）" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main([*add, "--password-stdin"]) == 1
    assert "已有账号" in capsys.readouterr().err
    assert main(["officers", "disable", "JS0682-0117"]) == 0
    assert main(["officers", "list", "--unit", "squad-1"]) == 0
    listing = capsys.readouterr().out
    assert "JS0682-0117\t王强\t中队长\t已停用\t创建于" in listing and "+08:00" in listing
    assert main(["officers", "disable", "JS-none"]) == 1


def test_the_cli_refuses_an_unknown_unit_and_a_short_password(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WO_DATABASE_URL", sqlite_url)
    migrate(sqlite_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    base = ["officers", "add", "JS1", "--name", "王强", "--role", "officer", "--password-stdin"]
    assert main([*base, "--unit", "squad-99"]) == 2
    assert main([*base, "--unit", "squad-1"]) == 2
    assert "密码至少 10 个字符" in capsys.readouterr().err
