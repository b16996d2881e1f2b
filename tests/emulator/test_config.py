"""EmulatorConfig: defaults, per-mode facts, and environment parsing that names the bad variable."""

from __future__ import annotations

import pytest
from appwrite_token_exchange.emulator import EmulatorConfig
from appwrite_token_exchange.emulator.config import DEFAULT_API_KEY, DEFAULT_JWT_SECRET, MODES, SERVER_OF, SERVERS


def test_defaults_are_a_working_cloud_project() -> None:
    config = EmulatorConfig()
    assert (config.project_id, config.mode, config.server, config.version) == ("demo", "cloud", "2.2.0", "2.2.0")
    assert (config.jwt_secret, config.api_key) == (DEFAULT_JWT_SECRET, DEFAULT_API_KEY)
    assert len(config.jwt_secret.encode()) >= 32  # long enough for HS256 without warnings
    assert config.jwt_rate_limit is None
    assert config.jwt_limit == (120, 60)


@pytest.mark.parametrize(
    ("mode", "version", "limit", "duration", "jwt_query", "subscriptions"),
    [
        ("main", "1.9.6", (120, 60), True, True, True),
        ("2.2.0", "2.2.0", (120, 60), True, True, True),
        ("2.x", "2.2.0", (120, 60), True, True, True),
        ("cloud", "2.2.0", (120, 60), True, True, True),
        ("cl-1.9.6", "1.9.6", (120, 60), True, True, True),
        ("1.9.6", "1.9.6", (120, 60), True, False, True),
        ("1.9", "1.9.6", (120, 60), True, False, True),
        ("1.9.5", "1.9.5", (120, 60), True, False, True),
        ("1.9.0", "1.9.0", (120, 60), True, False, False),
        ("1.8.1", "1.8.1", (100, 3600), False, False, False),
        ("1.8", "1.8.1", (100, 3600), False, False, False),
    ],
)
def test_mode_facts(
    mode: str, version: str, limit: tuple[int, int], duration: bool, jwt_query: bool, subscriptions: bool
) -> None:
    config = EmulatorConfig(mode=mode)  # type: ignore[arg-type]
    assert config.version == version
    assert config.jwt_limit == limit
    assert config.honours_duration is duration
    assert config.realtime_reads_jwt_query is jwt_query
    assert config.message_subscriptions is subscriptions


@pytest.mark.parametrize(
    ("mode", "server", "denies_jwt_minting", "needs_unexpired", "refuses_both", "blocked", "url_channels", "presence"),
    [
        ("main", "main", True, True, True, 403, False, True),
        ("2.2.0", "2.2.0", True, True, True, 403, False, True),
        ("2.x", "2.2.0", True, True, True, 403, False, True),
        ("cloud", "2.2.0", True, True, True, 403, False, True),
        ("cl-1.9.6", "cl-1.9.6", False, False, True, 403, False, True),
        ("1.9.6", "1.9.6", False, False, True, 403, False, True),
        ("1.9", "1.9.6", False, False, True, 403, False, True),
        ("1.9.5", "1.9.5", False, False, True, 403, False, True),
        ("1.9.0", "1.9.0", False, False, True, 403, True, False),
        ("1.8.1", "1.8.1", False, False, False, 401, True, False),
        ("1.8", "1.8.1", False, False, False, 401, True, False),
    ],
)
def test_server_flags(
    mode: str,
    server: str,
    denies_jwt_minting: bool,
    needs_unexpired: bool,
    refuses_both: bool,
    blocked: int,
    url_channels: bool,
    presence: bool,
) -> None:
    config = EmulatorConfig(mode=mode)  # type: ignore[arg-type]
    assert config.server == server
    assert config.refuses_jwt_minting_with_jwt is denies_jwt_minting
    assert config.jwt_needs_unexpired_session is needs_unexpired
    assert config.refuses_jwt_with_session is refuses_both
    assert config.blocked_status == blocked
    assert config.zero_duration_fails is config.honours_duration
    assert config.realtime_requires_url_channels is url_channels
    assert config.presence_frames is presence
    assert config.account_action_channels is presence


