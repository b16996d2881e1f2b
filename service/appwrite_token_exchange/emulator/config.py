"""The emulator's settings: one frozen object, validated once, optionally read from the environment.

A mode picks which Appwrite server the emulator plays. Seven servers are modelled, each named after
the Appwrite git ref its behaviour was read from (or, for 2.2.0, inferred: see the README); the
older short names stay as aliases:

| mode (aliases)             | plays                                                        |
|----------------------------|--------------------------------------------------------------|
| `main`                     | appwrite/appwrite `main` of 2026-08 (before 2.0.0)           |
| `2.2.0` (`2.x`, `cloud`)   | self-hosted 2.0.0-2.2.0 and Appwrite Cloud, as `main` behaves |
| `cl-1.9.6`                 | the old Appwrite Cloud line, tags `cl-1.9.6-*`               |
| `1.9.6` (`1.9`)            | self-hosted 1.9.6                                            |
| `1.9.5`                    | self-hosted 1.9.5                                            |
| `1.9.0`                    | self-hosted 1.9.0                                            |
| `1.8.1` (`1.8`)            | self-hosted 1.8.1 (and, for what the service uses, 1.5-1.8)  |

Code elsewhere (REST routes, Realtime) must read the behaviour flags below, never compare mode
names: several names play the same server.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from appwrite_token_exchange.emulator.guard import normalise_host

Mode = Literal["cloud", "2.x", "1.9", "1.8", "main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5", "1.9.0", "1.8.1"]
MODES: tuple[Mode, ...] = get_args(Mode)

# The server a mode plays: the git ref of appwrite/appwrite its behaviour comes from.
Server = Literal["main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5", "1.9.0", "1.8.1"]
SERVERS: tuple[Server, ...] = get_args(Server)
SERVER_OF: Mapping[Mode, Server] = {
    "main": "main",
    "2.2.0": "2.2.0",
    "2.x": "2.2.0",
    # Cloud runs the 2.x line now (web SDK 27/28 target "2.x as shipped on Appwrite Cloud").
    "cloud": "2.2.0",
    "cl-1.9.6": "cl-1.9.6",
    "1.9.6": "1.9.6",
    "1.9": "1.9.6",
    "1.9.5": "1.9.5",
    "1.9.0": "1.9.0",
    "1.8.1": "1.8.1",
    "1.8": "1.8.1",
}

# `APP_VERSION_STABLE` of each ref: what `GET /v1/health/version` and every error body report.
# `main` and the cl-1.9.6 Cloud line both still say 1.9.6 (app/init/constants.php, main of
# 2026-08-21); a release tag says its own number.
VERSIONS: Mapping[Server, str] = {
    "main": "1.9.6",
    "2.2.0": "2.2.0",
    "cl-1.9.6": "1.9.6",
    "1.9.6": "1.9.6",
    "1.9.5": "1.9.5",
    "1.9.0": "1.9.0",
    "1.8.1": "1.8.1",
}

# Appwrite's own limit on `POST /v1/account/jwts`, per user, fixed window: (count, seconds).
# 1.9.0+: APP_LIMIT_WRITE_RATE_DEFAULT * 2 per APP_LIMIT_WRITE_RATE_PERIOD_DEFAULT; 1.8.1: 100/hour.
JWT_RATE_LIMITS: Mapping[Server, tuple[int, int]] = {
    "main": (120, 60),
    "2.2.0": (120, 60),
    "cl-1.9.6": (120, 60),
    "1.9.6": (120, 60),
    "1.9.5": (120, 60),
    "1.9.0": (120, 60),
    "1.8.1": (100, 3600),
}

# 2.2.0 is in every set `main` is in: its source is not read, it plays `main` (inferred).
_NEWEST: frozenset[Server] = frozenset({"main", "2.2.0"})
_CLOUD_AND_NEWER: frozenset[Server] = frozenset({"main", "2.2.0", "cl-1.9.6"})
# 1.9.5 has message-based subscribe and presence (tag 1.9.5: app/realtime.php,
# Realtime/Message/Handlers/Subscribe.php); there are no tags 1.9.1-1.9.4.
_SINCE_1_9_5: frozenset[Server] = frozenset({"main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5"})
_BEFORE_1_9_5: frozenset[Server] = frozenset({"1.9.0", "1.8.1"})
# Appwrite Cloud's own domain is never a client's, so only self-hosted servers allow `localhost`.
# 2.2.0 keeps Cloud's rule (inferred): it is what `cloud` plays, and a page that passes the stricter
# check passes a self-hosted 2.x too (`main` shows the self-hosted rule).
_CLOUD_ORIGIN_RULE: frozenset[Server] = frozenset({"cl-1.9.6", "2.2.0"})

# Appwrite's Realtime abuse limits, both per 60 s fixed window.
REALTIME_CONNECT_LIMIT = 128
REALTIME_MESSAGE_LIMIT = 32

# Public, well-known development values: the emulator is a test double and never guards anything.
DEFAULT_JWT_SECRET = "emulator-openssl-key-v1-for-local-use-only"  # noqa: S105
DEFAULT_API_KEY = "emulator-api-key-for-local-use-only"

# Appwrite's custom ID rule (projects, users, subscriptions): 1-36 chars, no leading special char.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")
# A Web platform's hostname: lower case, no scheme, port or path; a leading `*.` is a wildcard.
_PLATFORM_HOSTNAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*|\*")


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
    # Hostnames of the project's Web platforms (`*.example.com` allowed): Realtime refuses a
    # handshake whose Origin is none of them. The control API can add more at run time.
    platforms: tuple[str, ...] = ()
    # Names besides localhost and loopback addresses that the control API answers on (its Host
    # check, emulator/guard.py): the emulator's name in a container network, say.
    control_hosts: tuple[str, ...] = ()

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
        for hostname in self.platforms:
            if not _PLATFORM_HOSTNAME.fullmatch(hostname):
                raise ValueError(f"platform hostname {hostname!r} is not a hostname (no scheme, port or path)")
        for host in self.control_hosts:
            if not _is_control_host(host):
                raise ValueError(f"control host {host!r} is not a lower-case hostname or IP address (no port)")

    @property
    def server(self) -> Server:
        """The Appwrite ref this mode plays (aliases resolved)."""
        return SERVER_OF[self.mode]

    @property
    def version(self) -> str:
        return VERSIONS[self.server]

    @property
    def jwt_limit(self) -> tuple[int, int]:
        """(count, window seconds) for the JWT route; a count of 0 means unlimited."""
        count, seconds = JWT_RATE_LIMITS[self.server]
        return (count if self.jwt_rate_limit is None else self.jwt_rate_limit), seconds

    # --- REST ------------------------------------------------------------------------------------

    @property
    def honours_duration(self) -> bool:
        """`duration` on `POST /account/jwts` exists since 1.9.0; 1.8.1 always issues 900 s tokens."""
        return self.server != "1.8.1"

    @property
    def zero_duration_fails(self) -> bool:
        """`duration: 0` reaches adhocore/jwt as maxAge 0, which throws: a 500 `general_unknown`.

        Only where the parameter exists: 1.8.1 ignores the body and issues a 900 s token.
        """
        return self.honours_duration

    @property
    def refuses_jwt_minting_with_jwt(self) -> bool:
        """`main` answers 403 user_jwt_creation_denied; the others fall through to 404."""
        return self.server in _NEWEST

    @property
    def jwt_needs_unexpired_session(self) -> bool:
        """`main` drops a JWT whose session expired (`sessionActive`); the others only check the
        session still exists."""
        return self.server in _NEWEST

    @property
    def refuses_jwt_with_session(self) -> bool:
        """403 user_jwt_and_cookie_set for a JWT next to a valid session (1.9.0+); on 1.8.1 the JWT
        simply wins (REST and the Realtime handshake alike)."""
        return self.server != "1.8.1"

    @property
    def blocked_status(self) -> int:
        """HTTP status of `user_blocked`: 401 on 1.8.1, 403 since 1.9.0."""
        return 401 if self.server == "1.8.1" else 403

    # --- Realtime (read by emulator/realtime) -------------------------------------------

    @property
    def realtime_reads_jwt_query(self) -> bool:
        """Only servers with Appwrite PR #12664 (the Cloud line, `main`, 2.x) read `?jwt=`; not
        self-hosted 1.9.6 and older (they read only the `X-Appwrite-JWT` handshake header)."""
        return self.server in _CLOUD_AND_NEWER

    @property
    def message_subscriptions(self) -> bool:
        """`subscribe`/`unsubscribe` frames and subscription IDs: 1.9.5 and newer (not 1.9.0)."""
        return self.server in _SINCE_1_9_5

    @property
    def realtime_subscription_ids(self) -> bool:
        """URL subscriptions get IDs (`connected` and `event` frames carry them) since 1.9.0."""
        return self.server != "1.8.1"

    @property
    def realtime_requires_url_channels(self) -> bool:
        """1.8.1 and 1.9.0 refuse a handshake without `channels[]` ("Missing channels")."""
        return self.server in _BEFORE_1_9_5

    @property
    def presence_frames(self) -> bool:
        """`presence` frames are answered since 1.9.5 (so 1.9.6, Cloud, `main` and 2.x)."""
        return self.server in _SINCE_1_9_5

    @property
    def account_action_channels(self) -> bool:
        """`account.<action>` becomes `account.<id>.<action>` (Realtime adapter `SUPPORTED_ACTIONS`):
        1.9.6 and newer; 1.8.1 and 1.9.0 drop every `account.*` name but `account.<own id>`. 1.9.5
        has it as 1.9.6 does: inferred (it shares 1.9.6's Realtime rewrite; its adapter is not read)."""
        return self.server in _SINCE_1_9_5

    @property
    def origin_loopback_aliases(self) -> bool:
        """Only `main` lets 127.0.0.1 and [::1] stand for an allowed `localhost` in the Origin check
        (a self-hosted rule: 2.2.0 keeps Cloud's, see _CLOUD_ORIGIN_RULE)."""
        return self.server == "main"

    @property
    def origin_allows_localhost(self) -> bool:
        """Self-hosted servers accept an Origin of `localhost` (the default `_APP_DOMAIN`); Cloud does
        not, and 2.2.0 (what `cloud` plays) keeps Cloud's rule."""
        return self.server not in _CLOUD_ORIGIN_RULE

    @property
    def origin_tauri_scheme(self) -> bool:
        """`tauri://` counts as a Web scheme in the Origin check since 1.9.0."""
        return self.server != "1.8.1"

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
        platforms = tuple(h.strip().lower() for h in env.get("EMULATOR_PLATFORMS", "").split(",") if h.strip())
        if not all(_PLATFORM_HOSTNAME.fullmatch(hostname) for hostname in platforms):
            raise ValueError(f"EMULATOR_PLATFORMS must be hostnames separated by commas: {platforms!r}")
        values["platforms"] = platforms
        control_hosts = tuple(normalise_host(h) for h in env.get("EMULATOR_CONTROL_HOSTS", "").split(",") if h.strip())
        if not all(_is_control_host(host) for host in control_hosts):
            raise ValueError(
                f"EMULATOR_CONTROL_HOSTS must be hostnames or IP addresses separated by commas: {control_hosts!r}"
            )
        values["control_hosts"] = control_hosts
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as error:
            # Only the project ID can still be wrong here; name the variable, not the field.
            raise ValueError(f"EMULATOR_PROJECT_ID: {error}") from None


def _is_control_host(host: str) -> bool:
    """A hostname (no wildcard: the list names exactly who may be trusted) or an IP address, as
    guard.normalise_host spells it."""
    if host != normalise_host(host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "*" not in host and _PLATFORM_HOSTNAME.fullmatch(host) is not None
    return True


def _count(variable: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{variable} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{variable} must be 0 or more, not {value}")
    return value
