"""Officers' accounts and console sign-in: Argon2id hashes, throttling, idle sessions.

The service owns each unit of work (``with store.officer_work(now)``). Sign-in failures are
counted per account and per client address in this process: past either limit, sign-in is
refused for a while whatever the password, so guessing costs the guesser time, not the
officer their account. An unknown account costs the same hashing as a known one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workorder_pipeline.schemas.officers import CERTIFICATE_NO, ConsoleSession, Officer, OfficerRole
from workorder_pipeline.services.ports import OfficerStore

#: Shorter passwords are refused when an account is made or its password set.
MIN_PASSWORD_LENGTH = 10
#: A session not used for this long is closed (the officer signs in again).
IDLE_TIMEOUT = timedelta(minutes=30)
#: Failed sign-ins within the window, per account and per address, before sign-in is refused.
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = timedelta(minutes=15)

log = structlog.get_logger(__name__)


class SignInRefusal(StrEnum):
    #: Unknown account, wrong password or disabled account: one answer for all three.
    bad_credentials = "bad_credentials"
    throttled = "throttled"


class PasswordTooShort(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SignedIn:
    #: The cookie's value: only its SHA-256 is stored.
    token: str
    officer: Officer
    session: ConsoleSession


class Failures:
    """Failed attempts per key within a sliding window (one process's memory)."""

    def __init__(self, limit: int, window: timedelta = FAILURE_WINDOW) -> None:
        self._limit = limit
        self._window = window
        self._seen: dict[str, deque[datetime]] = {}

    def record(self, key: str, now: datetime) -> None:
        self._recent(key, now).append(now)

    def blocked(self, key: str, now: datetime) -> bool:
        return len(self._recent(key, now)) >= self._limit

    def clear(self, key: str) -> None:
        self._seen.pop(key, None)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        recent = self._seen.setdefault(key, deque())
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        if not recent and len(self._seen) > 10_000:  # forget idle keys
            self._seen = {key: recent}
        return recent


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Officers:
    def __init__(
        self,
        store: OfficerStore,
        hasher: PasswordHasher | None = None,
        idle_timeout: timedelta = IDLE_TIMEOUT,
    ) -> None:
        self._store = store
        #: argon2-cffi's default type is Argon2id.
        self._hasher = hasher or PasswordHasher()
        self._idle = idle_timeout
        self._by_account = Failures(MAX_FAILURES_PER_ACCOUNT)
        self._by_address = Failures(MAX_FAILURES_PER_ADDRESS)
        #: Verified against when the account is unknown, so it takes as long as a known one.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def add(
        self, certificate_no: str, name: str, unit: str, role: OfficerRole, password: str, now: datetime
    ) -> Officer:
        """A new account (OfficerExists when the certificate number has one)."""
        officer = Officer(certificate_no=certificate_no, name=name, unit=unit, role=role, created_at=now)
        password_hash = self._hash(password)
        with self._store.officer_work(now) as work:
            work.add_officer(officer, password_hash)
        log.info("officer_added", role=role.value)
        return officer

    def set_disabled(self, certificate_no: str, disabled: bool, now: datetime) -> Officer | None:
        """Disable (closing every session of it) or enable an account; None when there is none."""
        with self._store.officer_work(now) as work:
            found = work.officer(certificate_no)
            if found is None:
                return None
            work.update_officer(certificate_no, disabled=disabled, password_hash=None)
            if disabled:
                work.close_sessions(certificate_no=certificate_no)
            return found[0].model_copy(update={"disabled": disabled})

    def officers(self, unit: str | None, now: datetime) -> list[Officer]:
        with self._store.officer_work(now) as work:
            return work.officers(unit)

    def roster(self, unit: str, now: datetime) -> list[Officer]:
        """The unit's officers who may be named in a field action (accounts not disabled)."""
        return [o for o in self.officers(unit, now) if not o.disabled]

    def sign_in(
        self, certificate_no: str, password: str, address: str, now: datetime
    ) -> SignedIn | SignInRefusal:
        """A new session, or why not (the same refusal for every bad credential)."""
        if self._by_account.blocked(certificate_no, now) or self._by_address.blocked(address, now):
            log.warning("console_sign_in_throttled")
            return SignInRefusal.throttled
        with self._store.officer_work(now) as work:
            # A number no account can have (U+0000, which PostgreSQL refuses…) is an unknown one.
            found = work.officer(certificate_no) if CERTIFICATE_NO.fullmatch(certificate_no) else None
            verified = self._verify(found[1] if found else self._decoy, password)
            if found is None or not verified or found[0].disabled:
                self._by_account.record(certificate_no, now)
                self._by_address.record(address, now)
                return SignInRefusal.bad_credentials
            officer, stored_hash = found
            if self._hasher.check_needs_rehash(stored_hash):
                work.update_officer(certificate_no, disabled=None, password_hash=self._hasher.hash(password))
            token = secrets.token_urlsafe(32)
            session = ConsoleSession(
                certificate_no=certificate_no,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
            )
            work.open_session(token_hash(token), session)
        self._by_account.clear(certificate_no)
        return SignedIn(token, officer, session)

    def session(self, token: str, now: datetime) -> tuple[Officer, ConsoleSession] | None:
        """The signed-in officer and session; None for an unknown, idle or disabled one (closed)."""
        key = token_hash(token)
        with self._store.officer_work(now) as work:
            session = work.session(key)
            if session is None:
                return None
            found = work.officer(session.certificate_no)
            if found is None or found[0].disabled or now - session.last_seen_at > self._idle:
                work.close_sessions(token_sha256=key)
                return None
            work.touch_session(key)
            return found[0], session

    def sign_out(self, token: str, now: datetime) -> None:
        with self._store.officer_work(now) as work:
            work.close_sessions(token_sha256=token_hash(token))

    def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise PasswordTooShort(f"密码至少 {MIN_PASSWORD_LENGTH} 个字符")
        return self._hasher.hash(password)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False