def test_every_mode_is_accepted_from_the_environment() -> None:
    for mode in MODES:
        assert EmulatorConfig.from_env({"EMULATOR_MODE": mode}).mode == mode
    assert {SERVER_OF[mode] for mode in MODES} == set(SERVERS)


def test_the_jwt_limit_can_be_overridden() -> None:
    assert EmulatorConfig(mode="1.8", jwt_rate_limit=5).jwt_limit == (5, 3600)
    assert EmulatorConfig(jwt_rate_limit=0).jwt_limit == (0, 60)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"project_id": ""},
        {"project_id": "-leading-dash"},
        {"project_id": "x" * 37},
        {"jwt_secret": ""},
        {"api_key": ""},
        {"mode": "2.0"},
        {"jwt_rate_limit": -1},
        {"realtime_message_limit": -3},
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**kwargs)  # type: ignore[arg-type]


def test_from_env_reads_every_variable() -> None:
    config = EmulatorConfig.from_env(
        {
            "EMULATOR_PROJECT_ID": "proj_1",
            "EMULATOR_JWT_SECRET": "s" * 40,
            "EMULATOR_API_KEY": "k",
            "EMULATOR_MODE": "1.9",
            "EMULATOR_JWT_RATE_LIMIT": "7",
            "EMULATOR_REALTIME_CONNECT_LIMIT": "0",
            "EMULATOR_REALTIME_MESSAGE_LIMIT": "5",
            "UNRELATED": "x",
        }
    )
    assert config == EmulatorConfig(
        project_id="proj_1",
        jwt_secret="s" * 40,
        api_key="k",
        mode="1.9",
        jwt_rate_limit=7,
        realtime_connect_limit=0,
        realtime_message_limit=5,
    )


def test_from_env_with_nothing_set_is_the_default() -> None:
    assert EmulatorConfig.from_env({}) == EmulatorConfig()


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMULATOR_MODE", "1.8")
    assert EmulatorConfig.from_env().mode == "1.8"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EMULATOR_PROJECT_ID", "bad id!"),
        ("EMULATOR_PROJECT_ID", ""),
        ("EMULATOR_JWT_SECRET", ""),
        ("EMULATOR_API_KEY", ""),
        ("EMULATOR_MODE", "cloudy"),
        ("EMULATOR_JWT_RATE_LIMIT", "many"),
        ("EMULATOR_JWT_RATE_LIMIT", "-1"),
        ("EMULATOR_REALTIME_CONNECT_LIMIT", "1.5"),
        ("EMULATOR_REALTIME_MESSAGE_LIMIT", "-2"),
    ],
)
def test_a_bad_variable_is_named(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        EmulatorConfig.from_env({variable: value})


# Every Realtime flag per server: (?jwt=, subscribe frames, URL channels required, presence,
# account.<action> channels, subscription IDs, loopback aliases, localhost Origin, tauri://).
REALTIME_FLAGS = {
    "main": (True, True, False, True, True, True, True, True, True),
    "2.2.0": (True, True, False, True, True, True, False, False, True),  # Cloud's Origin rule
    "cl-1.9.6": (True, True, False, True, True, True, False, False, True),
    "1.9.6": (False, True, False, True, True, True, False, True, True),
    "1.9.5": (False, True, False, True, True, True, False, True, True),
    "1.9.0": (False, False, True, False, False, True, False, True, True),
    "1.8.1": (False, False, True, False, False, False, False, True, False),
}


@pytest.mark.parametrize("server", SERVERS)
def test_realtime_flags(server: str) -> None:
    config = EmulatorConfig(mode=server)  # type: ignore[arg-type]
    assert (
        config.realtime_reads_jwt_query,
        config.message_subscriptions,
        config.realtime_requires_url_channels,
        config.presence_frames,
        config.account_action_channels,
        config.realtime_subscription_ids,
        config.origin_loopback_aliases,
        config.origin_allows_localhost,
        config.origin_tauri_scheme,
    ) == REALTIME_FLAGS[server]


def test_every_server_has_its_realtime_flags_listed() -> None:
    assert set(REALTIME_FLAGS) == set(SERVERS)
