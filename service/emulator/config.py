"""The emulator's settings: one frozen object, validated once, optionally read from the environment.

A mode picks which Appwrite server generation the emulator plays. The differences that matter to
the token service are the JWT `duration` parameter, the per-user JWT rate limit, whether Realtime
reads `?jwt=` from the handshake URL, and the shape of some Realtime frames.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Mode = Literal["cloud", "1.9", "1.8"]
MODES: tuple[Mode, ...] = get_args(Mode)

# What `GET /v1/health/version` and every error body report. "cloud" plays a server newer than
# the last self-hosted release (1.9.6) that already has the `?jwt=` Realtime parameter; no such
# release exists yet, so the version is one that sorts after every real 1.9.x.
VERSIONS: Mapping[Mode, str] = {"cloud": "1.10.0", "1.9": "1.9.6", "1.8": "1.8.1"}

# Appwrite's own limit on `POST /v1/account/jwts`, per user, fixed window: (count, seconds).
JWT_RATE_LIMITS: Mapping[Mode, tuple[int, int]] = {
    "cloud": (120, 60),
    "1.9": (120, 60),
    "1.8": (100, 3600),
}

# Appwrite's Realtime abuse limits, both per 60 s fixed window.
REALTIME_CONNECT_LIMIT = 128
REALTIME_MESSAGE_LIMIT = 32

# Public, well-known development values: the emulator is a test double and never guards anything.
DEFAULT_JWT_SECRET = "emulator-openssl-key-v1-for-local-use-only"  # noqa: S105
DEFAULT_API_KEY = "emulator-api-key-for-local-use-only"

# Appwrite's custom ID rule (projects, users, subscriptions): 1-36 chars, no leading special char.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs; defaults give a working local Appwrite stand-in."""

    project_id: str = "demo"
    jwt_secret: str = DEFAULT_JWT_SECRET
    api_key: str = DEFAULT_API_KEY
    mode: Mode = "cloud"
    # None: the mode's own limit. 0: no limit at all (Appwrite treats a limit of 0 as unlimited).
    jwt_rate_limit: int | None = None
    # None or 0 switches the Realtime abuse checks off; tests lower them to reach them quickly.
    realtime_connect_limit: int | None = REALTIME_CONNECT_LIMIT
    realtime_message_limit: int | None = REALTIME_MESSAGE_LIMIT

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.project_id):
            raise ValueError(f"project_id {self.project_id!r} is not a valid Appwrite project ID")
        if not self.jwt_secret:
            raise ValueError("jwt_secret must not be empty")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name in ("jwt_rate_limit", "realtime_connect_limit", "realtime_message_limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a whole number of 0 or more")

    @property
    def version(self) -> str:
        return VERSIONS[self.mode]

    @property
    def jwt_limit(self) -> tuple[int, int]:
        """(count, window seconds) for the JWT route; a count of 0 means unlimited."""
        count, seconds = JWT_RATE_LIMITS[self.mode]
        return (count if self.jwt_rate_limit is None else self.jwt_rate_limit), seconds

    @property
    def honours_duration(self) -> bool:
        """Servers up to 1.8.x have no `duration` parameter and always issue 900 s tokens."""
        return self.mode != "1.8"

    @property
    def realtime_reads_jwt_query(self) -> bool:
        """Only servers with Appwrite PR #12664 (Cloud, main since 2026-06) read `?jwt=`."""
        return self.mode == "cloud"

    @property
    def refuses_jwt_minting_with_jwt(self) -> bool:
        """Newer servers answer 403 user_jwt_creation_denied; 1.9.6 and older fall through to 404."""
        return self.mode == "cloud"

    @property
    def jwt_needs_unexpired_session(self) -> bool:
        """Newer servers also drop a JWT whose session expired; 1.9.6 only checks it exists."""
        return self.mode == "cloud"

    @property
    def message_subscriptions(self) -> bool:
        """1.9 added `subscribe`/`unsubscribe` frames and subscription IDs; 1.8 has neither."""
        return self.mode != "1.8"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmulatorConfig:
        """Read EMULATOR_* variables; a bad value raises ValueError naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for variable, field in (
            ("EMULATOR_PROJECT_ID", "project_id"),
            ("EMULATOR_JWT_SECRET", "jwt_secret"),
            ("EMULATOR_API_KEY", "api_key"),
        ):
            if variable in env:
                if not env[variable]:
                    raise ValueError(f"{variable} is set but empty")
                values[field] = env[variable]
        if "EMULATOR_MODE" in env:
            mode = env["EMULATOR_MODE"]
            if mode not in MODES:
                raise ValueError(f"EMULATOR_MODE must be one of {', '.join(MODES)}, not {mode!r}")
            values["mode"] = mode
        for variable, field in (
            ("EMULATOR_JWT_RATE_LIMIT", "jwt_rate_limit"),
            ("EMULATOR_REALTIME_CONNECT_LIMIT", "realtime_connect_limit"),
            ("EMULATOR_REALTIME_MESSAGE_LIMIT", "realtime_message_limit"),
        ):
            if variable in env:
                values[field] = _count(variable, env[variable])
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as error:
            # Only the project ID can still be wrong here; name the variable, not the field.
            raise ValueError(f"EMULATOR_PROJECT_ID: {error}") from None


def _count(variable: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{variable} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{variable} must be 0 or more, not {value}")
    return value
