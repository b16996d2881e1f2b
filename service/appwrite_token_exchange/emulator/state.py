"""The emulator's users and sessions, in memory, plus the counters that span requests.

Tests and the demo drive it directly (`app[EMULATOR_STATE]`) or through the control API. A session
is valid while its secret matches and it has not expired, exactly Appwrite's `sessionVerify`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.credentials import (
    decode_session_value,
    encode_session_value,
    hash_password,
    hash_secret,
    new_secret,
    secret_matches,
    unique_id,
)
from appwrite_token_exchange.emulator.limits import FixedWindowLimiter

DEFAULT_SESSION_TTL = 365 * 86400  # Appwrite's default session length: one year


@dataclass
class EmulatorUser:
    id: str
    email: str
    name: str
    password_salt: str
    password_hash: str
    mfa: bool
    created_at: float
    updated_at: float
    status: bool = True
    # Appwrite counts MFA as required only when the user has a verified second factor.
    email_verification: bool = False
    labels: list[str] = field(default_factory=list)
    prefs: dict[str, object] = field(default_factory=dict)
    # Appwrite gives every user with an email address an email messaging target.
    target_id: str = ""

    def password_matches(self, password: str) -> bool:
        return secrets.compare_digest(hash_password(password, self.password_salt), self.password_hash)

    @property
    def minimum_factors(self) -> int:
        return 2 if self.mfa and self.email_verification else 1


@dataclass
class EmulatorSession:
    id: str
    user_id: str
    secret_hash: str
    created_at: float
    expire: float
    factors: list[str]
    provider: str = "email"
    provider_uid: str = ""
    ip: str = ""

    def expired(self, now: float) -> bool:
        return self.expire < now


class EmulatorState:
    """Users, sessions and rate-limit windows of one emulated Appwrite project."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.users: dict[str, EmulatorUser] = {}
        self.sessions: dict[str, EmulatorSession] = {}
        self.limiter = FixedWindowLimiter(lambda: self.clock())
        self.jwts_issued = 0

    def now(self) -> float:
        return self.clock()

    # --- users -------------------------------------------------------------------------------

    def create_user(
        self,
        email: str,
        password: str,
        name: str = "",
        user_id: str | None = None,
        mfa: bool = False,
    ) -> EmulatorUser:
        """A new user; ValueError if the ID or email is taken (Appwrite: user_already_exists)."""
        email = email.strip().lower()
        if not email or "@" not in email:
            raise ValueError("email must be an email address")
        if user_id is not None and user_id in self.users:
            raise ValueError(f"user {user_id!r} already exists")
        if self.user_by_email(email) is not None:
            raise ValueError(f"a user with email {email!r} already exists")
        now = self.now()
        salt = secrets.token_hex(8)
        user = EmulatorUser(
            id=user_id or unique_id(now),
            email=email,
            name=name,
            password_salt=salt,
            password_hash=hash_password(password, salt),
            mfa=mfa,
            created_at=now,
            updated_at=now,
            email_verification=mfa,
            target_id=unique_id(now),
        )
        self.users[user.id] = user
        return user

    def user(self, user_id: str) -> EmulatorUser:
        """The user; KeyError if there is none."""
        return self.users[user_id]

    def user_by_email(self, email: str) -> EmulatorUser | None:
        email = email.strip().lower()
        return next((user for user in self.users.values() if user.email == email), None)

    def block_user(self, user_id: str, blocked: bool = True) -> None:
        """Like Users.updateStatus(false): sessions stay, but every account call answers 403."""
        user = self.user(user_id)
        user.status = not blocked
        user.updated_at = self.now()

    # --- sessions ------------------------------------------------------------------------------

    def create_session(
        self,
        user_id: str,
        ttl_seconds: int = DEFAULT_SESSION_TTL,
        *,
        factors: Iterable[str] = ("password",),
        ip: str = "",
    ) -> tuple[str, str]:
        """(session id, cookie value) of a new session; KeyError for an unknown user."""
        user = self.user(user_id)
        now = self.now()
        secret = new_secret()
        session = EmulatorSession(
            id=unique_id(now),
            user_id=user.id,
            secret_hash=hash_secret(secret),
            created_at=now,
            expire=now + ttl_seconds,
            factors=list(factors),
            provider_uid=user.email,
            ip=ip,
        )
        self.sessions[session.id] = session
        return session.id, encode_session_value(user.id, secret)

    def delete_session(self, session_id: str) -> bool:
        """Log a session out; True if it existed."""
        return self.sessions.pop(session_id, None) is not None

    def sessions_of(self, user_id: str) -> list[EmulatorSession]:
        return [session for session in self.sessions.values() if session.user_id == user_id]

    def verify_session_value(self, value: str) -> tuple[EmulatorUser, EmulatorSession] | None:
        """The user and session a cookie value belongs to, if its secret matches and is unexpired."""
        user_id, secret = decode_session_value(value)
        if not user_id or not secret or user_id not in self.users:
            return None
        now = self.now()
        for session in self.sessions_of(user_id):
            if secret_matches(secret, session.secret_hash) and not session.expired(now):
                return self.users[user_id], session
        return None

    def session_alive(self, user_id: str, session_id: str, *, unexpired: bool) -> bool:
        """Whether a JWT's session still counts: it exists (and, on newer servers, is unexpired)."""
        session = self.sessions.get(session_id)
        if session is None or session.user_id != user_id:
            return False
        return not (unexpired and session.expired(self.now()))

    # --- housekeeping ----------------------------------------------------------------------------

    def reset_counters(self) -> None:
        self.limiter.clear()
        self.jwts_issued = 0

    def clear_accounts(self) -> None:
        self.users.clear()
        self.sessions.clear()
